"""Every store error class maps to a gRPC status; library errors are translated, never leaked."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from store import errors
from store.service import STATUS, status_of


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
        (IntegrityError("INSERT", {}, Exception("duplicate key value")), grpc.StatusCode.ALREADY_EXISTS),
        (IntegrityError("INSERT", {}, Exception("foreign key violation")), grpc.StatusCode.FAILED_PRECONDITION),
        (OperationalError("SELECT", {}, Exception("connection refused")), grpc.StatusCode.UNAVAILABLE),
        (ZeroDivisionError("boom"), grpc.StatusCode.INTERNAL),
    ],
)
def test_status_of(exc: BaseException, code: grpc.StatusCode) -> None:
    """Library and unexpected errors become a status whose message gives no internals away."""
    got, message = status_of(exc)
    assert got == code
    assert "Traceback" not in message
