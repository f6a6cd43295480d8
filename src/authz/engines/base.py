"""What every engine is: the :class:`Engine` protocol the decider asks, and the :class:`Verdict` it gets.

An engine is built once for a policy (plus the custom-role lines of the moment) and is immutable
afterwards; a policy or custom-role change builds a new one, swapped in whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from authz.errors import MissingContext
from authz.policy import Line, Policy


class Context(dict[str, str]):
    """The caller's context values; reading one that was not given raises MissingContext (G7)."""

    def __missing__(self, key: str) -> str:
        raise MissingContext(key)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    granted: tuple[Line, ...] = ()  # allow lines that matched
    denied: tuple[Line, ...] = ()  # deny lines that matched
    candidates: tuple[Line, ...] = ()  # every line of the action, in policy order
    missing: str = ""  # a context key a condition read that the caller did not give
    error: str = ""  # a line raised while deciding (the policy is broken): what it raised
    error_line: Line | None = None  # ... and which line


class Engine(Protocol):
    policy: Policy

    def applies(self, action: str, kind: str) -> bool: ...

    def applies_to(self, action: str) -> tuple[str, ...]: ...

    def requires(self, action: str) -> tuple[str, ...]: ...

    def candidates(self, action: str) -> tuple[Line, ...]: ...

    def evaluate(self, sub: dict[str, Any], obj: dict[str, Any], act: str, ctx: Mapping[str, str]) -> Verdict: ...
