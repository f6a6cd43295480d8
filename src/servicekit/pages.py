"""Page tokens: opaque to callers, strict when they come back.

A token is the URL-safe base64 of a JSON list of strings (the key after which the next page
starts). A token that was not issued by us in that shape — too long, not base64, not JSON,
nested without end, of the wrong types or length — is refused with ValueError, which each
service reports as INVALID_ARGUMENT naming ``page_token``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

MAX_TOKEN = 2048  # characters; our tokens hold a key of a few ids


class BadToken(ValueError):
    """A page token we did not issue."""


def encode(key: Sequence[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode()


def decode(token: str, parts: int) -> tuple[str, ...]:
    """The key a token of ``parts`` strings carries; BadToken for anything else."""
    if len(token) > MAX_TOKEN:
        raise BadToken(f"is {len(token)} characters long; tokens this service issues are shorter")
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, RecursionError, UnicodeError):
        raise BadToken("is not a token this service issued") from None
    if not isinstance(value, list) or len(value) != parts or not all(isinstance(v, str) for v in value):
        raise BadToken("is not a token this service issued")
    if not all(_encodable(v) for v in value):  # JSON's \ud800 decodes to a str no database can take
        raise BadToken("is not a token this service issued")
    return tuple(value)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
