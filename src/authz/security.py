"""The decision service's credentials: where its token lives and when decision calls need one.

Decision calls (authz.v1.Authorizer/*) need ``authorization: Bearer <token>`` off loopback, and on
loopback when asked (``--require-token``); health and reflection stay open. The transport (TLS,
binding) and the token mechanics are shared with the store, in :mod:`servicekit`.
"""

from __future__ import annotations

from pathlib import Path

from servicekit import tokens
from servicekit.tls import is_loopback

TOKEN_ENV = "AUTHZ_TOKEN"  # noqa: S105 - the variable name, not a secret
DEFAULT_TOKEN_FILE = Path("var/authz.token")
PROTECTED_PREFIX = "/authz.v1.Authorizer/"


def read_token(token_file: Path | None = None) -> str:
    """$AUTHZ_TOKEN, else the token file (default var/authz.token), else empty."""
    return tokens.read_token(TOKEN_ENV, token_file or DEFAULT_TOKEN_FILE)


def ensure_token(token_file: Path | None = None) -> str:
    """The configured decision-call token, or a new random one written to the file with mode 0600."""
    return tokens.ensure_token(TOKEN_ENV, token_file or DEFAULT_TOKEN_FILE, "decision-call")


def tokens_required(listen: str, require_token: bool | None) -> bool:
    """Decision calls need a token: as configured, else off on loopback and on everywhere else."""
    return require_token if require_token is not None else not is_loopback(listen)


def token_interceptor(token: str) -> tokens.TokenInterceptor:
    """The interceptor that makes decision calls need ``token``."""
    return tokens.TokenInterceptor(token, PROTECTED_PREFIX, hint=f"${TOKEN_ENV} or a token file")
