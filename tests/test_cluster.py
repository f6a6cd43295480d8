"""A reduced cluster: two store instances on one database, two decision replicas following them, a store killed.

Writers write through both stores; after each acknowledged write at revision N, every replica is
asked with ``min_revision`` N and must answer what the write implies (read-your-writes across
instances: a replica following store B honours a revision acknowledged by store A). Store A is
killed with SIGKILL mid-run: the replica that followed it fails over to B without a restart, the
writer that used it moves to B, and at the end every acknowledged write is in the database.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz.client import Client
from authz.server import REPLICA_HEALTH, DecisionServer, ServerConfig
from authz.server import create_server as create_decision_server
from store.client import StoreClient
from store.v1 import store_pb2 as pb
from tests.conftest import POLICIES, TOKEN
from tests.helpers import authz_process, free_port, wait_serving

WRITES = 45  # per writer
KILL_AFTER = 15  # store A is killed once both writers have this many acknowledged writes
LIVE_RUNS = 3  # runs a writer keeps; older ones are deleted


def _world() -> bytes:
    world = {
        "orgs": [{"id": "acme", "users": ["carol", "w0", "w1"]}],
        "teams": [{"id": "vision", "org": "acme", "members": {"carol": "member"}}],
        "projects": [{"id": "p", "owner": "team:vision", "visibility": "team", "creator": "carol"}],
        "runs": [{"id": "keep", "project": "p", "creator": "carol"}],
    }
    return json.dumps({"world": world}).encode()


def _store(address: str, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    process = authz_process(
        "store", "serve", "--listen", address, "--database-url", database_url, env={"AUTHZ_STORE_TOKEN": TOKEN},
        log=log,
    )  # fmt: skip
    try:
        wait_serving(address)
    except BaseException:
        process.kill()
        process.wait(10)
        raise
    return process


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout}s")


def _replica_detail(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(service=REPLICA_HEALTH), timeout=5
        )
    return dict(call[1].trailing_metadata()).get("replica", "")


@dataclass
class Tally:
    """What the writers and readers saw; lists are appended to by several threads (list.append is atomic)."""

    wrong: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    checks: list[tuple[int, str]] = field(default_factory=list)  # (writer, replica address) per check
    acked: list[int] = field(default_factory=list)  # acknowledged writes per writer
    reads: list[bool] = field(default_factory=list)  # checks without min_revision answered during the run


class Writer:
    """Writes through its store (the other one once its store is gone) and checks every replica after each write."""

    def __init__(self, index: int, stores: list[str], replicas: list[str], tally: Tally) -> None:
        self.index = index
        self.user = f"w{index}"
        self.stores = stores  # preferred first
        self.replicas = replicas
        self.tally = tally
        self.member = False
        self.runs: list[str] = []  # acknowledged, not deleted
        self.deleted: list[str] = []  # deletion acknowledged
        self.store_index = 0

    def run(self, n: int) -> None:
        clients = [StoreClient(address, TOKEN) for address in self.stores]
        deciders = [Client(address, timeout=20, token="") for address in self.replicas]
        try:
            for step in range(n * 4):
                if self.tally.acked[self.index] >= n:
                    break
                self._step(clients, deciders, step)
        finally:
            for client in clients:
                client.close()
            for decider in deciders:
                decider.close()

    def _step(self, clients: list[StoreClient], deciders: list[Client], step: int) -> None:
        client = clients[self.store_index]
        try:
            if step % 3 == 0:
                if self.member:
                    revision = client.write("RemoveMember", pb.MembershipKey(team="vision", user=self.user))
                else:
                    revision = client.write("AddMember", pb.Membership(team="vision", user=self.user, role="member"))
                self.member = not self.member
                expect = [(f"user:{self.user}", "run:keep", self.member)]
            elif len(self.runs) >= LIVE_RUNS:
                gone = self.runs[0]
                try:
                    revision = client.write("DeleteRun", pb.Key(id=gone))
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    # An earlier attempt, cut off by the kill, committed: the run is gone all the same.
                    revision = client.revision()
                self.runs.pop(0)
                self.deleted.append(gone)
                expect = [("user:carol", f"run:{gone}", False)]
            else:
                run = f"r-{self.index}-{step}"  # a fresh id per attempt: an unacknowledged create may have committed
                revision = client.write("CreateRun", pb.Run(id=run, project="p", creator="user:carol"))
                self.runs.append(run)
                expect = [("user:carol", f"run:{run}", True)]
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            # Unknown outcome (the store died around the call): move on to the next store and
            # learn what the database holds from it.
            self.store_index = (self.store_index + 1) % len(clients)
            self._reconcile(clients[self.store_index])
            return
        self.tally.acked[self.index] += 1
        for decider, address in zip(deciders, self.replicas, strict=True):
            for subject, resource, allowed in expect:
                try:
                    decision = decider.check(subject, "run.view", resource, min_revision=revision)
                except grpc.RpcError as exc:
                    self.tally.failed_checks.append(f"{address} at {revision}: {exc.code().name} {exc.details()}")
                    continue
                self.tally.checks.append((self.index, address))
                if decision.allowed != allowed or decision.revision < revision:
                    self.tally.wrong.append(
                        f"{address}: {subject} run.view {resource} after revision {revision}: allowed "
                        f"{decision.allowed} at {decision.revision} ({decision.reason}), expected {allowed}"
                    )

    def _reconcile(self, client: StoreClient) -> None:
        try:
            client.call("Get", pb.GetRequest(kind="membership", id=f"vision/{self.user}"), timeout=10)
            self.member = True
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            self.member = False


def _exists(client: StoreClient, kind: str, key: str) -> bool:
    try:
        client.call("Get", pb.GetRequest(kind=kind, id=key), timeout=10)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


@pytest.fixture
def stores(database_url: str, tmp_path: Path) -> Iterator[tuple[list[str], list[subprocess.Popen[bytes]]]]:
    """Two store processes on one fresh database: A (migrates it first), then B."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, address in zip("ab", addresses, strict=True):
            processes.append(_store(address, database_url, tmp_path / f"store-{name}.log"))
        yield addresses, processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


def test_store_killed_mid_run(stores: tuple[list[str], list[subprocess.Popen[bytes]]]) -> None:
    """2 stores, 2 replicas, one database; store A killed while writes and checks flow: nothing wrong, nothing lost."""
    (a, b), (process_a, _) = stores
    with StoreClient(a, TOKEN) as loader:
        loaded = loader.import_world(_world()).revision
    tally = Tally(acked=[0, 0])
    with ExitStack() as servers:
        # r0 prefers A, r1 prefers B: before the kill every write through A is checked on a replica
        # following B, and the other way round.
        deciders: list[DecisionServer] = []
        for order in (f"{a},{b}", f"{b} , {a}"):
            decider = create_decision_server(
                ServerConfig(listen="127.0.0.1:0", store=order, store_token=TOKEN, policies=POLICIES, metrics_port=0)
            )
            servers.callback(decider.stop, 0)
            deciders.append(decider)
        r0, r1 = deciders
        for decider in deciders:
            assert decider.replica.wait_for(loaded, 30)
        _until(lambda: r0.replica.connected and r1.replica.connected, 10, "replicas connected")
        assert (r0.replica.following, r1.replica.following) == (a, b)
        replicas = [f"127.0.0.1:{d.port}" for d in deciders]
        # Health is refreshed every 0.25 s: it names the store followed.
        _until(lambda: _replica_detail(replicas[0]).startswith(f"connected to {a};"), 5, "health naming A")

        stop_reading = threading.Event()

        def reader(address: str) -> None:
            with Client(address, timeout=20, token="") as client:
                while not stop_reading.is_set():
                    try:
                        client.check("user:carol", "run.view", "run:keep")
                        tally.reads.append(True)
                    except grpc.RpcError as exc:
                        tally.failed_checks.append(f"{address} (no min_revision): {exc.code().name}")

        writers = [Writer(i, [a, b] if i == 0 else [b, a], replicas, tally) for i in range(2)]
        threads = [threading.Thread(target=w.run, args=(WRITES,), name=f"writer-{w.index}") for w in writers]
        threads += [threading.Thread(target=reader, args=(address,), name="reader") for address in replicas]
        for thread in threads:
            thread.start()
        try:
            _until(lambda: min(tally.acked) >= KILL_AFTER, 120, "writes before the kill")
            process_a.send_signal(signal.SIGKILL)
            process_a.wait(10)
            reads_at_kill = len(tally.reads)
            _until(lambda: r0.replica.following == b and r0.replica.connected, 20, "r0 following B")
            _until(lambda: len(tally.reads) > reads_at_kill + 10, 20, "decisions answered after the kill")
        finally:
            for thread in threads[:2]:
                thread.join(180)
            stop_reading.set()
            for thread in threads[2:]:
                thread.join(30)
        assert not any(thread.is_alive() for thread in threads)

        assert tally.wrong == [], "\n".join(tally.wrong[:10])
        assert tally.failed_checks == [], "\n".join(tally.failed_checks[:10])
        assert tally.acked == [WRITES, WRITES]
        # Read-your-writes across instances: writes through A checked on r1 (following B) and the reverse.
        assert (0, replicas[1]) in tally.checks
        assert (1, replicas[0]) in tally.checks
        assert r0.replica.failovers >= 1
        assert r1.replica.failovers == 0
        assert r1.replica.following == b
        _until(lambda: _replica_detail(replicas[0]).startswith(f"connected to {b};"), 5, "health naming B")
        with urllib.request.urlopen(f"http://127.0.0.1:{r0.metrics_port}/metrics", timeout=10) as response:
            scraped = response.read().decode()
        assert f'authz_replica_store_followed{{store="{b}"}} 1.0' in scraped
        assert f'authz_replica_store_followed{{store="{a}"}} 0.0' in scraped

        # Nothing acknowledged was lost: read back through the surviving store.
        with StoreClient(b, TOKEN) as survivor:
            lost = [f"run {run}" for w in writers for run in w.runs if not _exists(survivor, "run", run)]
            lost += [
                f"deleted run {run} is back" for w in writers for run in w.deleted if _exists(survivor, "run", run)
            ]
            lost += [
                f"membership of {w.user}" for w in writers
                if _exists(survivor, "membership", f"vision/{w.user}") != w.member
            ]  # fmt: skip
            final = survivor.revision()
        assert lost == [], lost
        for decider in deciders:
            assert decider.replica.wait_for(final, 20)
            assert decider.replica.revision == final
