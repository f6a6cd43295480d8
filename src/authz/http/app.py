"""The ASGI app of the AuthZEN front end: routes, the bearer token, one error boundary.

Routes (the spec's default paths): ``POST /access/v1/evaluation``, ``/access/v1/evaluations``,
``/access/v1/search/subject``, ``/search/resource``, ``/search/action``; ``GET
/.well-known/authzen-configuration`` (the PDP metadata) and ``GET /openapi.json`` (this API's
OpenAPI document), which stay open like gRPC health and reflection. With ``--playground``, the
policy playground too (:mod:`authz.http.playground`): its page open, its API behind the token.

Statuses, as the spec's HTTPS binding says: 200 for every decision, allowed or denied; 400 with a
message naming the field for a missing or mistyped field, a body that is empty or not JSON, or a
Content-Type other than application/json; 401 (with ``WWW-Authenticate: Bearer``) without the
right bearer token where one is required; 413 for a body over the size limit; 503 before the
replica has loaded or when ``min_revision`` is not reached in time; 500 for anything else,
without details (they are logged). Error bodies are the message, as text. Unknown fields are
ignored. ``X-Request-ID`` is echoed on every response that had one.

One boundary (:meth:`Front.guarded`) turns errors into statuses through one table
(:data:`STATUS`); an internal failure is never an allow: the core denies on failure while
deciding, and any failure around it is a 500.

Threads: requests are read and answered on the event loop of the server's thread; what decides
(waits for a revision, takes the replica's lock, runs the engine, writes the audit log) runs on
anyio's worker threads, so one slow decision never holds up other connections. Shared between
those threads: the Decider (thread-safe, as for gRPC), the audit log (its own lock) and the
metrics (prometheus_client's are thread-safe). :class:`Front` holds nothing mutable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authz.audit import AuditLog
from authz.decider import Decider
from authz.decision import Decision, Request
from authz.errors import AuthzError, InvalidRequest, NotReady, PolicyError, RevisionUnavailable, Unauthenticated
from authz.http import documents, evaluations, openapi, search
from authz.http.playground import PlaygroundConfig
from authz.metrics import LATENCY_BUCKETS, DecisionMetrics
from servicekit import tokens
from servicekit.text import clip, clip_message

log = logging.getLogger("authz.http")

MAX_BODY = 4 << 20  # bytes, as gRPC's message limit
MAX_WAIT = 30.0  # seconds a min_revision may wait (HTTP calls carry no deadline)
ENDPOINTS = {
    "access_evaluation_endpoint": "/access/v1/evaluation",
    "access_evaluations_endpoint": "/access/v1/evaluations",
    "search_subject_endpoint": "/access/v1/search/subject",
    "search_resource_endpoint": "/access/v1/search/resource",
    "search_action_endpoint": "/access/v1/search/action",
}
METADATA_PATH = "/.well-known/authzen-configuration"
OPENAPI_PATH = "/openapi.json"


class TooLarge(Exception):
    """A body over the limit (413): transport, not a decision error."""


STATUS: dict[type[Exception], int] = {
    InvalidRequest: 400,
    ClientDisconnect: 400,  # the caller left before sending its body: nobody reads the answer
    Unauthenticated: 401,
    TooLarge: 413,
    RevisionUnavailable: 503,
    NotReady: 503,
    PolicyError: 500,
    AuthzError: 500,
}


def status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


Handler = Callable[[HttpRequest], Awaitable[Response]]


@dataclass(frozen=True)
class _Meters:
    latency: Histogram
    responses: Counter


class Front:
    """The endpoints, over one Decider."""

    def __init__(
        self, decider: Decider, *, token: str = "", audit: AuditLog | None = None,
        metrics: DecisionMetrics | None = None, max_body: int = MAX_BODY, wait: float = MAX_WAIT,
    ) -> None:  # fmt: skip
        self.decider = decider
        self.audit = audit
        self.metrics = metrics
        self.max_body = max_body
        self.wait = wait
        self._token = token.encode()
        self._meters = None
        if metrics is not None:
            self._meters = _Meters(
                Histogram("authz_http_seconds", "Time to answer an AuthZEN HTTP request, by endpoint.", ["endpoint"],
                          registry=metrics.registry, buckets=LATENCY_BUCKETS),
                Counter("authz_http_responses", "AuthZEN HTTP responses, by endpoint and status code.",
                        ["endpoint", "code"], registry=metrics.registry),
            )  # fmt: skip

    # ---- the boundary ----------------------------------------------------------------------

    def guarded(self, name: str, handler: Handler, *, protected: bool = True) -> Handler:
        """``handler`` behind the token (when ``protected``) and the error table, measured."""

        async def endpoint(request: HttpRequest) -> Response:
            started = time.perf_counter()
            try:
                if protected:
                    self._authenticate(request)
                response = await handler(request)
            except Exception as exc:  # noqa: BLE001 - the boundary: every error becomes its status
                response = self._refusal(name, exc)
            if self._meters is not None:
                self._meters.latency.labels(name).observe(time.perf_counter() - started)
                self._meters.responses.labels(name, str(response.status_code)).inc()
            return response

        return endpoint

    def _refusal(self, name: str, exc: Exception) -> Response:
        status = status_of(exc)
        headers: dict[str, str] = {}
        if isinstance(exc, ClientDisconnect):
            message = "body: the caller went away before sending all of it"
        elif isinstance(exc, AuthzError | TooLarge) and status != 500:
            message = clip_message(str(exc))
        else:
            log.error("%s failed", name, exc_info=exc)
            message = f"internal error ({type(exc).__name__}); see the service's log"
        if status == 401:
            invalid = ', error="invalid_token"' if str(exc).startswith("invalid") else ""
            headers["WWW-Authenticate"] = f'Bearer realm="authz"{invalid}'
        elif isinstance(exc, NotReady):
            headers["Retry-After"] = "1"
        return PlainTextResponse(message, status_code=status, headers=headers)

    def _authenticate(self, request: HttpRequest) -> None:
        if not self._token:
            return
        presented = tokens.presented_token([("authorization", request.headers.get("authorization", ""))])
        problem = tokens.refusal(presented, self._token, where="the header")
        if problem is not None:
            raise Unauthenticated(problem)

    async def _body(self, request: HttpRequest) -> bytes:
        kind = request.headers.get("content-type")
        if kind is None:
            raise InvalidRequest("Content-Type", "is missing: send Content-Type: application/json")
        if kind.partition(";")[0].strip().lower() != "application/json":
            raise InvalidRequest("Content-Type", f"must be application/json, not {clip(kind)}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise TooLarge(f"the body has {declared} bytes; the limit is {self.max_body}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise TooLarge(f"the body is over the limit of {self.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _record(self, request: HttpRequest, decided: list[tuple[Request, Decision]]) -> None:
        """Audit and count decisions (on the worker thread: the audit log writes a file)."""
        if self.audit is not None and decided:
            client = request.client
            self.audit.record(f"http:{client.host}:{client.port}" if client else "http", decided)
        if self.metrics is not None:
            self.metrics.record_many((check.action, decision.allowed) for check, decision in decided)

    # ---- endpoints -------------------------------------------------------------------------

    async def evaluation(self, request: HttpRequest) -> Response:
        doc = documents.parse(documents.Evaluation, await self._body(request))

        def decide() -> dict[str, Any]:
            outcome = evaluations.evaluate(self.decider, doc, self.wait)
            self._record(request, outcome.decided)
            return outcome.body

        return JSONResponse(await run_in_threadpool(decide))

    async def evaluations(self, request: HttpRequest) -> Response:
        doc = documents.parse(documents.Evaluations, await self._body(request))

        def decide() -> dict[str, Any]:
            outcome = evaluations.evaluate_many(self.decider, doc, self.wait)
            self._record(request, outcome.decided)
            return outcome.body

        return JSONResponse(await run_in_threadpool(decide))

    async def search_subject(self, request: HttpRequest) -> Response:
        doc = documents.parse(documents.SubjectSearch, await self._body(request))
        return JSONResponse(await run_in_threadpool(search.subjects, self.decider, doc, self.wait))

    async def search_resource(self, request: HttpRequest) -> Response:
        doc = documents.parse(documents.ResourceSearch, await self._body(request))
        return JSONResponse(await run_in_threadpool(search.resources, self.decider, doc, self.wait))

    async def search_action(self, request: HttpRequest) -> Response:
        doc = documents.parse(documents.ActionSearch, await self._body(request))
        return JSONResponse(await run_in_threadpool(search.actions, self.decider, doc, self.wait))

    async def metadata(self, request: HttpRequest) -> Response:
        """The PDP metadata: its identifier is the base URL the caller reached (scheme and Host)."""
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"policy_decision_point": base, **{key: base + path for key, path in ENDPOINTS.items()}})

    async def openapi(self, request: HttpRequest) -> Response:
        return Response(openapi.rendered(), media_type="application/json")


class RequestId:
    """Echo ``X-Request-ID`` on the response to a request that has one (the spec's request identification)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ident = None
        if scope["type"] == "http":
            ident = next((value for name, value in scope["headers"] if name == b"x-request-id"), None)
        if ident is None:
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (b"x-request-id", ident)]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(
    decider: Decider, *, token: str = "", audit: AuditLog | None = None, metrics: DecisionMetrics | None = None,
    max_body: int = MAX_BODY, wait: float = MAX_WAIT, playground: PlaygroundConfig | None = None,
) -> Starlette:  # fmt: skip
    """The AuthZEN app over ``decider``. ``token``: the bearer token decision calls need (empty: none).
    ``playground``: also serve the policy playground at /playground (its API behind the same token)."""
    front = Front(decider, token=token, audit=audit, metrics=metrics, max_body=max_body, wait=wait)
    handlers: dict[str, Handler] = {
        "access_evaluation_endpoint": front.evaluation,
        "access_evaluations_endpoint": front.evaluations,
        "search_subject_endpoint": front.search_subject,
        "search_resource_endpoint": front.search_resource,
        "search_action_endpoint": front.search_action,
    }
    routes = [
        Route(path, front.guarded(key.removesuffix("_endpoint"), handlers[key]), methods=["POST"])
        for key, path in ENDPOINTS.items()
    ]
    routes.append(Route(METADATA_PATH, front.guarded("metadata", front.metadata, protected=False), methods=["GET"]))
    routes.append(Route(OPENAPI_PATH, front.guarded("openapi", front.openapi, protected=False), methods=["GET"]))
    if playground is not None:
        from authz.http.playground.routes import playground_routes  # loads the tools only when asked

        routes += playground_routes(front, playground)
    return Starlette(routes=routes, middleware=[Middleware(RequestId)])
