"""A policy and a world built from the editors' texts, in memory: nothing is read from or written to disk.

:func:`policy_from` checks the posted files exactly as `authz policy lint`, `serve` and every
reload do (:func:`authz.policy.build_policy`, then the engine and the reference engine), under the
serving policy's directory name, so that its ``file:line``s read as the service's own.
:func:`world_from` parses the world editor as `authz test` parses a decision-test file (the store's
world rules, then the cases). What does not build is a :class:`ScratchError`: the page shows its
message and, for a policy, every problem with its file and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authz import casefile
from authz.engines import engine_factory
from authz.errors import PolicyError
from authz.harness import Case, case_lines, parse_cases
from authz.policy import Policy, build_policy
from authz.state import WorldState
from authz.testing import state_from_document
from store.errors import StoreError
from store.world import load_document


class ScratchError(Exception):
    """The editors' policy or world does not build (answered with 422 and :meth:`body`)."""

    def __init__(self, what: str, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.what = what  # "policy" or "world"
        self.message = message
        self.problems = problems or []

    def body(self) -> dict[str, Any]:
        return {"error": self.what, "message": self.message, "problems": self.problems}


def problems_of(exc: PolicyError) -> list[dict[str, Any]]:
    """A policy's problems as the page shows them: the file as the service names it, the editor's
    file name, the line (0: the whole file) and the message; ``text`` is ``file:line: message``."""
    if not exc.problems:
        return [{"file": "", "name": "", "line": 0, "message": str(exc), "text": str(exc)}]
    return [
        {"file": p.file, "name": p.file.rpartition("/")[2], "line": p.line, "message": p.message, "text": str(p)}
        for p in exc.problems
    ]


def check_policy(files: Mapping[str, str], directory: str, engine: str) -> Policy:
    """The policy of ``files``, checked whole; PolicyError lists every problem."""
    policy = build_policy({name: text.encode("utf-8") for name, text in files.items()}, directory)
    engine_factory(engine)(policy)
    if engine != "casbin":
        engine_factory("casbin")(policy)  # the reference engine must accept it too, as lint requires
    return policy


def policy_from(files: Mapping[str, str], directory: str, engine: str) -> Policy:
    """:func:`check_policy`, or a ScratchError naming every problem with ``file:line``."""
    try:
        return check_policy(files, directory, engine)
    except PolicyError as exc:
        problems = problems_of(exc)
        first = problems[0]["text"]
        more = f" (and {len(problems) - 1} more; see Lint)" if len(problems) > 1 else ""
        raise ScratchError("policy", f"the policy does not load: {first}{more}", problems) from None


@dataclass(frozen=True)
class World:
    state: WorldState
    cases: tuple[Case, ...]


def world_from(text: str, name: str) -> World:
    """The world editor's state and cases, checked as `authz test` checks a file; a ScratchError lists
    every problem, each naming the file (and line, where known) and the path inside the document."""
    name = name.strip() or "world.yaml"
    try:
        document = load_document(text, name)
    except StoreError as exc:  # YAML that does not parse: the parser names where (the last mark is the problem's)
        message = str(exc).replace('in "<unicode string>", ', "at ")
        raise ScratchError("world", message, [_world_problem(message)]) from None
    checked, found = casefile.validate(document, text, name)
    if checked is None:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ScratchError("world", f"the world does not load: {found[0]}{more}", [_world_problem(p) for p in found])
    try:
        state = state_from_document(document)
    except StoreError as exc:  # the store's own rules: references, domain rules
        message = f"{name}: {exc}"
        raise ScratchError("world", message, [_world_problem(message)]) from None
    return World(state, parse_cases(name, checked, case_lines(text)))


LINE_AT = re.compile(r"[^:\s]+:(\d+): ")


def _world_problem(text: str) -> dict[str, Any]:
    """A world problem as the page shows it: its text, and its line in the world editor when it names one
    (``world.yaml:12: world.teams[0]: ...``; YAML errors say ``line 12, column 3``)."""
    match = LINE_AT.match(text)
    if match:
        return {"text": text, "line": int(match.group(1))}
    marks = re.findall(r"line (\d+), column \d+", text)
    return {"text": text, "line": int(marks[-1]) if marks else 0}
