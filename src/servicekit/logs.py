"""Log lines of both services, and the log of their gRPC calls.

* :func:`configure` gives the root logger one handler on stderr, in one of two formats: ``text``
  (one line per record; control characters in messages escaped, see :mod:`servicekit.text`) or
  ``json`` (one JSON object per line: ``time``, ``level``, ``logger``, ``message``, the request
  fields below when the record has them, and ``exception`` with the traceback text).
* :class:`CallLog` is a gRPC server interceptor. While a call runs, every record logged on its
  thread carries the call's ``method`` and ``peer`` (a :class:`contextvars.ContextVar` read by the
  handler's filter); when the call ends it logs one record, ``authz.access`` or ``store.access``, with
  ``method``, ``peer``, ``code`` and ``duration_ms``: DEBUG for OK (shown with ``-v``), WARNING for
  the codes of a server fault (INTERNAL, UNKNOWN, DATA_LOSS), INFO for the others. Tokens, requests
  and answers are never logged: only these fields.
* :func:`say` writes the lines a server prints for its operator (where it listens, why it stopped):
  as they are, or as records when logs are JSON.

Shared between threads: the handler and the interceptor, which hold nothing that changes per call
(the request fields live in each thread's context).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import grpc

from servicekit.guard import HandlerCache, non_blocking
from servicekit.text import EscapingFormatter

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_FIELDS = ("method", "peer", "code", "duration_ms")
SERVER_FAULTS = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})

_request: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("servicekit_request", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (every non-ASCII and control character escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class _RequestFields(logging.Filter):
    """Adds the fields of the call being served on this thread to its records (never overrides)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _request.get()
        if fields:
            for name, value in fields.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs (and replaces when called again)."""


# Libraries that announce routine steps at INFO on every start (Alembic lists each of its plugins,
# when it is first imported, which may be before a command sets its log format): WARNING and up only.
QUIET = ("alembic.runtime.plugins",)


def configure(log_format: str = "text", verbose: bool = False, stream: IO[str] | None = None) -> None:
    """Log to ``stream`` (default stderr) in ``log_format`` (``text`` or ``json``), DEBUG with ``verbose``.

    Replaces the handler an earlier call installed. A root logger that already has other handlers
    (an embedding application, pytest's capture) is left to them, as :func:`logging.basicConfig` does.
    """
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _Handler)]
    if len(ours) != len(root.handlers):
        return
    for old in ours:
        root.removeHandler(old)
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else EscapingFormatter(TEXT_FORMAT))
    handler.addFilter(_RequestFields())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def say(logger: str, line: str, level: int = logging.INFO) -> None:
    """A line for whoever runs a server (where it listens, why it stopped): on stderr as it is, or,
    when logs are JSON, as a record of ``logger``, so that every line a server writes to stderr is
    then one JSON object."""
    root = logging.getLogger()
    if any(isinstance(h, _Handler) and isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        logging.getLogger(logger).log(level, line)
    else:
        print(line, file=sys.stderr, flush=True)


class CallLog(grpc.ServerInterceptor):
    """Request fields on the records of a call, and one record per call when it ends (module docstring)."""

    def __init__(self, logger: str) -> None:
        self.log = logging.getLogger(logger)
        self._logged = HandlerCache()  # each method's logged handler, made once

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return self._logged.get(handler_call_details.method, handler, self._wrap)

    def _wrap(self, method: str, handler: Handler) -> Handler:
        if non_blocking(handler):  # grpc's health Watch: wrapped, each open stream would hold a thread
            return handler
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(method, handler.unary_unary))  # type: ignore[attr-defined, no-any-return]
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._unary(method, handler.stream_unary))  # type: ignore[attr-defined, no-any-return]
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._streaming(method, handler.unary_stream))  # type: ignore[attr-defined, no-any-return]
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._streaming(method, handler.stream_stream))  # type: ignore[attr-defined, no-any-return]
        return handler

    def _unary(self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        def logged(request: Any, context: grpc.ServicerContext) -> Any:
            call = _Call(self.log, method, context)
            failed = True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                call.end(failed)

        return logged

    def _streaming(self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        def logged(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            # The call lasts as long as its stream: it ends when the generator does.
            call = _Call(self.log, method, context)
            failed = True
            try:
                yield from behavior(request, context)
                failed = False
            finally:
                call.end(failed)

        return logged


class _Call:
    """One call being served: its request fields are this thread's until :meth:`end` logs it."""

    def __init__(self, log: logging.Logger, method: str, context: grpc.ServicerContext) -> None:
        self.log = log
        self.context = context
        self.fields = {"method": method, "peer": context.peer()}
        self.started = time.perf_counter()
        self.previous = _request.get()
        _request.set(self.fields)

    def end(self, failed: bool) -> None:
        try:
            # An abort sets the code before it raises; another exception becomes UNKNOWN after us, and a
            # stream the client left ends without a code.
            code = self.context.code()  # type: ignore[attr-defined]  # grpcio has it; its stubs do not
            if code is None:
                if not failed:
                    code = grpc.StatusCode.OK
                else:
                    code = grpc.StatusCode.CANCELLED if not self.context.is_active() else grpc.StatusCode.UNKNOWN
            name = code.name if isinstance(code, grpc.StatusCode) else str(code)
            level = logging.WARNING if code in SERVER_FAULTS else logging.INFO
            if code == grpc.StatusCode.OK:
                level = logging.DEBUG
            if self.log.isEnabledFor(level):
                duration = round((time.perf_counter() - self.started) * 1000, 3)
                self.log.log(
                    level, "%s %s in %.1f ms from %s", self.fields["method"], name, duration, self.fields["peer"],
                    extra={**self.fields, "code": name, "duration_ms": duration},
                )  # fmt: skip
        finally:
            # A stream abandoned by its client may be closed later on another thread: restore only our own.
            if _request.get() is self.fields:
                _request.set(self.previous)
