"""The playground's routes: the page and its assets (open, like the API's metadata), and its JSON API
(behind the API's bearer token, through the API's one error boundary).

    GET  /playground                     the page (static/index.html)
    GET  /playground/static/{name}       playground.js, playground.css
    GET  /playground/api/serving         the serving policy's files and version, and a world to start from
    POST /playground/api/lint            {files}                 -> {ok, problems: [{file, name, line, message}]}
    POST /playground/api/check           {files, world, subject, action, resource, context} -> the decision
    POST /playground/api/tests           {files, world}          -> {passed, failed, total, results}
    POST /playground/api/matrix          {files}                 -> {tables, changed}
    POST /playground/api/diff            {files, world}          -> {counts, rules, changes, total}

A body that is not one of these is 400 with a message naming the field; a policy or world in the
editors that does not build is 422 with ``{error, message, problems}`` (problems with file and
line); the rest of the statuses are the API's (401 without the token where one is required, 413).
The page's responses carry a Content-Security-Policy that allows this origin only.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from authz.http import documents
from authz.http.app import Front
from authz.http.playground import PlaygroundConfig, answers, bodies
from authz.http.playground.scratch import ScratchError
from authz.policy import Policy

PREFIX = "/playground"
ASSETS = {"playground.js": "text/javascript", "playground.css": "text/css"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
EXAMPLE_WORLD = """\
# A world in the decision-test format: `world` (what the store would hold) and `cases`.
world:
  orgs:
    - id: acme
      users: [carol, dave]
  teams:
    - {id: vision, org: acme, members: {carol: member, dave: member}}
  projects:
    - {id: vision-detection, owner: team:vision, visibility: team, creator: carol}
  reports:
    - {id: rep-weekly-vision, project: vision-detection, creator: carol}
cases:
  - {subject: user:carol, action: report.edit, resource: report:rep-weekly-vision, allow: true, rule: RP3}
  - {subject: user:dave, action: report.edit, resource: report:rep-weekly-vision, allow: false}
"""

B = TypeVar("B", bound=bodies.Files)


def asset(name: str) -> bytes:
    """A file of static/, shipped in the package."""
    return resources.files("authz.http.playground").joinpath("static", name).read_bytes()


class Playground:
    """The handlers, over the API's front (its decider gives the policy serving right now)."""

    def __init__(self, front: Front, config: PlaygroundConfig) -> None:
        self.front = front
        self.config = config

    @property
    def serving(self) -> Policy:
        return self.front.decider.engines.policy

    async def page(self, request: HttpRequest) -> Response:
        return Response(asset("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def static(self, request: HttpRequest) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return PlainTextResponse("not found", status_code=404)
        return Response(asset(name), media_type=f"{ASSETS[name]}; charset=utf-8", headers=PAGE_HEADERS)

    async def serving_files(self, request: HttpRequest) -> Response:
        policy = self.serving

        def world() -> dict[str, str]:
            path = self.config.world
            if path is not None:
                try:
                    return {"name": path.name, "text": path.read_text(encoding="utf-8")}
                except (OSError, UnicodeDecodeError):
                    pass
            return {"name": "example-world.yaml", "text": EXAMPLE_WORLD}

        return JSONResponse({
            "version": policy.version, "directory": Path(policy.directory).name, "engine": self.config.engine,
            "files": dict(policy.texts), "world": await run_in_threadpool(world),
        })  # fmt: skip

    def api(self, model: type[B], compute: Callable[[B, Policy, str], dict[str, Any]]) -> Callable[..., Any]:
        """A JSON endpoint: the body checked as ``model``, ``compute`` run on a worker thread."""

        async def endpoint(request: HttpRequest) -> Response:
            body = documents.parse(model, await self.front._body(request))
            try:
                answer = await run_in_threadpool(compute, body, self.serving, self.config.engine)
            except ScratchError as exc:
                return JSONResponse(exc.body(), status_code=422)
            return JSONResponse(answer)

        return endpoint


def playground_routes(front: Front, config: PlaygroundConfig) -> list[Route]:
    """The page, its assets and its API, each behind ``front``'s boundary (the API behind its token)."""
    play = Playground(front, config)
    apis: dict[str, Callable[..., Any]] = {
        "lint": play.api(bodies.Files, answers.lint),
        "check": play.api(bodies.Check, answers.check),
        "tests": play.api(bodies.FilesAndWorld, answers.tests),
        "matrix": play.api(bodies.Files, answers.matrix),
        "diff": play.api(bodies.FilesAndWorld, answers.diff),
    }
    routes: list[Route] = [
        Route(PREFIX, front.guarded("playground", play.page, protected=False), methods=["GET"]),
        Route(
            f"{PREFIX}/static/{{name}}",
            front.guarded("playground_static", play.static, protected=False),
            methods=["GET"],
        ),
        Route(f"{PREFIX}/api/serving", front.guarded("playground_serving", play.serving_files), methods=["GET"]),
    ]
    routes += [
        Route(f"{PREFIX}/api/{name}", front.guarded(f"playground_{name}", handler), methods=["POST"])
        for name, handler in apis.items()
    ]
    return routes
