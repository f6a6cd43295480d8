"""The gRPC servicer of store.v1.Store: unpack a request, call the repository, pack the reply.

Each RPC runs on a thread of the gRPC server's pool. Shared between them: the Database
(engines are thread-safe; SQLite writers queue on its lock) and the Notifier. Errors are
translated to gRPC status codes in one table (:data:`STATUS`), applied by :func:`_boundary`.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from servicekit import pages
from servicekit.guard import Undecodable
from servicekit.text import clip_message
from store import convert, migration, repository
from store.changes import Notifier, compact, current, read_from, record, snapshot
from store.database import Database, translate
from store.entities import SPECS, Key
from store.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RevisionCompacted,
    StoreError,
    Unauthenticated,
    Unavailable,
)
from store.importer import import_world
from store.metrics import StoreMetrics
from store.repository import Change
from store.v1 import store_pb2, store_pb2_grpc
from store.world import load_document, parse_world

log = logging.getLogger("store.service")

STATUS: dict[type[StoreError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    RevisionCompacted: grpc.StatusCode.FAILED_PRECONDITION,
    Aborted: grpc.StatusCode.ABORTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    StoreError: grpc.StatusCode.INTERNAL,
}

WATCH_BATCH = 2000
# An idle Watch stream sends a heartbeat this often (seconds), so a watcher can tell a quiet store
# from a dead one: the decision service's replica gives a stream up after 3 intervals of silence.
WATCH_HEARTBEAT = 1.0
SNAPSHOT_CHUNK = 2000
MAX_PAGE = 1000
MAX_WORLD_BYTES = 2 << 30

# RPC name -> (operation, entity kind). Everything else is written out below.
WRITES: dict[str, tuple[str, str]] = {
    "CreateOrg": ("create", "org"), "DeleteOrg": ("delete", "org"),
    "CreateUser": ("create", "user"), "UpdateUser": ("update", "user"), "DeleteUser": ("delete", "user"),
    "CreateCustomRole": ("create", "custom_role"), "UpdateCustomRole": ("update", "custom_role"),
    "DeleteCustomRole": ("delete", "custom_role"),
    "CreateTeam": ("create", "team"), "UpdateTeam": ("update", "team"), "DeleteTeam": ("delete", "team"),
    "AddMember": ("create", "membership"), "ChangeMemberRole": ("update", "membership"),
    "RemoveMember": ("delete", "membership"),
    "CreateServiceAccount": ("create", "service_account"), "DeleteServiceAccount": ("delete", "service_account"),
    "CreateProject": ("create", "project"), "UpdateProject": ("update", "project"),
    "DeleteProject": ("delete", "project"),
    "AddProjectMember": ("create", "project_member"), "RemoveProjectMember": ("delete", "project_member"),
    "CreateRun": ("create", "run"), "UpdateRun": ("update", "run"), "DeleteRun": ("delete", "run"),
    "CreateSweep": ("create", "sweep"), "DeleteSweep": ("delete", "sweep"),
    "CreateReport": ("create", "report"), "DeleteReport": ("delete", "report"),
    "CreateArtifact": ("create", "artifact"), "UpdateArtifact": ("update", "artifact"),
    "DeleteArtifact": ("delete", "artifact"),
    "CreateModelRegistry": ("create", "model_registry"), "UpdateModelRegistry": ("update", "model_registry"),
    "DeleteModelRegistry": ("delete", "model_registry"),
    "AddModelRegistryAdmin": ("create", "model_registry_admin"),
    "RemoveModelRegistryAdmin": ("delete", "model_registry_admin"),
    "CreateRegisteredModel": ("create", "registered_model"), "DeleteRegisteredModel": ("delete", "registered_model"),
    "CreateModelVersion": ("create", "model_version"), "UpdateModelVersion": ("update", "model_version"),
    "DeleteModelVersion": ("delete", "model_version"),
    "CreateRegistry": ("create", "registry"), "UpdateRegistry": ("update", "registry"),
    "DeleteRegistry": ("delete", "registry"),
    "AddRegistryMember": ("create", "registry_member"), "ChangeRegistryMemberRole": ("update", "registry_member"),
    "RemoveRegistryMember": ("delete", "registry_member"),
    "CreateCollection": ("create", "collection"), "UpdateCollection": ("update", "collection"),
    "DeleteCollection": ("delete", "collection"),
    "CreateCollectionVersion": ("create", "collection_version"),
    "UpdateCollectionVersion": ("update", "collection_version"),
    "DeleteCollectionVersion": ("delete", "collection_version"),
}  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message for an exception raised while serving a call."""
    if isinstance(exc, DBAPIError):  # one that left a session without passing Database's boundary
        exc = translate(exc)
    if isinstance(exc, Undecodable):  # a client-streamed message that does not decode
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, StoreError):
        for cls in type(exc).__mro__:
            if cls in STATUS:
                return STATUS[cls], clip_message(str(exc))
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the store's log"


@dataclass(frozen=True)
class Credentials:
    """The bearer token callers must present. Compared in constant time; never logged."""

    token: str

    def check(self, context: grpc.ServicerContext) -> None:
        presented = ""
        for key, value in context.invocation_metadata():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                presented = value[len("Bearer ") :]
        if not presented:
            raise Unauthenticated("missing bearer token: send metadata 'authorization: Bearer <token>'")
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            raise Unauthenticated("invalid bearer token")


def _boundary(method: F) -> F:
    """Authenticate the call, then translate our errors into gRPC status codes."""

    @functools.wraps(method)
    def unary(self: StoreServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            self.credentials.check(context)
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status, never a crash
            _abort(context, exc)

    @functools.wraps(method)
    def streaming(self: StoreServicer, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            self.credentials.check(context)
            yield from method(self, request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, exc)

    import inspect

    return streaming if inspect.isgeneratorfunction(method) else unary  # type: ignore[return-value]


def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    code, message = status_of(exc)
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE):
        log.error("store call failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
    context.abort(code, message)


class _Rehearsed(Exception, Generic[T]):
    """Carries a dry run's result out of the transaction it rolls back."""

    def __init__(self, result: T, revision: int) -> None:
        super().__init__("dry run")
        self.result = result
        self.revision = revision


def _key(kind: str, message: Any) -> Key:
    spec = SPECS[kind]
    if spec.key == ("id",) or isinstance(message, store_pb2.Key):
        return (message.id,)
    return tuple(getattr(message, name) for name in spec.key)


class StoreServicer(store_pb2_grpc.StoreServicer):
    def __init__(
        self,
        db: Database,
        credentials: Credentials,
        notifier: Notifier,
        *,
        allow_test_reset: bool = False,
        metrics: StoreMetrics | None = None,
    ) -> None:
        self.db = db
        self.credentials = credentials
        self.notifier = notifier
        self.allow_test_reset = allow_test_reset
        self.metrics = metrics

    def write(self, work: Callable[[Session], list[Change]]) -> int:
        """Run ``work`` in one transaction, give its changes the next revision, commit."""
        with self.db.writing() as session:
            changes = work(session)
            revision = record(session, changes)
        if changes:
            self.notifier.committed(revision)
            if self.metrics is not None:
                self.metrics.committed(revision, len(changes))
        return revision

    def rehearse(self, work: Callable[[Session], T]) -> tuple[T, int]:
        """Run ``work`` as a write would, then roll it back: its result and the revision it saw."""
        try:
            with self.db.writing() as session:
                result = work(session)
                raise _Rehearsed(result, current(session)[0])
        except _Rehearsed as done:
            return done.result, done.revision

    # -- special writes --

    @_boundary
    def SetStorageBucket(self, request: Any, context: Any) -> store_pb2.WriteResponse:
        repository.check_id(request.team, "team")
        if not request.bucket:
            raise InvalidArgument("must not be empty; a bucket, once set, cannot be removed (T8)", path="bucket")
        revision = self.write(
            lambda s: repository.set_fields(s, "team", (request.team,), storage_bucket=request.bucket)
        )
        return store_pb2.WriteResponse(revision=revision)

    @_boundary
    def MoveRun(self, request: Any, context: Any) -> store_pb2.WriteResponse:
        repository.check_id(request.id, "id")
        repository.check_id(request.project, "project")
        # E4a: the creator stays; only the project changes.
        revision = self.write(lambda s: repository.set_fields(s, "run", (request.id,), project=request.project))
        return store_pb2.WriteResponse(revision=revision)

    @_boundary
    def SetModelRegistryState(self, request: Any, context: Any) -> store_pb2.WriteResponse:
        repository.check_id(request.team, "team")
        revision = self.write(
            lambda s: repository.set_fields(s, "model_registry", (request.team,), state=request.state)
        )
        return store_pb2.WriteResponse(revision=revision)

    @_boundary
    def MigrateLegacyRegistry(self, request: Any, context: Any) -> store_pb2.MigrateLegacyRegistryResponse:
        repository.check_id(request.team, "team")
        if request.dry_run:
            # MG4: the same code, in a transaction that is rolled back; no revision is used.
            done, revision = self.rehearse(lambda s: migration.migrate(s, request.team))
        else:
            outcome: list[migration.Migration] = []

            def work(session: Session) -> list[Change]:
                outcome.append(migration.migrate(session, request.team))
                return outcome[0].changes

            revision = self.write(work)
            done = outcome[0]
            log.info("migrated the legacy registry of team %s into %s: %d collections and %d versions created, "
                     "revision %d", done.team, done.registry, done.collections_created, done.versions_created,
                     revision)  # fmt: skip
        return store_pb2.MigrateLegacyRegistryResponse(
            revision=revision, dry_run=request.dry_run, team=done.team, registry=done.registry,
            state_before=done.state_before, registry_created=done.registry_created, models=done.models,
            versions=done.versions, collections_created=done.collections_created,
            versions_created=done.versions_created, collections_unchanged=done.collections_unchanged,
            versions_unchanged=done.versions_unchanged,
            changes=[convert.change(c.op, c.kind, c.data) for c in done.changes],
        )  # fmt: skip

    # -- reads --

    @_boundary
    def Get(self, request: Any, context: Any) -> store_pb2.GetResponse:
        spec = repository.spec_of(request.kind)
        key = tuple(request.id.split("/"))
        if len(key) != len(spec.key) or not all(key):
            raise InvalidArgument(f"a {spec.kind} is named by {'/'.join(spec.key)}", path="id")
        with self.db.reading() as session:
            row = repository.require_row(session, spec.kind, key)
            revision = current(session)[0]
        return store_pb2.GetResponse(entity=convert.entity(spec.kind, row), revision=revision)

    @_boundary
    def List(self, request: Any, context: Any) -> store_pb2.ListResponse:
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

    @_boundary
    def GetRevision(self, request: Any, context: Any) -> store_pb2.RevisionResponse:
        with self.db.reading() as session:
            revision, oldest = current(session)
        return store_pb2.RevisionResponse(revision=revision, oldest_retained=oldest)

    # -- bulk and streams --

    @_boundary
    def ImportWorld(self, request_iterator: Iterable[Any], context: Any) -> store_pb2.ImportWorldResponse:
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

    @_boundary
    def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[store_pb2.WatchResponse]:
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

    @_boundary
    def Snapshot(self, request: Any, context: grpc.ServicerContext) -> Iterator[store_pb2.SnapshotChunk]:
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


def _make_write(name: str, op: str, kind: str) -> Callable[..., store_pb2.WriteResponse]:
    def handler(self: StoreServicer, request: Any, context: Any) -> store_pb2.WriteResponse:
        if op == "delete":
            key = _key(kind, request)
            values = dict(zip(SPECS[kind].key, key, strict=True))

            def work(s: Session) -> list[Change]:
                return repository.remove(s, kind, key)
        else:
            values = convert.message_to_values(request)
            action = repository.create if op == "create" else repository.update

            def work(s: Session) -> list[Change]:
                return action(s, kind, values)

        def guarded(s: Session) -> list[Change]:
            migration.check_writable(s, op, kind, values)  # M7: a migrating legacy registry is read-only
            return work(s)

        revision = self.write(guarded if kind in migration.LEGACY_KINDS else work)
        return store_pb2.WriteResponse(revision=revision)

    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = f"{op.capitalize()} a {kind.replace('_', ' ')}; returns the revision it committed at."
    return _boundary(handler)


for _name, (_op, _kind) in WRITES.items():
    setattr(StoreServicer, _name, _make_write(_name, _op, _kind))
