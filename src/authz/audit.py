"""The audit log: one JSON line per decision (who asked, what, the answer, rules, revision, policy).

Written by gRPC handler threads; a lock keeps lines whole. Context values are not written, only
their keys, since callers may put names of people in them.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from authz.decider import Decision, Request


class AuditLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def record(self, peer: str, items: list[tuple[Request, Decision]]) -> None:
        now = time.time()
        lines = [
            json.dumps(
                {
                    "time": round(now, 6),
                    "peer": peer,
                    "subject": request.subject,
                    "action": request.action,
                    "resource": request.resource,
                    "context_keys": sorted(request.context),
                    "allowed": decision.allowed,
                    "rules": list(decision.rules),
                    "policy_lines": list(decision.policy_lines),
                    "revision": decision.revision,
                    "policy_version": decision.policy_version,
                },
                separators=(",", ":"),
            )
            for request, decision in items
        ]
        with self._lock:
            self._file.write("\n".join(lines) + "\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()
