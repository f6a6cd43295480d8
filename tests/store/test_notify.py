"""Store instances on one database: a commit on one wakes Watch streams on the others (NOTIFY), polling as backstop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from store.client import StoreClient
from store.notify import MAX_CHANNEL_BYTES, channel_for
from store.server import StoreConfig, StoreServer, create_server
from store.v1 import store_pb2 as pb
from tests.conftest import TOKEN, _pg_schema_url, postgres_url


@contextmanager
def _instance(database_url: str, *, notify: bool = True) -> Iterator[tuple[StoreServer, StoreClient]]:
    server = create_server(StoreConfig(listen="127.0.0.1:0", database_url=database_url, token=TOKEN, notify=notify))
    client = StoreClient(f"127.0.0.1:{server.port}", TOKEN)
    try:
        yield server, client
    finally:
        client.close()
        server.stop(0)


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout}s")


def _watched(client: StoreClient, after: int, until: int) -> list[int]:
    """The revisions a Watch from ``after`` delivers, up to ``until`` (heartbeats left out)."""
    seen = []
    for response in client.watch(after, timeout=20):
        if response.heartbeat:
            continue
        seen.append(response.revision)
        if response.revision == until and response.revision_complete:
            return seen
    raise AssertionError("the stream ended")


def _notified(server: StoreServer) -> float:
    value = server.servicer.metrics.registry.get_sample_value("store_revision_notifications_total")  # type: ignore[union-attr]
    return float(value or 0)


@pytest.mark.parametrize("notify", [True, False], ids=["notify", "poll"])
def test_watch_on_one_instance_sees_writes_made_on_another(database_url: str, notify: bool) -> None:
    """Two store instances on one database: B's Watch streams every revision A commits, in order.

    On PostgreSQL with notify, B's Notifier hears of A's commits (that is what wakes its streams
    at once); without notify, or on SQLite, it never does and the stream finds them by polling.
    """
    with _instance(database_url, notify=notify) as (a, writer), _instance(database_url, notify=notify) as (b, reader):
        listens = notify and a.db.dialect == "postgresql"
        assert (a.channel is not None, b.channel is not None) == (listens, listens)
        if listens:
            _until(lambda: b.channel is not None and b.channel.listening, 10, "B listening")
        revisions = [writer.write("CreateOrg", pb.Org(id="acme"))]
        revisions += [writer.write("CreateTeam", pb.Team(id=f"t{i}", org="acme")) for i in range(3)]
        assert _watched(reader, 0, revisions[-1]) == revisions
        if listens:
            _until(lambda: b.servicer.notifier.revision == revisions[-1], 10, "B told of A's last commit")
            assert _notified(b) >= 1
        else:
            assert b.servicer.notifier.revision == 0, "nothing but polling told B of A's commits"
        # A revision made on B reaches a stream on A the same way: the instances are symmetric.
        last = reader.write("CreateTeam", pb.Team(id="from-b", org="acme"))
        assert _watched(writer, revisions[-1], last) == [last]


@pytest.mark.postgres
def test_stores_on_other_schemas_do_not_wake_each_other() -> None:
    """NOTIFY is per database: each schema's stores have their own channel, and hear only it."""
    base = postgres_url()
    if not base:
        pytest.skip("set AUTHZ_TEST_POSTGRES_URL to run the PostgreSQL variant")
    first, second = _pg_schema_url(base), _pg_schema_url(base)
    try:
        with _instance(next(first)) as (ours, ours_client), _instance(next(second)) as (theirs, theirs_client):
            assert ours.channel is not None
            assert theirs.channel is not None
            assert ours.channel.channel != theirs.channel.channel
            _until(lambda: ours.channel is not None and ours.channel.listening, 10, "listening")
            theirs_client.write("CreateOrg", pb.Org(id="acme"))
            for i in range(3):
                theirs_client.write("CreateTeam", pb.Team(id=f"t{i}", org="acme"))
            # Notifications reach a listener in commit order: ours comes after theirs would have.
            mine = ours_client.write("CreateOrg", pb.Org(id="other"))
            _until(lambda: _notified(ours) >= 1, 10, "our own commit heard")
            assert ours.servicer.notifier.revision == mine == 1, "a revision of another schema woke our streams"
            assert _notified(ours) == 1
    finally:
        for schemas in (first, second):
            schemas.close()


@pytest.mark.postgres
def test_listener_reconnects_after_losing_its_connection() -> None:
    """The listening connection is killed by the database: the listener comes back and passes revisions on."""
    base = postgres_url()
    if not base:
        pytest.skip("set AUTHZ_TEST_POSTGRES_URL to run the PostgreSQL variant")
    schema = _pg_schema_url(base)
    url = next(schema)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with _instance(url) as (a, writer), _instance(url) as (b, _):
            channel = b.channel
            assert channel is not None
            _until(lambda: channel.backend_pid != 0, 10, "B listening")
            killed = channel.backend_pid
            with admin.connect() as conn:
                assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed}).scalar()
            _until(lambda: channel.backend_pid not in (0, killed), 15, "B listening again")
            revision = writer.write("CreateOrg", pb.Org(id="acme"))
            _until(lambda: b.servicer.notifier.revision == revision, 10, "B told of A's commit after reconnecting")
            assert a.channel is not None
            assert a.channel.listening
    finally:
        admin.dispose()
        schema.close()


def test_channel_names_fit_postgres() -> None:
    """One channel per schema, within PostgreSQL's 63-byte identifiers, distinct for long names too."""
    assert channel_for("public") == "authz_revision:public"
    long_a, long_b = "s" * 63, "s" * 62 + "t"
    assert len(channel_for(long_a).encode()) <= MAX_CHANNEL_BYTES
    assert channel_for(long_a) != channel_for(long_b)
    assert channel_for(long_a).startswith("authz_revision:")
