"""Bearer tokens: kept in an environment variable or a private file, checked by one interceptor.

Both services use these: the store for every Store call, the decision service for decision calls
when required. Tokens are compared in constant time (hmac.compare_digest) and never logged;
health and reflection stay open.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import grpc

log = logging.getLogger("servicekit.tokens")

BEARER = "bearer "


def read_token(env: str, token_file: Path) -> str:
    """``$env``, else the content of ``token_file``, else empty."""
    token = os.environ.get(env, "").strip()
    if token:
        return token
    if token_file.is_file():
        return token_file.read_text().strip()
    return ""


def ensure_token(env: str, token_file: Path, what: str) -> str:
    """The configured token, or a new random one written to ``token_file`` with mode 0600.

    Only the path is logged, never the token.
    """
    token = read_token(env, token_file)
    if token:
        return token
    token = secrets.token_urlsafe(32)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    log.info("generated a %s token in %s (mode 0600)", what, token_file)
    return token


def presented_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The bearer token in call metadata, or empty."""
    for name, value in metadata or ():
        if name == "authorization" and isinstance(value, str) and value[: len(BEARER)].lower() == BEARER:
            return value[len(BEARER) :].strip()
    return ""


def refusal(presented: str, token: bytes, *, where: str = "metadata") -> str | None:
    """Why a caller presenting ``presented`` is refused when ``token`` is required, or None when it is
    right. Compared in constant time; ``where`` names how a caller sends it (gRPC metadata, an HTTP header)."""
    if not presented:
        return f"missing bearer token: send {where} 'authorization: Bearer <token>'"
    if not hmac.compare_digest(presented.encode(), token):
        return "invalid bearer token"
    return None


class TokenInterceptor(grpc.ServerInterceptor):
    """UNAUTHENTICATED for calls under ``prefix`` (a service's methods) without the right bearer token."""

    def __init__(self, token: str, prefix: str, *, hint: str = "a token file") -> None:
        if not token:
            raise ValueError(f"calls under {prefix} need a token: set {hint}")
        self._token = token.encode()
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"TokenInterceptor(prefix={self._prefix!r})"

    def problem(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
        """Why a call with this metadata is refused, or None when its token is right."""
        return refusal(presented_token(metadata), self._token)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(self._prefix):
            return handler
        problem = self.problem(handler_call_details.invocation_metadata)
        if problem is None:
            return handler
        log.debug("refused %s: %s", handler_call_details.method, problem)
        return _refusal(handler, problem)


def _refusal(handler: grpc.RpcMethodHandler[Any, Any], message: str) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as ``handler`` that answers UNAUTHENTICATED."""

    def refuse(request: Any, context: grpc.ServicerContext) -> NoReturn:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)
