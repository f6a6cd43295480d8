"""Where the store's bearer token is read from: light, so clients and the CLI need no server code."""

from __future__ import annotations

from pathlib import Path

from servicekit import tokens

TOKEN_ENV = "AUTHZ_STORE_TOKEN"  # noqa: S105 - the variable name, not a secret
DEFAULT_TOKEN_FILE = Path("var/store.token")

__all__ = ["DEFAULT_TOKEN_FILE", "TOKEN_ENV", "read_token"]


def read_token(token_file: Path | None = None) -> str:
    """$AUTHZ_STORE_TOKEN, else the token file (default var/store.token), else empty."""
    return tokens.read_token(TOKEN_ENV, token_file or DEFAULT_TOKEN_FILE)
