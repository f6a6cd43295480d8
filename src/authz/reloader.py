"""Live policy reload: watch `policies/`, validate a changed policy, swap it in or keep the last good one.

One thread polls the directory's files (names, sizes, modification times, and content hash on
change). A policy that does not load is refused: the previous one keeps serving, and the error
(file:line and what is wrong) is logged and kept in ``error`` for health to report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from authz.engines.holder import EngineHolder
from authz.errors import PolicyError
from authz.metrics import DecisionMetrics
from authz.policy import Policy, load_policy

log = logging.getLogger("authz.reloader")


def _signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple(
            sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir() if p.is_file())
        )
    except OSError:
        return (("<unreadable>", 0, 0),)


class PolicyReloader:
    def __init__(
        self,
        directory: Path,
        holder: EngineHolder,
        *,
        interval: float = 0.25,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.directory = directory
        self.holder = holder
        self.interval = interval
        self.error = ""
        self.reloads = 0
        self.failures = 0
        self.metrics: DecisionMetrics | None = None
        self._on_change = on_change
        self._signature = _signature(directory)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-reloader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def check(self) -> Policy | None:
        """Reload if the files changed; returns the new policy when one was swapped in."""
        signature = _signature(self.directory)
        if signature == self._signature:
            return None
        self._signature = signature
        try:
            policy = load_policy(self.directory)
        except PolicyError as exc:
            self.failures += 1
            self._count_failure()
            self.error = str(exc)
            log.error("policy change refused, still serving version %s: %s", self.holder.policy.version, exc)
            self._notify()
            return None
        if policy.version == self.holder.policy.version:
            self.error = ""
            self._notify()
            return None
        try:
            self.holder.set_policy(policy)
        except Exception as exc:  # noqa: BLE001 - pycasbin rejects what our lint let through
            self.failures += 1
            self._count_failure()
            self.error = f"{self.directory}: the engine refused the policy: {exc}"
            log.error("policy change refused, still serving version %s: %s", self.holder.policy.version, exc)
            self._notify()
            return None
        self.reloads += 1
        if self.metrics is not None:
            self.metrics.reloads.inc()
        self.error = ""
        log.info("policy reloaded: version %s (%d lines)", policy.version, len(policy.lines))
        self._notify()
        return policy

    def _count_failure(self) -> None:
        if self.metrics is not None:
            self.metrics.reload_failures.inc()

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:
                log.exception("policy watcher error")
