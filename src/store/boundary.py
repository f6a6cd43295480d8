"""The error boundary of store.v1.Store: which gRPC status each error becomes, applied per call.

:data:`STATUS` maps the store's errors (:mod:`store.errors`) to status codes; :func:`status_of`
also covers the database library's errors and undecodable client-streamed requests;
:func:`boundary` wraps an RPC method so that whatever it raises ends the call with that status
instead of crashing the handler thread. Bearer tokens are checked before any of this, by
servicekit's TokenInterceptor on the server. Module-level tables only, never changed after
import: every handler thread reads them.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar, cast

import grpc
from sqlalchemy.exc import DBAPIError

from servicekit.guard import Undecodable
from servicekit.text import clip_message
from store.database import translate
from store.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RevisionCompacted,
    StoreError,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("store.service")

STATUS: dict[type[StoreError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    RevisionCompacted: grpc.StatusCode.FAILED_PRECONDITION,
    Aborted: grpc.StatusCode.ABORTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    StoreError: grpc.StatusCode.INTERNAL,
}

# An RPC method: (servicer, request or request iterator, context) -> response or response iterator.
Method = TypeVar("Method", bound=Callable[..., Any])


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message for an exception raised while serving a call."""
    if isinstance(exc, DBAPIError):  # one that left a session without passing Database's boundary
        exc = translate(exc)
    if isinstance(exc, Undecodable):  # a client-streamed message that does not decode
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, StoreError):
        for cls in type(exc).__mro__:
            if cls in STATUS:
                return STATUS[cls], clip_message(str(exc))
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the store's log"


def boundary(method: Method) -> Method:
    """Translate what ``method`` raises into a gRPC status (:func:`status_of`) and end the call with it."""

    @functools.wraps(method)
    def unary(self: object, request: object, context: grpc.ServicerContext) -> object:
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status, never a crash
            _abort(context, exc)

    @functools.wraps(method)
    def streaming(self: object, request: object, context: grpc.ServicerContext) -> Iterator[object]:
        try:
            yield from method(self, request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, exc)

    # A generator method's errors surface while the stream is iterated, so its wrapper must be one too.
    return cast("Method", streaming if inspect.isgeneratorfunction(method) else unary)


def _abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    code, message = status_of(exc)
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE):
        log.error("store call failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
    context.abort(code, message)
