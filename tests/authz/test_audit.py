"""The audit log when it cannot be written, when it is rotated, and when a write comes up short.

Decisions keep being answered when the log cannot be written; each failure is counted and shown
in health (authz.v1.Authorizer/audit, `audit-error` trailer) until a write succeeds; SIGHUP
reopens the file (logrotate) and stops nothing; no line is ever half written. Tests run as root,
where permissions stop no write: /dev/full (every write fails with ENOSPC) stands for a full disk,
and RLIMIT_FSIZE makes the kernel cut a write short.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz.audit import AuditLog
from authz.client import Check, Client
from authz.decision import Decision, Request
from authz.server import DecisionServer, ServerConfig
from authz.server import create_server as create_decision_server
from store.server import StoreServer
from tests.conftest import ROOT, TOKEN, Stack
from tests.helpers import authz_process, free_port, wait_serving

ALLOWED = ("user:carol", "report.edit", "report:rep-weekly-vision")
DENIED = ("user:dave", "report.edit", "report:rep-weekly-vision")
AUDIT_HEALTH = "authz.v1.Authorizer/audit"  # the documented name (README, Operations)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _health(address: str, service: str) -> tuple[int, dict[str, str]]:
    with grpc.insecure_channel(address) as channel:
        reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return reply.status, {k: str(v) for k, v in (call.trailing_metadata() or ())}


def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.05)


def _lines(path: Path) -> list[dict[str, object]]:
    text = path.read_text()
    assert not text or text.endswith("\n"), f"a half line ends {path}: {text[-80:]!r}"
    return [json.loads(line) for line in text.splitlines()]


def _metric(server: DecisionServer, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"{name} ")]
    assert values, f"{name} not in /metrics"
    return values[0]


@pytest.fixture
def audited(stack: Stack) -> Iterator[Callable[[Path], DecisionServer]]:
    """Start decision services over the stack's store with the given audit log (and metrics)."""
    started: list[DecisionServer] = []

    def start(audit_log: Path) -> DecisionServer:
        server = create_decision_server(
            ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                         policies=stack.policies, audit_log=audit_log, metrics_port=0)
        )  # fmt: skip
        started.append(server)
        assert server.replica.synced.wait(10)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop(0)


def test_decisions_are_answered_when_the_audit_log_fails(audited: Callable[[Path], DecisionServer]) -> None:
    """With the log on a full disk (/dev/full), Check and BatchCheck answer as before; each failure
    is counted; health says so, naming the path and the errno text."""
    server = audited(Path("/dev/full"))
    address = f"127.0.0.1:{server.port}"
    with Client(address) as client:
        for _ in range(3):
            assert client.check(*ALLOWED).allowed
            assert not client.check(*DENIED).allowed
        answers = client.batch_check([Check(*ALLOWED), Check(*DENIED)])
        assert [d.allowed for d in answers] == [True, False]
    assert _metric(server, "authz_audit_failures_total") == 7.0
    assert _metric(server, 'authz_decisions_total{action="report.edit",result="allow"}') == 4.0
    status, trailers = _health(address, AUDIT_HEALTH)
    assert status == NOT_SERVING
    assert trailers["audit-error"] == "cannot write the audit log /dev/full: No space left on device (ENOSPC)"
    # The service itself is healthy: it answers (its health thread says so within a moment of the sync).
    _until(lambda: _health(address, "")[0] == SERVING)


def test_audit_health_recovers_after_a_successful_write(
    audited: Callable[[Path], DecisionServer], tmp_path: Path
) -> None:
    """The path leads to /dev/full, then (reopened) to a file: health is SERVING again after a write."""
    path = tmp_path / "audit.jsonl"
    path.symlink_to("/dev/full")
    server = audited(path)
    address = f"127.0.0.1:{server.port}"
    with Client(address) as client:
        assert client.check(*ALLOWED).allowed
        assert _health(address, AUDIT_HEALTH)[0] == NOT_SERVING
        path.unlink()
        server.reopen_audit_log()  # what SIGHUP does
        assert _health(address, AUDIT_HEALTH)[0] == NOT_SERVING, "unchanged until a write succeeds"
        assert client.check(*DENIED).allowed is False
    status, trailers = _health(address, AUDIT_HEALTH)
    assert (status, trailers.get("audit-error")) == (SERVING, None)
    assert [line["subject"] for line in _lines(path)] == ["user:dave"]
    assert _metric(server, "authz_audit_failures_total") == 1.0


def _record(log: AuditLog, subject: str) -> None:
    request = Request("user", subject, "report.view", "report", "r1", {})
    log.record("test", [(request, Decision(True, "ok", ("RP1",), ("reports.csv:3",), 1, "v1"))])


def test_reopen_after_rotation(tmp_path: Path) -> None:
    """Renamed by logrotate, then reopened: earlier lines stay in the old file, new lines go to a new one."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    try:
        _record(log, "before")
        path.rename(tmp_path / "audit.jsonl.1")
        _record(log, "between")  # still the open (renamed) file
        assert log.reopen()
        _record(log, "after")
    finally:
        log.close()
    assert [line["subject"] for line in _lines(tmp_path / "audit.jsonl.1")] == ["user:before", "user:between"]
    assert [line["subject"] for line in _lines(path)] == ["user:after"]


def test_an_audit_log_that_cannot_be_opened_refuses_the_start(stack: Stack, tmp_path: Path) -> None:
    """An audit log under a regular file: create_server raises an OSError naming the path and why."""
    (tmp_path / "file").write_text("")
    audit = tmp_path / "file" / "audit.jsonl"
    with pytest.raises(OSError, match=rf"^cannot open the audit log {audit}: Not a directory \(ENOTDIR\)$"):
        create_decision_server(
            ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                         policies=stack.policies, audit_log=audit)
        ).stop(0)  # fmt: skip


def test_cli_up_refuses_an_audit_log_it_cannot_open(tmp_path: Path) -> None:
    """`authz up --audit-log FILE/audit.jsonl`: one error line, no traceback, exit code 1."""
    (tmp_path / "file").write_text("")
    audit = tmp_path / "file" / "audit.jsonl"
    log = tmp_path / "up.log"
    process = authz_process(
        "up", "--port", str(free_port()), "--store-port", str(free_port()), "--database-url",
        f"sqlite:///{tmp_path / 'up.db'}", "--world", str(tmp_path / "none.yaml"), "--policies",
        str(ROOT / "policies"), "--audit-log", str(audit), env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log, cwd=tmp_path,
    )  # fmt: skip
    try:
        code = process.wait(60)
    finally:
        process.kill()
    text = log.read_text()
    assert code == 1, text
    assert "Traceback" not in text
    assert text.splitlines()[-1] == (
        f"Error: the decision service did not start: cannot open the audit log {audit}: Not a directory (ENOTDIR)"
    )


def test_sighup_reopens_the_audit_log_and_keeps_serving(stack: Stack, tmp_path: Path) -> None:
    """`authz serve --audit-log FILE`: after logrotate's rename and SIGHUP, it serves on into a new FILE."""
    port = free_port()
    audit = tmp_path / "audit.jsonl"
    log = tmp_path / "serve.log"
    process = authz_process(
        "serve", "--listen", f"127.0.0.1:{port}", "--store", f"127.0.0.1:{stack.store.port}", "--policies",
        str(stack.policies), "--audit-log", str(audit), env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        with Client(f"127.0.0.1:{port}") as client:
            assert client.check(*ALLOWED).allowed
            audit.rename(tmp_path / "audit.jsonl.1")
            process.send_signal(signal.SIGHUP)
            _until(lambda: "reopened the audit log" in log.read_text() or process.poll() is not None)
            assert process.poll() is None, f"SIGHUP stopped the service: {log.read_text()}"
            assert not client.check(*DENIED).allowed
        assert [line["subject"] for line in _lines(tmp_path / "audit.jsonl.1")] == ["user:carol"]
        assert [line["subject"] for line in _lines(audit)] == ["user:dave"]
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
    assert code == 0, log.read_text()


def test_store_survives_sighup(store_server: StoreServer, tmp_path: Path) -> None:
    """`authz store serve` ignores SIGHUP (it has no log file to reopen): it keeps serving."""
    port = free_port()
    log = tmp_path / "store.log"
    process = authz_process(
        "store", "serve", "--listen", f"127.0.0.1:{port}", "--database-url", f"sqlite:///{tmp_path / 's.db'}",
        env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        process.send_signal(signal.SIGHUP)
        _until(lambda: "SIGHUP" in log.read_text() or process.poll() is not None)
        assert process.poll() is None, f"SIGHUP stopped the store: {log.read_text()}"
        wait_serving(f"127.0.0.1:{port}", timeout=5)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
    assert code == 0, log.read_text()


# A process whose files may not grow past LIMIT bytes: the kernel cuts the write that crosses it
# short and refuses the next (EFBIG; SIGXFSZ ignored). Batches of three lines from four threads.
SHORT_WRITES = textwrap.dedent(
    """
    import json, resource, signal, sys, threading
    from pathlib import Path
    from authz.audit import AuditLog
    from authz.decision import Decision, Request

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    log = AuditLog(Path(sys.argv[1]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
    outcomes = {"written": 0, "failed": 0, "raised": 0}

    def work(n):
        for i in range(40):
            items = [(Request("user", f"u{n}-{i}-{k}", "report.view", "report", "r" * (n * 7 + k), {}),
                      Decision(True, "ok", ("RP1",), ("reports.csv:3",), i, "v1")) for k in range(3)]
            try:
                outcomes["failed" if log.record("peer", items) is False else "written"] += 1
            except OSError:
                outcomes["raised"] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(outcomes))
    """
)


@pytest.mark.parametrize("limit", [4096, 10_000, 20_011])
def test_no_half_lines_when_a_write_is_cut_short(tmp_path: Path, limit: int) -> None:
    """A write cut short by the file size limit leaves no partial line: whole batches or nothing."""
    path = tmp_path / "audit.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", SHORT_WRITES, str(path), str(limit)],
        check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    lines = _lines(path)  # every line parses, the file ends with a newline
    assert outcomes["raised"] == 0, outcomes
    assert outcomes["written"] > 0
    assert outcomes["failed"] > 0, outcomes  # the limit was reached
    assert len(lines) == 3 * outcomes["written"], outcomes
    assert path.stat().st_size <= limit
