"""Errors of the decision service. A deny is an answer, never one of these.

    AuthzError
    ├── InvalidRequest (ValueError)     INVALID_ARGUMENT: malformed request; names the field
    ├── PolicyError (ValueError)        a policy that does not parse or validate (file:line)
    ├── RevisionUnavailable             DEADLINE_EXCEEDED: min_revision not reached in time
    ├── NotReady                        UNAVAILABLE: no policy loaded or replica not synced yet
    └── Unauthenticated                 UNAUTHENTICATED: decision calls that need a token

MissingContext is raised inside a condition that reads a context value the caller did not give;
the engine turns it into a deny naming the key (G7). It is not an AuthzError on purpose: it
never leaves the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a policy, where it is: ``file:line: message`` (line 0: the whole file)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class AuthzError(Exception):
    """Base of every error the decision service reports to a caller."""


class InvalidRequest(AuthzError, ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PolicyError(AuthzError, ValueError):
    """A policy that does not load; ``problems`` are every problem found, in file and line order."""

    def __init__(self, message: str | Iterable[Problem]) -> None:
        if isinstance(message, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(message)
        else:
            self.problems = tuple(sorted(set(message)))
            super().__init__("\n".join(str(problem) for problem in self.problems))


class RevisionUnavailable(AuthzError):
    pass


class NotReady(AuthzError):
    pass


class Unauthenticated(AuthzError):
    pass


class MissingContext(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
