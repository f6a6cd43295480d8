"""Watch and Snapshot: resuming, compaction, large revisions in parts, consistent snapshots."""

from __future__ import annotations

import grpc
import pytest

from store import service
from store.client import StoreClient
from store.server import StoreServer
from store.v1 import store_pb2 as pb


def _collect(client: StoreClient, after: int, until: int) -> list[tuple[int, int, bool]]:
    got: list[tuple[int, int, bool]] = []
    for response in client.watch(after, timeout=10):
        got.append((response.revision, len(response.changes), response.revision_complete))
        if response.revision == until and response.revision_complete:
            break
    return got


def test_watch_resumes_from_any_revision(store_client: StoreClient) -> None:
    """Watch(after=N) starts with revision N+1."""
    store_client.write("CreateOrg", pb.Org(id="acme"))
    for i in range(5):
        store_client.write("CreateTeam", pb.Team(id=f"t{i}", org="acme"))
    assert [r for r, _, _ in _collect(store_client, 3, 6)] == [4, 5, 6]


def test_compacted_history_asks_for_a_snapshot(store_server: StoreServer, store_client: StoreClient) -> None:
    """Watching from before the retained history fails with FAILED_PRECONDITION naming Snapshot."""
    store_client.write("CreateOrg", pb.Org(id="acme"))
    for i in range(4):
        store_client.write("CreateTeam", pb.Team(id=f"t{i}", org="acme"))
    assert store_server.servicer.compact(3) > 0
    with pytest.raises(grpc.RpcError) as info:
        next(iter(store_client.watch(1, timeout=5)))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Snapshot" in info.value.details()
    assert [r for r, _, _ in _collect(store_client, 3, 5)] == [4, 5]
    assert store_client.call("GetRevision", pb.RevisionRequest()).oldest_retained == 3


def test_large_revision_comes_in_parts(store_client: StoreClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A revision bigger than one batch arrives in parts; only the last is marked complete."""
    monkeypatch.setattr(service, "WATCH_BATCH", 10)
    teams = "".join(f"{{id: t{i}, org: acme}}, " for i in range(24))
    store_client.import_world(f"world: {{orgs: [{{id: acme}}], teams: [{teams}]}}".encode())
    store_client.write("CreateTeam", pb.Team(id="late", org="acme"))
    got = _collect(store_client, 0, 2)
    assert got == [(1, 10, False), (1, 10, False), (1, 5, True), (2, 1, True)]


def test_idle_watch_sends_heartbeats(store_client: StoreClient) -> None:
    """An idle stream says so: a heartbeat (the store's revision, no changes) at once, then about every second."""
    store_client.write("CreateOrg", pb.Org(id="acme"))
    revision = store_client.write("CreateTeam", pb.Team(id="t", org="acme"))
    stream = iter(store_client.watch(revision, timeout=10))
    first = next(stream)
    assert (first.heartbeat, first.revision, len(first.changes), first.revision_complete) == (True, revision, 0, False)
    second = next(stream)
    assert (second.heartbeat, second.revision) == (True, revision)
    written = store_client.write("CreateTeam", pb.Team(id="u", org="acme"))
    change = next(stream)
    assert (change.heartbeat, change.revision, len(change.changes), change.revision_complete) == (
        False, written, 1, True
    )  # fmt: skip
    after = next(stream)
    assert (after.heartbeat, after.revision, len(after.changes)) == (True, written, 0)


def test_pending_changes_come_before_any_heartbeat(store_client: StoreClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream with changes to send starts with them; heartbeats never come between the parts of a revision."""
    monkeypatch.setattr(service, "WATCH_BATCH", 10)
    teams = "".join(f"{{id: t{i}, org: acme}}, " for i in range(24))
    revision = store_client.import_world(f"world: {{orgs: [{{id: acme}}], teams: [{teams}]}}".encode()).revision
    got = []
    for response in store_client.watch(0, timeout=10):
        got.append((response.heartbeat, response.revision, len(response.changes), response.revision_complete))
        if response.heartbeat:
            break
    assert got == [(False, 1, 10, False), (False, 1, 10, False), (False, 1, 5, True), (True, revision, 0, False)]


def test_snapshot_is_one_revision(store_client: StoreClient) -> None:
    """Every chunk of a snapshot carries the same revision; the last is flagged."""
    store_client.write("CreateOrg", pb.Org(id="acme"))
    store_client.write("CreateTeam", pb.Team(id="t", org="acme"))
    chunks = list(store_client.snapshot(timeout=10))
    assert {c.revision for c in chunks} == {2}
    assert chunks[-1].last
    kinds = [e.WhichOneof("kind") for c in chunks for e in c.entities]
    assert kinds == ["org", "team"]


def test_bad_watch_argument(store_client: StoreClient) -> None:
    """A negative revision is INVALID_ARGUMENT naming the field."""
    with pytest.raises(grpc.RpcError) as info:
        next(iter(store_client.watch(-1, timeout=5)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "after_revision" in info.value.details()


def test_list_pages(store_client: StoreClient) -> None:
    """List pages through a kind in key order with opaque tokens; bad input names the field."""
    store_client.write("CreateOrg", pb.Org(id="acme"))
    for i in range(7):
        store_client.write("CreateTeam", pb.Team(id=f"t{i}", org="acme"))
    ids, token = [], ""
    while True:
        page = store_client.call("List", pb.ListRequest(kind="team", page_size=3, page_token=token))
        ids += [e.team.id for e in page.entities]
        token = page.next_page_token
        if not token:
            break
    assert ids == [f"t{i}" for i in range(7)]
    for request, field in [
        (pb.ListRequest(kind="teams"), "team"),
        (pb.ListRequest(kind="team", page_size=5000), "page_size"),
        (pb.ListRequest(kind="team", page_token="garbage!"), "page_token"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            store_client.call("List", request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in info.value.details()


def test_store_metrics(database_url: str) -> None:
    """The store's /metrics counts committed writes and changes and shows the revision."""
    import urllib.request

    from store.server import StoreConfig, create_server
    from tests.conftest import TOKEN

    server = create_server(StoreConfig(listen="127.0.0.1:0", database_url=database_url, token=TOKEN, metrics_port=0))
    try:
        with StoreClient(f"127.0.0.1:{server.port}", TOKEN) as client:
            client.write("CreateOrg", pb.Org(id="acme"))
            client.write("CreateTeam", pb.Team(id="t", org="acme"))
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        server.stop(0)
    assert "store_writes_total 2.0" in text
    assert "store_changes_total 2.0" in text
    assert "store_revision 2.0" in text
