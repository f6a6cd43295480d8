"""Every store error class maps to a gRPC status; library errors are translated, never leaked."""

from __future__ import annotations

import sqlite3

import grpc
import psycopg
import pytest
from psycopg import errors as pg
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from store import errors
from store.boundary import STATUS, status_of
from store.database import translate


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_error_class_is_mapped() -> None:
    """Each subclass of StoreError has its own entry in the status table."""
    assert _subclasses(errors.StoreError) <= set(STATUS)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.NotFound("team x does not exist"), grpc.StatusCode.NOT_FOUND),
        (errors.RevisionCompacted("take a Snapshot"), grpc.StatusCode.FAILED_PRECONDITION),
        (IntegrityError("INSERT", {}, pg.UniqueViolation("duplicate key value")), grpc.StatusCode.ALREADY_EXISTS),
        (
            IntegrityError("INSERT", {}, pg.ForeignKeyViolation("foreign key violation")),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (OperationalError("SELECT", {}, psycopg.OperationalError("connection refused")), grpc.StatusCode.UNAVAILABLE),
        (ZeroDivisionError("boom"), grpc.StatusCode.INTERNAL),
    ],
)
def test_status_of(exc: BaseException, code: grpc.StatusCode) -> None:
    """Library and unexpected errors become a status whose message gives no internals away."""
    got, message = status_of(exc)
    assert got == code
    assert "Traceback" not in message


def _sqlite(cls: type[sqlite3.Error], message: str, name: str) -> sqlite3.Error:
    error = cls(message)
    error.sqlite_errorname = name  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (IntegrityError("INSERT", {}, pg.UniqueViolation("duplicate key")), errors.AlreadyExists),
        (
            IntegrityError("INSERT", {}, _sqlite(sqlite3.IntegrityError, "UNIQUE failed", "SQLITE_CONSTRAINT_UNIQUE")),
            errors.AlreadyExists,
        ),
        (
            IntegrityError(
                "INSERT", {}, _sqlite(sqlite3.IntegrityError, "PRIMARY KEY", "SQLITE_CONSTRAINT_PRIMARYKEY")
            ),
            errors.AlreadyExists,
        ),
        (
            IntegrityError("INSERT", {}, _sqlite(sqlite3.IntegrityError, "FK failed", "SQLITE_CONSTRAINT_FOREIGNKEY")),
            errors.FailedPrecondition,
        ),
        (OperationalError("UPDATE", {}, pg.DeadlockDetected("deadlock detected")), errors.Aborted),
        (OperationalError("UPDATE", {}, pg.SerializationFailure("could not serialize")), errors.Aborted),
        (
            OperationalError("BEGIN", {}, _sqlite(sqlite3.OperationalError, "database is locked", "SQLITE_BUSY")),
            errors.Aborted,
        ),
        (
            DataError("INSERT", {}, psycopg.DataError("text fields cannot contain NUL (0x00) bytes")),
            errors.InvalidArgument,
        ),
        (OperationalError("SELECT", {}, psycopg.OperationalError("connection refused")), errors.Unavailable),
    ],
)
def test_database_errors_become_store_errors(exc: DBAPIError, error: type[errors.StoreError]) -> None:
    """The database library's errors are told apart by SQLSTATE or SQLite error name, not by message."""
    assert type(translate(exc)) is error
