"""Errors of the store service, each mapped to one gRPC status at the service boundary.

StoreError
├── InvalidArgument (ValueError)      INVALID_ARGUMENT: malformed request or world document
├── NotFound (LookupError)            NOT_FOUND: a reference to an entity that does not exist
├── AlreadyExists                     ALREADY_EXISTS: duplicate id, or same id with other content
├── FailedPrecondition                FAILED_PRECONDITION: a domain rule refuses the change
│   └── RevisionCompacted             Watch asked for history the change log no longer keeps
├── Aborted                           ABORTED: a concurrent transaction conflicted with this one; retry
├── Unavailable                       UNAVAILABLE: the database cannot be reached; retry
├── Unauthenticated                   UNAUTHENTICATED: missing or wrong bearer token
└── PermissionDenied                  PERMISSION_DENIED: e.g. replacing a world without --allow-test-reset

The database library's errors (SQLAlchemy's, carrying the driver's) are translated into these in
one place, :func:`store.database.translate`, by SQLSTATE or SQLite error name, never by message.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store reports to a caller."""


class InvalidArgument(StoreError, ValueError):
    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class NotFound(StoreError, LookupError):
    pass


class AlreadyExists(StoreError):
    pass


class FailedPrecondition(StoreError):
    pass


class RevisionCompacted(FailedPrecondition):
    pass


class Aborted(StoreError):
    pass


class Unavailable(StoreError):
    pass


class Unauthenticated(StoreError):
    pass


class PermissionDenied(StoreError):
    pass
