"""The policy playground: one web page on the AuthZEN HTTP server, for policy authors.

``authz serve --http HOST:PORT --playground`` (or ``authz up --playground``) serves ``GET
/playground``: editors for the policy files and a world (the YAML of the decision-test format),
and tabs that evaluate what is in the editors: Check, Tests, Matrix, Diff (against the policy
serving) and Lint. The page is plain HTML, CSS and JavaScript shipped in this package
(``static/``); it loads nothing from any other host.

* :mod:`~authz.http.playground.bodies`: the JSON bodies the page posts (pydantic), 400 naming the field;
* :mod:`~authz.http.playground.scratch`: a Policy and an in-memory WorldState built from the posted
  texts, never from disk, and the 422 that names ``file:line`` or the world's path;
* :mod:`~authz.http.playground.answers`: what each tab shows (a check, the tests, the matrix, the diff,
  the lint problems) as JSON-ready dicts;
* :mod:`~authz.http.playground.routes`: the page, its assets and the JSON API, behind the API's token.

Everything is evaluated on a scratch engine over a scratch world: the playground never writes the
store or the policy directory. This module stays light (the app imports it for the config); the
routes, which load the tools (matrix, harness, diff), are imported only when the playground is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PlaygroundConfig"]


@dataclass(frozen=True)
class PlaygroundConfig:
    """What the playground serves besides the policy: the world file it offers to load (None: a
    small example), and the engine its scratch evaluations use (the service's)."""

    world: Path | None = None
    engine: str = "compiled"
