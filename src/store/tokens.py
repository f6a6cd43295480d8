"""Bearer tokens kept in an environment variable or a private file (both services use these)."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("store.tokens")


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
