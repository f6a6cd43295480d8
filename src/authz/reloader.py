"""Live policy reload: a settled snapshot of `policies/`, checked off to the side, swapped in whole.

One thread polls the directory every ``interval`` seconds. A change goes live only when all of
this holds, and otherwise the last good version keeps serving:

1. Settled: the files' content (a hash of every file's bytes, not sizes or modification times)
   has stayed the same for ``settle`` seconds, so a file still being written is never read.
2. Checked: the snapshot whose hash settled (the bytes read, not the files re-read later) is
   built into a policy and passes every check of `authz policy lint` (authz/policy.py,
   authz/lint.py): an empty, truncated or half-edited file does not load.
3. Tested: with decision tests configured (``serve --policy-tests``), every case passes against
   the new policy (``gate``).
4. Swapped: the engine is built off to the side and replaces the old one in one step.

A refused change is logged with every problem (file:line), kept in ``error`` for health
(`authz.v1.Authorizer/policy` NOT_SERVING, `policy-error` trailer) and counted; fixing it logs
that the new version serves. The same content is judged once, not on every poll.

Shared: ``error``, ``reloads``, ``failures`` are written by the reloader thread only and read by
health and metrics (single assignments of immutable values).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from authz.engines.holder import EngineHolder
from authz.errors import PolicyError
from authz.metrics import DecisionMetrics
from authz.policy import Policy, build_policy, read_files, version_of

log = logging.getLogger("authz.reloader")

SETTLE = 0.5  # seconds a change must stay unchanged before it is read

# The decision-test gate: a candidate policy -> descriptions of the cases it fails (none: passes).
Gate = Callable[[Policy], list[str]]


class PolicyReloader:
    def __init__(
        self,
        directory: Path,
        holder: EngineHolder,
        *,
        interval: float = 0.25,
        settle: float = SETTLE,
        gate: Gate | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.directory = directory
        self.holder = holder
        self.interval = interval
        self.settle = settle
        self.gate = gate
        self.error = ""
        self.reloads = 0
        self.failures = 0
        self.metrics: DecisionMetrics | None = None
        self._on_change = on_change
        self._seen = holder.policy.version  # the content last judged (the serving one at start)
        self._pending = ""  # content that changed and is settling
        self._since = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-reloader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def check(self, now: float | None = None) -> Policy | None:
        """One poll: judge settled changed content; returns the new policy when one was swapped in."""
        now = time.monotonic() if now is None else now
        try:
            files = read_files(self.directory)
            content = version_of(files)
        except PolicyError as exc:
            files, content = {}, f"unreadable: {exc}"
        if content == self._seen:
            self._pending = ""
            return None
        if content != self._pending:
            self._pending, self._since = content, now  # changed (again): wait until it settles
            return None
        if now - self._since < self.settle:
            return None
        self._seen, self._pending = content, ""
        if content == self.holder.policy.version:  # back to the serving version
            self._clear()
            return None
        if not files:
            self._refused("lint", content.removeprefix("unreadable: "))
            return None
        try:
            policy = build_policy(files, self.directory)
        except PolicyError as exc:
            self._refused("lint", str(exc))
            return None
        failing = self.gate(policy) if self.gate is not None else []
        if failing:
            more = f"\n... and {len(failing) - 10} more" if len(failing) > 10 else ""
            shown = "\n".join(failing[:10]) + more
            self._refused("tests", f"{len(failing)} decision test(s) fail with version {policy.version}:\n{shown}")
            return None
        try:
            self.holder.set_policy(policy)
        except Exception as exc:  # noqa: BLE001 - an engine that refuses what lint let through
            self._refused("engine", f"{self.directory}: the engine refused the policy: {exc}")
            return None
        self.reloads += 1
        if self.metrics is not None:
            self.metrics.reloads.inc()
        self.error = ""
        log.info("policy version %s serving (%d lines)", policy.version, len(policy.lines))
        self._notify()
        return policy

    def _refused(self, reason: str, error: str) -> None:
        """Refuse the change: the last good version serves on."""
        self.failures += 1
        if self.metrics is not None:
            self.metrics.reload_failures.inc()
            self.metrics.refusals.labels(reason).inc()
        self.error = error
        log.error(
            "policy change refused (%s), version %s still serving:\n%s", reason, self.holder.policy.version, error
        )
        self._notify()

    def _clear(self) -> None:
        if self.error:
            self.error = ""
            log.info("policy files are back to version %s, which is serving", self.holder.policy.version)
            self._notify()

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:
                log.exception("policy watcher error")
