"""Live policy reload under concurrent Check load: good edits apply, bad edits are refused, no call fails."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz.client import Client
from authz.engines.holder import EngineHolder
from authz.policy import load_policy
from authz.reloader import PolicyReloader
from authz.server import POLICY_HEALTH
from tests.conftest import ROOT, Stack

REPORT_EDIT_ADMIN = "p, RP3, report.edit, team:admin, True, allow"
CHECK = ("user:dave", "report.edit", "report:rep-weekly-vision")  # a member, not the creator


class Load:
    """Threads calling Check until stopped; every outcome is kept."""

    def __init__(self, address: str, threads: int = 4) -> None:
        self.address = address
        self.errors: list[BaseException] = []
        self.calls = 0
        self.allowed_at: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with Client(self.address) as client:
            while not self._stop.is_set():
                try:
                    decision = client.check(*CHECK)
                except grpc.RpcError as exc:
                    with self._lock:
                        self.errors.append(exc)
                    continue
                with self._lock:
                    self.calls += 1
                    self.allowed_at.append((time.monotonic(), decision.allowed))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _wait_until(predicate: object, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s")


def _policy_health(address: str) -> tuple[int, str]:
    with grpc.insecure_channel(address) as channel:
        reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(service=POLICY_HEALTH), timeout=5
        )
        trailers = dict(call.trailing_metadata() or ())
    return reply.status, str(trailers.get("policy-error", ""))


def test_valid_edit_applies_within_two_seconds(stack: Stack) -> None:
    """Granting report.edit to every member changes the decision within 2 s, with no failed call."""
    reports = stack.policies / "reports.csv"
    with Load(stack.address) as load:
        _wait_until(lambda: load.calls > 5, 10)
        assert not stack.client.check(*CHECK).allowed
        _edit(reports, REPORT_EDIT_ADMIN, REPORT_EDIT_ADMIN.replace("team:admin", "team:member"))
        edited = time.monotonic()
        took = _wait_until(lambda: stack.client.check(*CHECK).allowed, 2.0)
        _wait_until(lambda: any(t > edited and ok for t, ok in load.allowed_at), 2.0)
    assert took <= 2.0
    assert load.errors == []
    assert stack.decision.reloader.reloads == 1


def test_broken_edit_keeps_the_last_good_policy(stack: Stack, caplog: object) -> None:
    """An edit that does not validate is refused: old decisions stand, health names file:line."""
    reports = stack.policies / "reports.csv"
    version = stack.client.check(*CHECK).policy_version
    with Load(stack.address) as load:
        _wait_until(lambda: load.calls > 5, 10)
        _edit(reports, REPORT_EDIT_ADMIN, "p, RP3, report.edit, team:admin, r.obj.creator ==, allow")
        _wait_until(lambda: stack.decision.reloader.failures > 0, 2.0)
        time.sleep(0.3)
    assert load.errors == []
    assert not any(ok for _, ok in load.allowed_at)
    decision = stack.client.check("user:bob", "report.edit", "report:rep-weekly-vision")
    assert decision.allowed, "the last good policy still serves"
    assert decision.policy_version == version
    status, error = _policy_health(stack.address)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert "policies/reports.csv:18" in error
    assert "condition does not parse" in error

    _edit(reports, "p, RP3, report.edit, team:admin, r.obj.creator ==, allow", REPORT_EDIT_ADMIN)
    _wait_until(lambda: _policy_health(stack.address)[0] == health_pb2.HealthCheckResponse.SERVING, 2.0)


def _reloader(tmp_path: Path, **options: float) -> tuple[PolicyReloader, Path]:
    """A reloader over a copy of policies/ whose backstop check never comes in a test: only the
    watcher's events can make it look."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    holder = EngineHolder(load_policy(policies))
    return PolicyReloader(policies, holder, interval=0.05, backstop=3600, **options), policies


def test_the_watcher_picks_up_edits_even_same_size_with_the_old_mtime(tmp_path: Path) -> None:
    """A file event (watchfiles) wakes the reloader, which judges content by its hash: an edit is
    picked up without polling, and so is a same-size edit whose modification time was put back."""
    reloader, policies = _reloader(tmp_path)
    reports = policies / "reports.csv"
    version = reloader.holder.policy.version
    reloader.start()
    try:
        time.sleep(0.3)  # the watcher is up
        _edit(reports, REPORT_EDIT_ADMIN, REPORT_EDIT_ADMIN.replace("team:admin", "team:member"))
        _wait_until(lambda: reloader.reloads == 1, 5.0)
        assert reloader.events >= 1
        assert reloader.holder.policy.version != version
        assert reloader.holder.policy.text_of("reports.csv") == reports.read_text()

        stat = reports.stat()
        text = reports.read_text()
        same_size = text.replace("r.obj.creator == r.sub.ref", "r.obj.creator != r.sub.ref", 1)
        assert len(same_size) == len(text)
        assert same_size != text
        reports.write_text(same_size)
        os.utime(reports, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert reports.stat().st_mtime_ns == stat.st_mtime_ns
        assert reports.stat().st_size == stat.st_size
        _wait_until(lambda: reloader.reloads == 2, 5.0)
        assert reloader.holder.policy.text_of("reports.csv") == same_size
        assert reloader.failures == 0
    finally:
        started = time.monotonic()
        reloader.stop()
        stopped = time.monotonic() - started
    assert not reloader._thread.is_alive()
    assert stopped < 1.0, f"the reloader took {stopped:.2f}s to stop"


def test_an_emptied_file_seen_by_the_watcher_is_refused_once(tmp_path: Path) -> None:
    """An emptied file seen by the watcher is refused (lint), never served; the refused content is
    not judged again while it stays the same."""
    reloader, policies = _reloader(tmp_path, settle=0.3)
    version = reloader.holder.policy.version
    reloader.start()
    try:
        time.sleep(0.3)
        (policies / "reports.csv").write_text("")
        _wait_until(lambda: reloader.failures == 1, 5.0)
        assert reloader.holder.policy.version == version
        assert "reports.csv" in reloader.error
        time.sleep(0.5)
        assert reloader.failures == 1
    finally:
        reloader.stop()
