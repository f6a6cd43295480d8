"""A request that does not decode is the caller's error: INVALID_ARGUMENT, not INTERNAL.

gRPC deserializes a request before any handler runs and answers INTERNAL ("Exception
deserializing request!") when the bytes are not a message of the method's type (truncated,
corrupted, another message). :class:`DecodeGuard` wraps each method's deserializer so that such
bytes reach the handler as an :class:`Undecodable` marker, and answers INVALID_ARGUMENT naming
the message type. For client streams the marker raises :class:`Undecodable` inside the request
iterator, where the service's error boundary maps it to INVALID_ARGUMENT.
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
    """Undecodable requests get INVALID_ARGUMENT (see the module docstring)."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        deserialize = handler.request_deserializer

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
