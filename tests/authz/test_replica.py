"""The replica: whole revisions only (large ones come in parts), staleness and backoff while the store is away."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz.client import Client
from authz.replica import Replica
from authz.server import REPLICA_HEALTH, DecisionServer, ServerConfig
from authz.server import create_server as create_decision_server
from store import service
from store.client import StoreClient
from store.server import StoreConfig, StoreServer, create_server
from store.v1 import store_pb2 as pb
from tests.conftest import DEMO_WORLD, POLICIES, TOKEN
from tests.helpers import free_port

CHECK = ("user:carol", "run.view", "run:keep")


def _world(*runs: tuple[str, int]) -> bytes:
    """One team, one project, the run ``keep`` and, for each (tag, n), n more runs named after tag."""
    rows = [{"id": "keep", "project": "p", "creator": "carol"}]
    rows += [{"id": f"{tag}-{i}", "project": "p", "creator": "carol"} for tag, n in runs for i in range(n)]
    world = {
        "orgs": [{"id": "acme", "users": ["carol"]}],
        "teams": [{"id": "vision", "org": "acme", "members": {"carol": "member"}}],
        "projects": [{"id": "p", "owner": "team:vision", "visibility": "team", "creator": "carol"}],
        "runs": rows,
    }
    return json.dumps({"world": world}).encode()


def _parts(client: StoreClient, revision: int) -> list[pb.WatchResponse]:
    """The Watch messages that carry ``revision`` (heartbeats left out)."""
    parts = []
    for response in client.watch(revision - 1, timeout=30):
        if not response.changes and not response.revision_complete:
            continue  # a heartbeat: no revision in it
        assert response.revision == revision
        parts.append(response)
        if response.revision_complete:
            return parts
    raise AssertionError("the stream ended")


def _view(replica: Replica) -> tuple[int, int, int, bool]:
    with replica.reading() as state:
        return state.revision, state.count(), len(state.rows["run"]), state.get("run", "keep") is not None


@pytest.mark.parametrize("replace", [True, False], ids=["replace", "add"])
def test_parts_of_a_revision_are_applied_together(
    store_client: StoreClient, monkeypatch: pytest.MonkeyPatch, replace: bool
) -> None:
    """Fed the real parts of a large revision, the replica shows nothing of it until the last part."""
    monkeypatch.setattr(service, "WATCH_BATCH", 100)
    first = store_client.import_world(_world(("a", 250))).revision
    replica = Replica()
    replica.load_snapshot(iter(store_client.snapshot(timeout=30)))
    assert replica.revision == first
    before = _view(replica)
    roles_version = replica.state.custom_roles_version
    world = _world(("b", 300)) if replace else _world(("a", 250), ("b", 300))
    second = store_client.import_world(world, replace=replace).revision
    parts = _parts(store_client, second)
    assert len(parts) > 2, "the revision must come in parts for this test"
    changed: list[int] = []
    replica._on_change = lambda state: changed.append(state.revision)
    for part in parts[:-1]:
        replica.apply_watch(part)
        assert _view(replica) == before, "a part of a revision was visible before its last part"
        assert changed == []
    replica.apply_watch(parts[-1])
    expected = (second, replica.state.count(), 301 if replace else 551, True)
    assert _view(replica) == expected
    assert changed == [second]
    with StoreClient(store_client.address, TOKEN) as client:
        fresh = Replica()
        fresh.load_snapshot(iter(client.snapshot(timeout=30)))
    assert fresh.state.rows == replica.state.rows, "the parts applied together make the store's state"
    if replace:
        assert replica.state.custom_roles_version > roles_version, "engines must rebuild custom-role lines"


def test_replace_is_never_seen_half_applied(store_server: StoreServer) -> None:
    """ImportWorld(replace) of a world bigger than one Watch part: readers see the old or the new world."""
    store = StoreClient(f"127.0.0.1:{store_server.port}", TOKEN)
    worlds = [(_world(("a", 6000)), 6001), (_world(("b", 5000)), 5001)]
    revision = store.import_world(worlds[0][0]).revision
    decision = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{store_server.port}", store_token=TOKEN,
                     policies=POLICIES)
    )  # fmt: skip
    stop = threading.Event()
    problems: list[str] = []
    reads = [0, 0]

    def report(problem: str) -> None:
        if len(problems) < 100:  # enough to see what went wrong
            problems.append(problem)

    def reader() -> None:
        last = 0
        while not stop.is_set():
            seen, _, runs, keep = _view(decision.replica)
            reads[0] += 1
            if seen < last or seen == 0:
                report(f"revision went from {last} to {seen}")
            if runs not in (6001, 5001) or not keep:
                report(f"half a revision at {seen}: {runs} runs, keep {'present' if keep else 'missing'}")
            last = seen

    def checker() -> None:
        last = 0
        with Client(f"127.0.0.1:{decision.port}") as client:
            while not stop.is_set():
                answer = client.check(*CHECK)
                reads[1] += 1
                if not answer.allowed or answer.revision < last or answer.revision == 0:
                    report(f"check at revision {answer.revision} (after {last}): {answer.reason}")
                last = answer.revision

    threads = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=checker)]
    try:
        assert decision.replica.wait_for(revision, 60)
        for thread in threads:
            thread.start()
        for n in range(1, 4):
            document, _ = worlds[n % 2]
            revision = store.import_world(document, replace=True).revision
            assert decision.replica.wait_for(revision, 60)
            assert _view(decision.replica)[2] == worlds[n % 2][1]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        decision.stop(0)
        store.close()
    assert reads[0] > 0, "no reads"
    assert reads[1] > 0, "no checks"
    assert problems == [], "; ".join(problems[:6])


# ---- the store goes away --------------------------------------------------------------------


def _store(port: int, db: Path) -> StoreServer:
    return create_server(StoreConfig(listen=f"127.0.0.1:{port}", database_url=f"sqlite:///{db}", token=TOKEN))


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=REPLICA_HEALTH), timeout=5
        )
        return int(reply.status)


def _until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


class _Counted:
    """Counts the streams the replica opens (each one is a connection attempt)."""

    def __init__(self, client: StoreClient) -> None:
        self.count = 0
        for name in ("watch", "snapshot"):
            setattr(client, name, self._counting(getattr(client, name)))

    def _counting(self, method: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        def call(*args: Any, **kwargs: Any) -> Iterator[Any]:
            self.count += 1
            return method(*args, **kwargs)

        return call


def _decision(port: int) -> DecisionServer:
    return create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{port}", store_token=TOKEN, policies=POLICIES)
    )


SERVING = health_pb2.HealthCheckResponse.SERVING


def test_store_outage_staleness_backoff_and_health(tmp_path: Path) -> None:
    """While the store is down: staleness grows, retries back off, /replica health stays NOT_SERVING."""
    port = free_port()
    store = _store(port, tmp_path / "store.db")
    with StoreClient(f"127.0.0.1:{port}", TOKEN) as writer:
        writer.import_world(DEMO_WORLD.read_bytes())
    decision = _decision(port)
    address = f"127.0.0.1:{decision.port}"
    try:
        assert decision.replica.synced.wait(20)
        _until(lambda: _health(address) == SERVING, 10)
        counted = _Counted(decision.replica.client)  # type: ignore[arg-type]
        store.stop(0)
        _until(lambda: _health(address) != SERVING, 5)
        start, attempts_before = time.monotonic(), counted.count
        samples: list[tuple[float, float, int]] = []  # (seconds into the outage, staleness, health)
        while time.monotonic() - start < 4.0:
            samples.append((time.monotonic() - start, decision.replica.staleness(), _health(address)))
            time.sleep(0.05)
        attempts = counted.count - attempts_before
        staleness = [s for _, s, _ in samples]
        problems = []
        if any(later < earlier - 0.01 for earlier, later in itertools.pairwise(staleness)):
            problems.append(f"staleness went down: {[round(s, 2) for s in staleness]}")
        if staleness[-1] < 2.0:
            problems.append(f"staleness after 4 s of outage is {staleness[-1]:.2f}s")
        if attempts > 10:
            problems.append(f"{attempts} reconnect attempts in 4 s")
        serving = [round(t, 2) for t, _, h in samples if h == SERVING]
        if serving:
            problems.append(f"/replica health was SERVING during the outage at {serving}")
        assert problems == [], "; ".join(problem[:200] for problem in problems)
        assert decision.replica.attempts >= counted.count
        assert not decision.replica.connected

        store = _store(port, tmp_path / "store.db")
        with StoreClient(f"127.0.0.1:{port}", TOKEN) as writer:
            # wait_for_ready: this channel shares the replica's subchannel, which may still be
            # backing off from the outage.
            revision = writer.stub.RemoveMember(
                pb.MembershipKey(team="vision", user="carol"), metadata=writer.metadata, timeout=30,
                wait_for_ready=True,
            ).revision  # fmt: skip
        with Client(address, timeout=30) as client:
            after = client.check("user:carol", "report.edit", "report:rep-weekly-vision", min_revision=revision)
        assert not after.allowed, "the replica caught up after the store came back"
        assert after.revision >= revision
        _until(lambda: _health(address) == SERVING, 10)
        assert decision.replica.staleness() == 0.0
    finally:
        decision.stop(0)
        store.stop(0)


def test_silent_stream_is_noticed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Watch stream that stays open but says nothing is given up on: stale, reconnected."""
    monkeypatch.setattr(service, "WATCH_HEARTBEAT", 3600.0, raising=False)  # one message per stream, then silence
    port = free_port()
    store = _store(port, tmp_path / "store.db")
    with StoreClient(f"127.0.0.1:{port}", TOKEN) as writer:
        writer.import_world(DEMO_WORLD.read_bytes())
    decision = _decision(port)
    replica = decision.replica
    try:
        assert replica.synced.wait(20)
        _until(lambda: replica.connected, 5)
        counted = _Counted(replica.client)  # type: ignore[arg-type]
        noticed = 0.0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not noticed:
            noticed = replica.staleness()
            time.sleep(0.02)
        assert noticed >= 2.0, f"a silent stream was never noticed (staleness stayed {noticed})"
        _until(lambda: counted.count >= 1 and replica.connected, 5)
        assert replica.staleness() == 0.0
    finally:
        decision.stop(0)
        store.stop(0)


def test_idle_store_keeps_the_replica_connected(tmp_path: Path) -> None:
    """Heartbeats keep an idle Watch stream alive: no reconnects, staleness 0, store revision known."""
    port = free_port()
    store = _store(port, tmp_path / "store.db")
    with StoreClient(f"127.0.0.1:{port}", TOKEN) as writer:
        revision = writer.import_world(DEMO_WORLD.read_bytes()).revision
    decision = _decision(port)
    replica = decision.replica
    try:
        assert replica.wait_for(revision, 20)  # the snapshot is loaded; the Watch stream is opened next
        _until(lambda: replica.connected, 5)
        synced = time.monotonic()
        # Contact after the snapshot can only come on the Watch stream: once there is some, it is open,
        # and any stream the replica opens from now on is a reconnect.
        _until(lambda: replica.last_contact > synced, 5)
        counted = _Counted(replica.client)  # type: ignore[arg-type]
        start = time.monotonic()
        while time.monotonic() - start < 4.5:
            assert replica.connected
            assert replica.staleness() == 0.0
            time.sleep(0.05)
        assert counted.count == 0, "an idle, healthy stream was dropped"
        assert time.monotonic() - replica.last_contact < 2.0, "heartbeats count as contact"
        assert replica.store_revision == revision
        assert replica.revision == revision, "a heartbeat is not a revision"
    finally:
        decision.stop(0)
        store.stop(0)
