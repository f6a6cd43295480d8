"""The audit log: one JSON line per decision (who asked, what, the answer, rules, revision, policy).

Each line holds the request whole, context values included, so that ``authz policy replay`` can
decide it again under an edited policy. Callers may put names of people in context values: with
``redact_context`` (``serve --audit-redact-context``) only their keys are written, with
``"context_redacted": true``, and replay can decide again only the requests that had no context.

The promise, when the log cannot be written (disk full, file system gone read-only, ...):

* Decisions keep being answered. A failed write never fails or changes a decision; auditing is
  best effort next to the answer, not a gate on it.
* Every failed write is counted (:attr:`AuditLog.failures`; the decision service exports it as
  ``authz_audit_failures_total``) and the last one is shown (:attr:`AuditLog.error`: the path and
  the errno text; health ``authz.v1.Authorizer/audit`` is NOT_SERVING with it in an
  ``audit-error`` trailer) until a write succeeds again.
* No line is ever half written. A call's lines go out as one ``os.write`` of one bytes blob on an
  ``O_APPEND`` descriptor; if the write comes up short (the disk filled up in the middle), the
  rest is tried, and if that fails too the file is cut back (``ftruncate``) to where the blob
  began, provided the file still ends with our bytes. An ``flock`` held across the write and the
  cut keeps the worker processes of ``serve --workers N`` that share the file out of that window,
  so it always does, unless something else writes to or truncates the file.
* :meth:`AuditLog.reopen` opens the path again (after logrotate renamed the file: the service
  reopens on SIGHUP); lines written before it went to the old file, lines after to the new one.
* A log that cannot be opened at start is an error (:class:`AuditLogError`, an OSError naming the path): the
  service refuses to start rather than run without the audit it was asked for.

Shared between threads: gRPC handler threads call :meth:`record`; the main thread calls
:meth:`reopen` (SIGHUP) and :meth:`close`. A lock guards the descriptor and the failure state;
lines are encoded before it is taken. ``on_change`` (health) is called after the lock is released.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authz.decision import Decision, Request

log = logging.getLogger("authz.audit")

OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def _describe(path: Path, exc: OSError) -> str:
    """``/var/log/authz.jsonl: No space left on device (ENOSPC)``: the path and the errno text."""
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{path}: {exc.strerror or exc}" + (f" ({name})" if name else "")


class AuditLogError(OSError):
    """The audit log cannot be opened; the message (one line) names the path and why."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.errno = code


def _open(path: Path) -> int:
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
        return os.open(path, OPEN_FLAGS, 0o640)
    except OSError as exc:
        raise AuditLogError(f"cannot open the audit log {_describe(path, exc)}", exc.errno) from None


class AuditLog:
    def __init__(
        self,
        path: Path,
        *,
        on_failure: Callable[[], object] | None = None,
        on_change: Callable[[], object] | None = None,
        redact_context: bool = False,
    ) -> None:
        """Open ``path`` for appending (OSError naming it when it cannot be opened).

        ``on_failure`` is called once per failed write (a metrics counter); ``on_change`` when
        :attr:`error` changes (health). Both may be set later, before the first :meth:`record`.
        """
        self.path = path
        self.on_failure = on_failure
        self.on_change = on_change
        self._lock = threading.Lock()
        self._fd = _open(path)
        self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        self.redact_context = redact_context  # context values are left out (their keys stay)
        self.failures = 0  # writes that failed since start
        self.error = ""  # why the last write failed; empty once a write succeeds

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, failures={self.failures})"

    def record(self, peer: str, items: list[tuple[Request, Decision]]) -> bool:
        """Append one line per item; True when they were written. Never raises (see the module docstring)."""
        now = time.time()
        blob = "".join(
            json.dumps(
                {
                    "time": round(now, 6),
                    "peer": peer,
                    "subject": request.subject,
                    "action": request.action,
                    "resource": request.resource,
                    "context_keys": sorted(request.context),
                    **({"context_redacted": True} if self.redact_context else {"context": dict(request.context)}),
                    "allowed": decision.allowed,
                    "rules": list(decision.rules),
                    "policy_lines": list(decision.policy_lines),
                    "revision": decision.revision,
                    "policy_version": decision.policy_version,
                },
                separators=(",", ":"),
            )
            + "\n"
            for request, decision in items
        ).encode()  # json.dumps escapes non-ASCII: the blob is ASCII
        with self._lock:
            try:
                self._append(blob)
            except OSError as exc:
                problem = f"cannot write the audit log {_describe(self.path, exc)}"
                self.failures += 1
            else:
                problem = ""
            changed = problem != self.error
            self.error = problem
        # Logged when the state changes, not per failure: a full disk must not flood the log too.
        if changed and problem:
            log.error("%s; decisions are still answered, without their audit lines", problem)
        elif changed:
            log.info("the audit log %s is written again", self.path)
        if problem and self.on_failure is not None:
            self.on_failure()
        if changed and self.on_change is not None:
            self.on_change()
        return not problem

    def _append(self, blob: bytes) -> None:
        """Write ``blob`` whole, or raise OSError leaving none of it behind (called with the lock held)."""
        if self._fd < 0:
            raise OSError(errno.EBADF, "the audit log is closed")
        if self._regular:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            written = os.write(self._fd, blob)
            if written == len(blob):
                return
            # Short: the file ended where the blob began, plus what went out (O_APPEND).
            end = os.lseek(self._fd, 0, os.SEEK_CUR) if self._regular else 0
            start = end - written
            try:
                while written < len(blob):
                    more = os.write(self._fd, blob[written:])
                    if more == 0:
                        raise OSError(errno.EIO, "the audit log took no more bytes")
                    written += more
                    end += more
            except OSError:
                self._cut(start, end)
                raise
        finally:
            if self._regular:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _cut(self, start: int, end: int) -> None:
        """Remove a blob's first bytes, from ``start`` to ``end``, if the file still ends with them."""
        if not self._regular:
            log.error("a line of the audit log %s is cut short: it is not a regular file to cut", self.path)
            return
        size = os.fstat(self._fd).st_size
        if size != end:
            # Truncated (copytruncate) or written by something else since: cutting would lose or
            # corrupt what is not ours.
            log.error("a line of the audit log %s may be cut short: the file changed under it", self.path)
            return
        try:
            os.ftruncate(self._fd, start)
        except OSError as exc:
            log.error("a line of the audit log %s is cut short: %s", self.path, exc.strerror)

    def reopen(self) -> bool:
        """Open the path again (logrotate renamed the file); False, keeping the old file, when it cannot be."""
        try:
            fd = _open(self.path)
        except OSError as exc:
            log.error("%s; still writing to the file opened before", exc)
            return False
        with self._lock:
            old, self._fd = self._fd, fd
            self._regular = stat.S_ISREG(os.fstat(fd).st_mode)
        if old >= 0:
            os.close(old)
        log.info("reopened the audit log %s", self.path)
        return True

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
