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


class AuthzError(Exception):
    """Base of every error the decision service reports to a caller."""


class InvalidRequest(AuthzError, ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PolicyError(AuthzError, ValueError):
    pass


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
