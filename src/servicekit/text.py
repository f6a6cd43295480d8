"""Text that crosses a trust boundary: cut before it is echoed, escaped before it is logged.

An error message may quote what the caller sent, but never a megabyte of it: :func:`clip` cuts
a value to a readable prefix and says how long it was, and :func:`clip_message` caps a whole
message at a service boundary. A log line must never be forged by a caller's text:
:class:`EscapingFormatter` escapes line breaks and other control characters in the message of
every record (tracebacks, which the logging library adds after the message, keep their lines).
"""

from __future__ import annotations

import logging

MAX_SHOWN = 80
MAX_MESSAGE = 1024

# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators.
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape(text: str) -> str:
    """``text`` on one line: control characters written as escapes."""
    return text.translate(_CONTROL)


def clip(value: object, limit: int = MAX_SHOWN) -> str:
    """``repr(value)``, cut to about ``limit`` characters with its full length said."""
    shown = repr(value)
    if len(shown) <= limit:
        return shown
    size = f"{len(value)} characters" if isinstance(value, str | bytes) else f"{len(shown)} characters as text"
    return f"{shown[:limit]}... ({size})"


def clip_message(message: str, limit: int = MAX_MESSAGE) -> str:
    """A status message of at most about ``limit`` characters."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... (message cut: {len(message)} characters)"


class EscapingFormatter(logging.Formatter):
    """A Formatter whose message part is always one line (see the module docstring)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)
