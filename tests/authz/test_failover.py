"""A replica following several store instances: it fails over, resumes where it was, and never goes backwards."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from authz.cli import main
from authz.client import Client
from authz.replica import Replica
from authz.server import ServerConfig, store_addresses
from authz.server import create_server as create_decision_server
from store.client import StoreClient
from store.server import StoreConfig, StoreServer, create_server
from store.v1 import store_pb2 as pb
from tests.conftest import POLICIES, TOKEN
from tests.helpers import free_port

CHECK = ("user:carol", "run.view", "run:keep")


def _world(carol_member: bool) -> bytes:
    world = {
        "orgs": [{"id": "acme", "users": ["carol", "dave"]}],
        "teams": [{"id": "vision", "org": "acme", "members": {"carol" if carol_member else "dave": "member"}}],
        "projects": [{"id": "p", "owner": "team:vision", "visibility": "team", "creator": "dave"}],
        "runs": [{"id": "keep", "project": "p", "creator": "dave"}],
    }
    return json.dumps({"world": world}).encode()


def _store(port: int, db: Path) -> StoreServer:
    return create_server(StoreConfig(listen=f"127.0.0.1:{port}", database_url=f"sqlite:///{db}", token=TOKEN))


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_a_store_behind_the_replica_is_never_followed(tmp_path: Path) -> None:
    """A store at a lower revision (here: another database) is left alone; the replica keeps its revision.

    Store A holds carol in vision at revision 3; store B, listed second, holds another world at
    revision 1. A goes away: the replica tries B, finds it behind, applies nothing from it and
    keeps answering at revision 3; when A is back it follows A again.
    """
    port_a, port_b = free_port(), free_port()
    a = _store(port_a, tmp_path / "a.db")
    b = _store(port_b, tmp_path / "b.db")
    with StoreClient(f"127.0.0.1:{port_a}", TOKEN) as writer:
        writer.import_world(_world(carol_member=True))
        writer.write("CreateRun", pb.Run(id="r1", project="p", creator="user:dave"))
        ours = writer.write("CreateRun", pb.Run(id="r2", project="p", creator="user:dave"))
    with StoreClient(f"127.0.0.1:{port_b}", TOKEN) as other:
        theirs = other.import_world(_world(carol_member=False)).revision
    assert theirs < ours
    decision = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{port_a},127.0.0.1:{port_b}", store_token=TOKEN,
                     policies=POLICIES)
    )  # fmt: skip
    replica = decision.replica
    try:
        assert replica.wait_for(ours, 20)
        _until(lambda: replica.connected, 5, "connected")
        assert replica.following == f"127.0.0.1:{port_a}"
        a.stop(0)
        _until(lambda: "is behind this replica" in replica.last_error, 15, "B found behind")
        assert f"127.0.0.1:{port_b}" in replica.last_error
        # A store that answers but is behind is no contact: the rounds over both stores back off.
        before = replica.attempts
        time.sleep(2.0)
        assert replica.attempts - before <= 20, f"{replica.attempts - before} streams opened in 2 s"
        assert not replica.connected
        with Client(f"127.0.0.1:{decision.port}", token="") as client:
            answer = client.check(*CHECK)
        assert answer.allowed, "the replica took B's world"
        assert answer.revision == ours
        assert replica.revision == ours

        a = _store(port_a, tmp_path / "a.db")
        _until(lambda: replica.connected and replica.following == f"127.0.0.1:{port_a}", 20, "back on A")
        with StoreClient(f"127.0.0.1:{port_a}", TOKEN) as writer:
            later = writer.write("RemoveMember", pb.MembershipKey(team="vision", user="carol"))
        with Client(f"127.0.0.1:{decision.port}", token="", timeout=20) as client:
            assert not client.check(*CHECK, min_revision=later).allowed
    finally:
        decision.stop(0)
        a.stop(0)
        b.stop(0)


def test_a_revision_already_applied_is_not_applied_again(store_client: StoreClient) -> None:
    """Watch messages of a revision the replica has are ignored: nothing is applied twice."""
    store_client.import_world(_world(carol_member=True))
    revision = store_client.write("CreateRun", pb.Run(id="r1", project="p", creator="user:dave"))
    replica = Replica()
    replica.load_snapshot(iter(store_client.snapshot(timeout=30)))
    assert replica.revision == revision
    changed: list[int] = []
    replica._on_change = lambda state: changed.append(state.revision)
    for response in store_client.watch(revision - 1, timeout=30):
        if response.heartbeat:
            continue
        assert response.revision == revision
        replica.apply_watch(response)  # a store resending what the replica has: ignored
        if response.revision_complete:
            break
    assert changed == []
    assert replica.revision == revision


def test_store_list_is_parsed_and_checked(tmp_path: Path) -> None:
    """`--store A,B`: addresses in order, spaces allowed; an empty or repeated one is refused naming --store."""
    assert store_addresses("127.0.0.1:1") == ("127.0.0.1:1",)
    assert store_addresses("a:1, b:2 ,c:3") == ("a:1", "b:2", "c:3")
    for bad, problem in (("a:1,,b:2", "empty address"), ("a:1,", "empty address"), ("a:1,a:1", "given twice")):
        with pytest.raises(ValueError, match=problem):
            store_addresses(bad)
        with pytest.raises(ValueError, match=problem):
            create_decision_server(ServerConfig(listen="127.0.0.1:0", store=bad, policies=POLICIES))
        result = CliRunner().invoke(main, ["serve", "--store", bad, "--policies", str(POLICIES)])
        assert result.exit_code == 2, result.output
        assert "--store" in result.output
        assert problem in result.output
