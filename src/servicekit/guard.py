"""A request that does not decode is the caller's error: INVALID_ARGUMENT, not INTERNAL.

gRPC deserializes a request before any handler runs and answers INTERNAL ("Exception
deserializing request!") when the bytes are not a message of the method's type (truncated,
corrupted, another message). :class:`DecodeGuard` wraps each method's deserializer so that such
bytes reach the handler as an :class:`Undecodable` marker, and answers INVALID_ARGUMENT naming
the message type. For client streams the marker raises :class:`Undecodable` inside the request
iterator, where the service's error boundary maps it to INVALID_ARGUMENT.

Handlers whose behaviour is non-blocking (grpc's own health ``Watch``: it answers through a
callback and returns at once) are passed through by every wrapper here and in :mod:`servicekit.logs`:
a wrapper would make grpc call it the blocking way, and every open stream would then hold one of
the server's threads (with few threads, a few health watchers would stop all other calls).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


class Undecodable(ValueError):
    """Request bytes that are not a message of the method's request type."""

    def __init__(self, method: str, error: BaseException) -> None:
        super().__init__(
            f"the request to {method} could not be decoded ({type(error).__name__}): send a serialized "
            "message of the method's request type"
        )


class _Marker:
    __slots__ = ("error",)

    def __init__(self, error: Undecodable) -> None:
        self.error = error


class DecodeGuard(grpc.ServerInterceptor):
    """Undecodable requests get INVALID_ARGUMENT (see the module docstring).

    The guarded handler of a method is made once and reused for every call (interceptors run per
    call): it is kept while the inner handler is the same object.
    """

    def __init__(self) -> None:
        self._guarded = HandlerCache()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return self._guarded.get(handler_call_details.method, handler, _guard)


class HandlerCache:
    """The wrapped form of a method's handler, made once per (method, inner handler object).

    Interceptors run on every call; building closures and a new handler each time costs more than
    the lookup. An inner handler that is a new object each call (a refusal) is wrapped each time and
    the cache is emptied when it grows past :data:`LIMIT` entries. Thread-safe: a race makes the
    same wrapper twice, and either is right.
    """

    LIMIT = 256

    def __init__(self) -> None:
        self._made: dict[tuple[str, int], tuple[Handler, Handler]] = {}

    def get(self, method: str, handler: Handler, wrap: Callable[[str, Handler], Handler]) -> Handler:
        key = (method, id(handler))
        made = self._made.get(key)
        if made is not None and made[0] is handler:
            return made[1]
        wrapped = wrap(method, handler)
        if len(self._made) >= self.LIMIT:
            self._made = {}
        self._made[key] = (handler, wrapped)  # the inner handler is kept alive, so its id stays its own
        return wrapped


def non_blocking(handler: Handler) -> bool:
    """True for a handler whose behaviour answers through a callback (see the module docstring)."""
    behavior = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    return bool(getattr(behavior, "experimental_non_blocking", False))


def _guard(method: str, handler: Handler) -> Handler:
    """``handler`` with a deserializer that never raises and a behaviour that refuses the marker."""
    if non_blocking(handler):
        return handler
    deserialize = handler.request_deserializer
    assert deserialize is not None

    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
            return _Marker(Undecodable(method, exc))

    replaced: dict[str, Any] = {"request_deserializer": safe}
    if handler.unary_unary is not None:
        replaced["unary_unary"] = _unary(handler.unary_unary)
    elif handler.unary_stream is not None:
        replaced["unary_stream"] = _unary(handler.unary_stream)
    elif handler.stream_unary is not None:
        replaced["stream_unary"] = _streaming(handler.stream_unary)
    elif handler.stream_stream is not None:
        replaced["stream_stream"] = _streaming(handler.stream_stream)
    return handler._replace(**replaced)  # type: ignore[attr-defined, no-any-return]


def _unary(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, _Marker):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request.error))
        return behavior(request, context)

    return guarded


def _streaming(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def checked(requests: Iterator[Any]) -> Iterator[Any]:
        for request in requests:
            if isinstance(request, _Marker):
                raise request.error
            yield request

    def guarded(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        return behavior(checked(requests), context)

    return guarded
