"""The gRPC servicer of store.v1.Store: unpack a request, call the repository, pack the reply.

:class:`StoreServicer` holds the reads (Get, List, GetRevision) and the bulk calls and streams
(ImportWorld, Watch, Snapshot); its write RPCs come from :class:`store.writes.WriteRPCs`, errors
become gRPC statuses in :mod:`store.boundary`, and the bearer token is checked before any of it
by the server's TokenInterceptor (:func:`store.server.create_server`).

Each RPC runs on a thread of the gRPC server's pool. Shared between them: the Database
(engines are thread-safe; SQLite writers queue on its lock) and the Notifier (woken by this
process's writes and, on PostgreSQL, by other instances' commits: store.notify).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator

import grpc
from sqlalchemy.orm import Session

from servicekit import pages
from store import convert, repository
from store.boundary import boundary
from store.changes import Notifier, compact, current, read_from, snapshot
from store.database import Database
from store.errors import InvalidArgument, PermissionDenied
from store.importer import import_world
from store.kinds import Key
from store.metrics import StoreMetrics
from store.repository import Change
from store.v1 import store_pb2, store_pb2_grpc
from store.world import load_document, parse_world
from store.writes import WriteRPCs

log = logging.getLogger("store.service")

# Read by Watch and Snapshot at call time, so tests can shrink them (monkeypatch store.service).
WATCH_BATCH = 2000
# An idle Watch stream sends a heartbeat this often (seconds), so a watcher can tell a quiet store
# from a dead one: the decision service's replica gives a stream up after 3 intervals of silence.
WATCH_HEARTBEAT = 1.0
SNAPSHOT_CHUNK = 2000
MAX_PAGE = 1000
MAX_WORLD_BYTES = 2 << 30


class StoreServicer(WriteRPCs, store_pb2_grpc.StoreServicer):
    """store.v1.Store over one Database; one per server, its methods called from the pool's threads."""

    def __init__(
        self,
        db: Database,
        notifier: Notifier,
        *,
        allow_test_reset: bool = False,
        metrics: StoreMetrics | None = None,
        announce: Callable[[Session, int], None] | None = None,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.announce = announce
        self.allow_test_reset = allow_test_reset
        self.metrics = metrics

    # -- reads --

    @boundary
    def Get(self, request: store_pb2.GetRequest, context: grpc.ServicerContext) -> store_pb2.GetResponse:
        spec = repository.spec_of(request.kind)
        key = tuple(request.id.split("/"))
        if len(key) != len(spec.key) or not all(key):
            raise InvalidArgument(f"a {spec.kind} is named by {'/'.join(spec.key)}", path="id")
        with self.db.reading() as session:
            row = repository.require_row(session, spec.kind, key)
            revision = current(session)[0]
        return store_pb2.GetResponse(entity=convert.entity(spec.kind, row), revision=revision)

    @boundary
    def List(self, request: store_pb2.ListRequest, context: grpc.ServicerContext) -> store_pb2.ListResponse:
        spec = repository.spec_of(request.kind)
        size = request.page_size or 100
        if not 0 < size <= MAX_PAGE:
            raise InvalidArgument(f"must be between 1 and {MAX_PAGE}", path="page_size")
        after: Key | None = None
        if request.page_token:
            try:
                after = pages.decode(request.page_token, len(spec.key))
            except pages.BadToken as exc:
                raise InvalidArgument(str(exc), path="page_token") from None
        with self.db.reading() as session:
            rows = list(repository.iter_rows(session, spec.kind, after=after, limit=size + 1))
            revision = current(session)[0]
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = pages.encode(spec.key_of(rows[-1]))
        return store_pb2.ListResponse(
            entities=[convert.entity(spec.kind, r) for r in rows], next_page_token=token, revision=revision
        )

    @boundary
    def GetRevision(
        self, request: store_pb2.RevisionRequest, context: grpc.ServicerContext
    ) -> store_pb2.RevisionResponse:
        with self.db.reading() as session:
            revision, oldest = current(session)
        return store_pb2.RevisionResponse(revision=revision, oldest_retained=oldest)

    # -- bulk and streams --

    @boundary
    def ImportWorld(
        self, request_iterator: Iterable[store_pb2.ImportWorldRequest], context: grpc.ServicerContext
    ) -> store_pb2.ImportWorldResponse:
        chunks: list[bytes] = []
        replace = False
        name = "world"
        size = 0
        for i, part in enumerate(request_iterator):
            if i == 0:
                replace, name = part.replace, part.name or name
            size += len(part.chunk)
            if size > MAX_WORLD_BYTES:
                raise InvalidArgument(f"{name}: the document is larger than {MAX_WORLD_BYTES} bytes")
            chunks.append(part.chunk)
        if replace and not self.allow_test_reset:
            raise PermissionDenied("replacing the whole store needs a store started with --allow-test-reset")
        rows = parse_world(load_document(b"".join(chunks), name))
        result: dict[str, int] = {}

        def work(session: Session) -> list[Change]:
            outcome = import_world(session, rows, replace=replace)
            result.update(created=outcome.created, unchanged=outcome.unchanged)
            return outcome.changes

        revision = self.write(work)
        log.info("imported %s: %d created, %d unchanged, revision %d", name, result["created"],
                 result["unchanged"], revision)  # fmt: skip
        return store_pb2.ImportWorldResponse(revision=revision, **result)

    @boundary
    def Watch(
        self, request: store_pb2.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[store_pb2.WatchResponse]:
        if request.after_revision < 0:
            raise InvalidArgument("must be 0 or more", path="after_revision")
        after, seq = request.after_revision, -1  # resume point: inside revision after+1, past seq
        sent: float | None = None  # time.monotonic() of the last message; None before the first
        while context.is_active():
            with self.db.reading() as session:
                batch = read_from(session, after, seq, WATCH_BATCH)
                # Idle and nothing said for a while (or ever, on a new stream): a heartbeat tells
                # the watcher the stream is alive. Never inside a revision (seq >= 0): its parts
                # keep coming and the watcher must see them back to back.
                due = sent is None or time.monotonic() - sent >= WATCH_HEARTBEAT
                store_revision = current(session)[0] if not batch and seq < 0 and due else None
            if not batch:
                if seq >= 0:  # the revision we were inside ended exactly at the batch limit
                    yield store_pb2.WatchResponse(revision=after + 1, revision_complete=True)
                    sent = time.monotonic()
                    after, seq = after + 1, -1
                    continue
                if store_revision is not None:
                    yield store_pb2.WatchResponse(revision=store_revision, heartbeat=True)
                    sent = time.monotonic()
                wait = 0.25 if sent is None else WATCH_HEARTBEAT - (time.monotonic() - sent)
                self.notifier.wait_beyond(after, max(0.01, min(0.25, wait)))
                continue
            groups: list[tuple[int, list[store_pb2.Change]]] = []
            for logged in batch:
                if not groups or groups[-1][0] != logged.revision:
                    groups.append((logged.revision, []))
                c = logged.change
                groups[-1][1].append(convert.change(c.op, c.kind, c.data))
            if seq >= 0 and groups[0][0] != after + 1:
                yield store_pb2.WatchResponse(revision=after + 1, revision_complete=True)
            full = len(batch) == WATCH_BATCH
            for index, (revision, changes) in enumerate(groups):
                complete = not (full and index == len(groups) - 1)
                yield store_pb2.WatchResponse(revision=revision, changes=changes, revision_complete=complete)
            sent = time.monotonic()
            last = batch[-1]
            if full:
                after, seq = last.revision - 1, last.seq
            else:
                after, seq = last.revision, -1

    @boundary
    def Snapshot(
        self, request: store_pb2.SnapshotRequest, context: grpc.ServicerContext
    ) -> Iterator[store_pb2.SnapshotChunk]:
        with self.db.reading(consistent=True) as session:
            revision, rows = snapshot(session)
            chunk: list[store_pb2.Entity] = []
            for kind, row in rows:
                chunk.append(convert.entity(kind, row))
                if len(chunk) >= SNAPSHOT_CHUNK:
                    yield store_pb2.SnapshotChunk(revision=revision, entities=chunk)
                    chunk = []
            yield store_pb2.SnapshotChunk(revision=revision, entities=chunk, last=True)

    def compact(self, keep_after: int) -> int:
        with self.db.writing() as session:
            return compact(session, keep_after)
