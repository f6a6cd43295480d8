"""Concurrent writers: revisions follow commit order, and Watch replays every change once, in order."""

from __future__ import annotations

import threading

import grpc

from store.client import StoreClient
from store.v1 import store_pb2 as pb

WRITERS = 8
WRITES = 500


def test_concurrent_writers_and_watch(store_client: StoreClient) -> None:
    """8 writers x 500 writes: distinct increasing revisions, a complete ordered feed, matching data."""
    store_client.write("CreateOrg", pb.Org(id="acme"))
    acked: dict[int, str] = {}  # revision -> team id the writer was told was committed
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        seen = 0
        try:
            for i in range(WRITES):
                team = f"t{n}-{i}"
                revision = store_client.write("CreateTeam", pb.Team(id=team, org="acme"))
                assert revision > seen, "a writer's own revisions must increase"
                seen = revision
                with lock:
                    assert revision not in acked, f"revision {revision} handed out twice"
                    acked[revision] = team
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(acked) == WRITERS * WRITES
    last = store_client.revision()
    assert sorted(acked) == list(range(2, last + 1)), "revisions are dense: one per committed write"

    feed: list[tuple[int, str]] = []
    try:
        for response in store_client.watch(0, timeout=60):
            for change in response.changes:
                kind = change.entity.WhichOneof("kind")
                feed.append((response.revision, getattr(change.entity, kind).id))
            if response.revision == last and response.revision_complete:
                break
    except grpc.RpcError as exc:  # pragma: no cover - reported as a failure below
        raise AssertionError(f"watch ended early: {exc}") from exc
    assert feed[0] == (1, "acme")
    assert feed[1:] == sorted(acked.items()), "every change exactly once, in revision order"

    teams = set()
    token = ""
    while True:
        page = store_client.call("List", pb.ListRequest(kind="team", page_size=1000, page_token=token))
        teams.update(e.team.id for e in page.entities)
        token = page.next_page_token
        if not token:
            break
    assert teams == set(acked.values())
