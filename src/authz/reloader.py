"""Live policy reload: a settled snapshot of `policies/`, checked off to the side, swapped in whole.

One thread watches the directory with ``watchfiles`` (its Rust ``notify`` backend: inotify on
Linux, FSEvents, ReadDirectoryChangesW): a file event wakes it. An event is only a trigger; what
decides is the content. A change goes live only when all of this holds, and otherwise the last
good version keeps serving:

1. Settled: the files' content (a hash of every file's bytes, not sizes or modification times)
   has stayed the same for ``settle`` seconds, so a file still being written is never read.
2. Checked: the snapshot whose hash settled (the bytes read, not the files re-read later) is
   built into a policy and passes every check of `authz policy lint` (authz/policy.py,
   authz/lint.py): an empty, truncated or half-edited file does not load.
3. Tested: with decision tests configured (``serve --policy-tests``), every case passes against
   the new policy (``gate``).
4. Swapped: the engine is built off to the side and replaces the old one in one step.

While a change settles, the content is hashed again every ``interval`` seconds (events or not),
until it has stayed the same for ``settle`` seconds. Events can be missed: inotify does not see
edits made on another machine of a network filesystem (NFS, SMB), some container bind mounts and
FUSE filesystems, and drops events when its queue overflows or its watch limit is reached. So
the content is also hashed every ``backstop`` seconds whatever the events say (a slow poll, the
backstop: a missed edit is picked up late, never lost), and if the watcher cannot run at all
(the directory is gone, no inotify instance is left) the thread polls every ``interval`` seconds
and tries the watcher again. ``WATCHFILES_FORCE_POLLING`` makes watchfiles itself poll.

A refused change is logged with every problem (file:line), kept in ``error`` for health
(`authz.v1.Authorizer/policy` NOT_SERVING, `policy-error` trailer) and counted; fixing it logs
that the new version serves. The same content is judged once, not on every check.

:meth:`PolicyReloader.stop` sets the event the watcher waits on (watchfiles checks it every
50 ms), so the thread ends promptly.

Shared: ``error``, ``reloads``, ``failures``, ``events`` are written by the reloader thread only and
read by health and metrics (single assignments of immutable values).
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
BACKSTOP = 5.0  # seconds between checks of the content when no event came (missed events)

# watchfiles logs every batch of changes at INFO; the reloader logs what it does with them.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

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
        backstop: float = BACKSTOP,
        gate: Gate | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.directory = directory
        self.holder = holder
        self.interval = interval
        self.settle = settle
        self.backstop = backstop
        self.gate = gate
        self.error = ""
        self.reloads = 0
        self.failures = 0
        self.events = 0  # batches of file events the watcher reported
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
        """One check: judge settled changed content; returns the new policy when one was swapped in."""
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
        while not self._stop.is_set():
            try:
                self._watch()
            except Exception:  # the watcher failed: poll, then try it again
                log.exception("policy watcher failed; polling every %s s for %s s", self.interval, self.backstop)
                until = time.monotonic() + self.backstop
                while time.monotonic() < until and not self._stop.wait(self.interval):
                    self._check()

    def _watch(self) -> None:
        """Check on every file event, every ``interval`` while a change settles, every ``backstop``
        otherwise; returns when :meth:`stop` is called."""
        import watchfiles

        self._check()  # what changed before the watcher started
        last = time.monotonic()
        timeout = max(1, int(self.interval * 1000))
        for changes in watchfiles.watch(
            self.directory, stop_event=self._stop, rust_timeout=timeout, yield_on_timeout=True, raise_interrupt=False
        ):
            now = time.monotonic()
            if changes:
                self.events += 1
            if changes or self._pending or now - last >= self.backstop:
                last = now
                self._check(now)

    def _check(self, now: float | None = None) -> None:
        try:
            self.check(now)
        except Exception:
            log.exception("policy watcher error")
