"""Faults: the store goes away under load; the policy directory disappears. Decisions keep flowing."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz.client import Client
from authz.server import POLICY_HEALTH, REPLICA_HEALTH, ServerConfig, create_server
from store.client import StoreClient
from store.v1 import store_pb2 as pb
from tests.conftest import DEMO_WORLD, POLICIES, TOKEN, Stack
from tests.helpers import authz_process, free_port, wait_serving

CHECK = ("user:carol", "report.edit", "report:rep-weekly-vision")


def _health(address: str, service: str) -> tuple[int, dict[str, str]]:
    with grpc.insecure_channel(address) as channel:
        reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return reply.status, {k: str(v) for k, v in (call.trailing_metadata() or ())}


def _until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


def _store(port: int, db: Path, log: Path) -> subprocess.Popen[bytes]:
    process = authz_process(
        "store", "serve", "--listen", f"127.0.0.1:{port}", "--database-url", f"sqlite:///{db}",
        env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log,
    )  # fmt: skip
    wait_serving(f"127.0.0.1:{port}")
    return process


def test_store_killed_under_load(tmp_path: Path) -> None:
    """SIGKILL the store during Check load: no check fails, health says degraded, then it catches up."""
    port = free_port()
    store = _store(port, tmp_path / "store.db", tmp_path / "store.log")
    with StoreClient(f"127.0.0.1:{port}", TOKEN) as writer:
        writer.import_world(DEMO_WORLD.read_bytes())
    server = create_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{port}", store_token=TOKEN, policies=POLICIES)
    )
    address = f"127.0.0.1:{server.port}"
    stop = threading.Event()
    calls: list[bool] = []
    failures: list[BaseException] = []

    def load() -> None:
        with Client(address) as client:
            while not stop.is_set():
                try:
                    calls.append(client.check(*CHECK).allowed)
                except grpc.RpcError as exc:
                    failures.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    try:
        assert server.replica.synced.wait(20)
        for thread in threads:
            thread.start()
        _until(lambda: len(calls) > 20, 10)
        _until(lambda: _health(address, REPLICA_HEALTH)[0] == health_pb2.HealthCheckResponse.SERVING, 5)
        store.send_signal(signal.SIGKILL)
        store.wait(10)
        _until(lambda: _health(address, REPLICA_HEALTH)[0] == health_pb2.HealthCheckResponse.NOT_SERVING, 5)
        _, trailers = _health(address, REPLICA_HEALTH)
        assert "store unreachable" in trailers["replica"]
        assert "revision 1" in trailers["replica"]
        assert _health(address, "")[0] == health_pb2.HealthCheckResponse.SERVING, "decisions keep flowing"
        served_while_down = len(calls)
        time.sleep(1.0)
        assert len(calls) > served_while_down, "checks are answered while the store is down"

        store = _store(port, tmp_path / "store.db", tmp_path / "store.log")
        with StoreClient(f"127.0.0.1:{port}", TOKEN) as writer:
            request = pb.MembershipKey(team="vision", user="carol")
            revision = writer.stub.RemoveMember(
                request, metadata=writer.metadata, timeout=30, wait_for_ready=True
            ).revision
        with Client(address, timeout=30) as client:
            decision = client.check(*CHECK, min_revision=revision)
        assert not decision.allowed, "the replica caught up after the store came back"
        _until(lambda: _health(address, REPLICA_HEALTH)[0] == health_pb2.HealthCheckResponse.SERVING, 10)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        server.stop(0)
        store.kill()
        store.wait(10)
    assert failures == []
    assert all(calls[:served_while_down])


def test_policy_directory_removed(stack: Stack) -> None:
    """Deleting the policy directory keeps the last good policy serving and reports the error."""
    version = stack.client.check(*CHECK).policy_version
    moved = stack.policies.with_name("gone")
    shutil.move(stack.policies, moved)
    try:
        _until(lambda: stack.decision.reloader.failures > 0, 5)
        decision = stack.client.check(*CHECK)
        assert decision.allowed
        assert decision.policy_version == version
        status, trailers = _health(stack.address, POLICY_HEALTH)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert "not a readable policy directory" in trailers["policy-error"]
    finally:
        shutil.move(moved, stack.policies)
    _until(lambda: _health(stack.address, POLICY_HEALTH)[0] == health_pb2.HealthCheckResponse.SERVING, 5)


def test_metrics_endpoint(tmp_path: Path, stack: Stack) -> None:
    """/metrics serves decisions by result and action, latencies, replica revision and lag, reloads."""
    import urllib.request

    server = create_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                     policies=stack.policies, metrics_port=0)
    )  # fmt: skip
    try:
        assert server.replica.synced.wait(10)
        with Client(f"127.0.0.1:{server.port}") as client:
            client.check(*CHECK)
            client.check("user:dave", "report.edit", "report:rep-weekly-vision")
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        server.stop(0)
    assert 'authz_decisions_total{action="report.edit",result="allow"} 1.0' in text
    assert 'authz_decisions_total{action="report.edit",result="deny"} 1.0' in text
    assert 'authz_call_seconds_count{method="Check"} 2.0' in text
    assert "authz_replica_revision 1.0" in text
    assert "authz_replica_lag_revisions 0.0" in text
    assert "authz_policy_reloads_total 0.0" in text
    assert "authz_policy_reload_failures_total 0.0" in text
