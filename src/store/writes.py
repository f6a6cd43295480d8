"""The write RPCs of store.v1.Store, as a mixin of the servicer, and the one path they all take.

Each entity write RPC is one line naming its kind and its operation: ``_create`` and ``_update``
take the entity's message, ``_delete`` its key message (``Key``, or ``MembershipKey`` and the like
for link rows). All three run through :meth:`WriteRPCs._commit`, which applies M7 (a migrating
legacy registry is read-only) and commits through :meth:`WriteRPCs.write`: one transaction, the
next revision, announced to other instances on the database (``announce``: PostgreSQL NOTIFY, sent
at commit), the Notifier told. SetStorageBucket, MoveRun, SetModelRegistryState and
MigrateLegacyRegistry change named fields or many rows and are written out.

Handlers run on the gRPC server's threads; what they share (the Database, the Notifier, the
metrics) is thread-safe and set once by the servicer's constructor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy.orm import Session

from store import convert, migration, repository
from store.boundary import boundary
from store.changes import Notifier, current, record
from store.database import Database
from store.entities import SPECS
from store.errors import InvalidArgument
from store.kinds import Key
from store.metrics import StoreMetrics
from store.repository import Change
from store.v1 import store_pb2

log = logging.getLogger("store.service")

T = TypeVar("T")
Context = grpc.ServicerContext
# What a delete RPC names its entity by: the id, or both ends of a link row.
KeyMessage = (
    store_pb2.Key
    | store_pb2.MembershipKey
    | store_pb2.ProjectMemberKey
    | store_pb2.ModelRegistryAdminKey
    | store_pb2.RegistryMemberKey
)


class _Rehearsed(Exception, Generic[T]):
    """Carries a dry run's result out of the transaction it rolls back."""

    def __init__(self, result: T, revision: int) -> None:
        super().__init__("dry run")
        self.result = result
        self.revision = revision


class WriteRPCs:
    """The servicer's writes; each returns the revision it committed at (``WriteResponse``)."""

    db: Database
    notifier: Notifier
    metrics: StoreMetrics | None
    # Called in the write transaction with its revision (store.notify: pg_notify, delivered at commit).
    announce: Callable[[Session, int], None] | None

    def write(self, work: Callable[[Session], list[Change]]) -> int:
        """Run ``work`` in one transaction, give its changes the next revision, commit."""
        with self.db.writing() as session:
            changes = work(session)
            revision = record(session, changes)
            if changes and self.announce is not None:
                self.announce(session, revision)
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

    # -- the entity write path --

    def _create(self, kind: str, request: Message) -> store_pb2.WriteResponse:
        values = convert.message_to_values(request)
        return self._commit("create", kind, values, lambda s: repository.create(s, kind, values))

    def _update(self, kind: str, request: Message) -> store_pb2.WriteResponse:
        values = convert.message_to_values(request)
        return self._commit("update", kind, values, lambda s: repository.update(s, kind, values))

    def _delete(self, kind: str, request: KeyMessage) -> store_pb2.WriteResponse:
        key = _key(kind, request)
        values = dict(zip(SPECS[kind].key, key, strict=True))
        return self._commit("delete", kind, values, lambda s: repository.remove(s, kind, key))

    def _commit(
        self, op: str, kind: str, values: dict[str, Any], work: Callable[[Session], list[Change]]
    ) -> store_pb2.WriteResponse:
        """Commit one entity write; writes to a legacy registry's kinds check M7 first, in the same transaction."""

        def guarded(s: Session) -> list[Change]:
            migration.check_writable(s, op, kind, values)  # M7: a migrating legacy registry is read-only
            return work(s)

        revision = self.write(guarded if kind in migration.LEGACY_KINDS else work)
        return store_pb2.WriteResponse(revision=revision)

    # -- entity writes, in the order of store.proto --

    @boundary
    def CreateOrg(self, request: store_pb2.Org, context: Context) -> store_pb2.WriteResponse:
        return self._create("org", request)

    @boundary
    def DeleteOrg(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("org", request)

    @boundary
    def CreateUser(self, request: store_pb2.User, context: Context) -> store_pb2.WriteResponse:
        return self._create("user", request)

    @boundary
    def UpdateUser(self, request: store_pb2.User, context: Context) -> store_pb2.WriteResponse:
        return self._update("user", request)

    @boundary
    def DeleteUser(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("user", request)

    @boundary
    def CreateCustomRole(self, request: store_pb2.CustomRole, context: Context) -> store_pb2.WriteResponse:
        return self._create("custom_role", request)

    @boundary
    def UpdateCustomRole(self, request: store_pb2.CustomRole, context: Context) -> store_pb2.WriteResponse:
        return self._update("custom_role", request)

    @boundary
    def DeleteCustomRole(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("custom_role", request)

    @boundary
    def CreateTeam(self, request: store_pb2.Team, context: Context) -> store_pb2.WriteResponse:
        return self._create("team", request)

    @boundary
    def UpdateTeam(self, request: store_pb2.Team, context: Context) -> store_pb2.WriteResponse:
        return self._update("team", request)

    @boundary
    def DeleteTeam(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("team", request)

    @boundary
    def AddMember(self, request: store_pb2.Membership, context: Context) -> store_pb2.WriteResponse:
        return self._create("membership", request)

    @boundary
    def ChangeMemberRole(self, request: store_pb2.Membership, context: Context) -> store_pb2.WriteResponse:
        return self._update("membership", request)

    @boundary
    def RemoveMember(self, request: store_pb2.MembershipKey, context: Context) -> store_pb2.WriteResponse:
        return self._delete("membership", request)

    @boundary
    def CreateServiceAccount(self, request: store_pb2.ServiceAccount, context: Context) -> store_pb2.WriteResponse:
        return self._create("service_account", request)

    @boundary
    def DeleteServiceAccount(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("service_account", request)

    @boundary
    def CreateProject(self, request: store_pb2.Project, context: Context) -> store_pb2.WriteResponse:
        return self._create("project", request)

    @boundary
    def UpdateProject(self, request: store_pb2.Project, context: Context) -> store_pb2.WriteResponse:
        return self._update("project", request)

    @boundary
    def DeleteProject(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("project", request)

    @boundary
    def AddProjectMember(self, request: store_pb2.ProjectMember, context: Context) -> store_pb2.WriteResponse:
        return self._create("project_member", request)

    @boundary
    def RemoveProjectMember(self, request: store_pb2.ProjectMemberKey, context: Context) -> store_pb2.WriteResponse:
        return self._delete("project_member", request)

    @boundary
    def CreateRun(self, request: store_pb2.Run, context: Context) -> store_pb2.WriteResponse:
        return self._create("run", request)

    @boundary
    def UpdateRun(self, request: store_pb2.Run, context: Context) -> store_pb2.WriteResponse:
        return self._update("run", request)

    @boundary
    def DeleteRun(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("run", request)

    @boundary
    def CreateSweep(self, request: store_pb2.Sweep, context: Context) -> store_pb2.WriteResponse:
        return self._create("sweep", request)

    @boundary
    def DeleteSweep(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("sweep", request)

    @boundary
    def CreateReport(self, request: store_pb2.Report, context: Context) -> store_pb2.WriteResponse:
        return self._create("report", request)

    @boundary
    def DeleteReport(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("report", request)

    @boundary
    def CreateArtifact(self, request: store_pb2.Artifact, context: Context) -> store_pb2.WriteResponse:
        return self._create("artifact", request)

    @boundary
    def UpdateArtifact(self, request: store_pb2.Artifact, context: Context) -> store_pb2.WriteResponse:
        return self._update("artifact", request)

    @boundary
    def DeleteArtifact(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("artifact", request)

    @boundary
    def CreateModelRegistry(self, request: store_pb2.ModelRegistry, context: Context) -> store_pb2.WriteResponse:
        return self._create("model_registry", request)

    @boundary
    def UpdateModelRegistry(self, request: store_pb2.ModelRegistry, context: Context) -> store_pb2.WriteResponse:
        return self._update("model_registry", request)

    @boundary
    def DeleteModelRegistry(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("model_registry", request)

    @boundary
    def AddModelRegistryAdmin(self, request: store_pb2.ModelRegistryAdmin, context: Context) -> store_pb2.WriteResponse:
        return self._create("model_registry_admin", request)

    @boundary
    def RemoveModelRegistryAdmin(
        self, request: store_pb2.ModelRegistryAdminKey, context: Context
    ) -> store_pb2.WriteResponse:
        return self._delete("model_registry_admin", request)

    @boundary
    def CreateRegisteredModel(self, request: store_pb2.RegisteredModel, context: Context) -> store_pb2.WriteResponse:
        return self._create("registered_model", request)

    @boundary
    def DeleteRegisteredModel(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("registered_model", request)

    @boundary
    def CreateModelVersion(self, request: store_pb2.ModelVersion, context: Context) -> store_pb2.WriteResponse:
        return self._create("model_version", request)

    @boundary
    def UpdateModelVersion(self, request: store_pb2.ModelVersion, context: Context) -> store_pb2.WriteResponse:
        return self._update("model_version", request)

    @boundary
    def DeleteModelVersion(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("model_version", request)

    @boundary
    def CreateRegistry(self, request: store_pb2.Registry, context: Context) -> store_pb2.WriteResponse:
        return self._create("registry", request)

    @boundary
    def UpdateRegistry(self, request: store_pb2.Registry, context: Context) -> store_pb2.WriteResponse:
        return self._update("registry", request)

    @boundary
    def DeleteRegistry(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("registry", request)

    @boundary
    def AddRegistryMember(self, request: store_pb2.RegistryMember, context: Context) -> store_pb2.WriteResponse:
        return self._create("registry_member", request)

    @boundary
    def ChangeRegistryMemberRole(self, request: store_pb2.RegistryMember, context: Context) -> store_pb2.WriteResponse:
        return self._update("registry_member", request)

    @boundary
    def RemoveRegistryMember(self, request: store_pb2.RegistryMemberKey, context: Context) -> store_pb2.WriteResponse:
        return self._delete("registry_member", request)

    @boundary
    def CreateCollection(self, request: store_pb2.Collection, context: Context) -> store_pb2.WriteResponse:
        return self._create("collection", request)

    @boundary
    def UpdateCollection(self, request: store_pb2.Collection, context: Context) -> store_pb2.WriteResponse:
        return self._update("collection", request)

    @boundary
    def DeleteCollection(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("collection", request)

    @boundary
    def CreateCollectionVersion(
        self, request: store_pb2.CollectionVersion, context: Context
    ) -> store_pb2.WriteResponse:
        return self._create("collection_version", request)

    @boundary
    def UpdateCollectionVersion(
        self, request: store_pb2.CollectionVersion, context: Context
    ) -> store_pb2.WriteResponse:
        return self._update("collection_version", request)

    @boundary
    def DeleteCollectionVersion(self, request: store_pb2.Key, context: Context) -> store_pb2.WriteResponse:
        return self._delete("collection_version", request)

    # -- special writes --

    @boundary
    def SetStorageBucket(self, request: store_pb2.SetStorageBucketRequest, context: Context) -> store_pb2.WriteResponse:
        repository.check_id(request.team, "team")
        if not request.bucket:
            raise InvalidArgument("must not be empty; a bucket, once set, cannot be removed (T8)", path="bucket")
        revision = self.write(
            lambda s: repository.set_fields(s, "team", (request.team,), storage_bucket=request.bucket)
        )
        return store_pb2.WriteResponse(revision=revision)

    @boundary
    def MoveRun(self, request: store_pb2.MoveRunRequest, context: Context) -> store_pb2.WriteResponse:
        repository.check_id(request.id, "id")
        repository.check_id(request.project, "project")
        # E4a: the creator stays; only the project changes.
        revision = self.write(lambda s: repository.set_fields(s, "run", (request.id,), project=request.project))
        return store_pb2.WriteResponse(revision=revision)

    @boundary
    def SetModelRegistryState(
        self, request: store_pb2.SetModelRegistryStateRequest, context: Context
    ) -> store_pb2.WriteResponse:
        repository.check_id(request.team, "team")
        revision = self.write(
            lambda s: repository.set_fields(s, "model_registry", (request.team,), state=request.state)
        )
        return store_pb2.WriteResponse(revision=revision)

    @boundary
    def MigrateLegacyRegistry(
        self, request: store_pb2.MigrateLegacyRegistryRequest, context: Context
    ) -> store_pb2.MigrateLegacyRegistryResponse:
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


def _key(kind: str, message: KeyMessage) -> Key:
    """The key a delete names; ``Key.id`` is the whole key, also of a model registry (keyed by team)."""
    if isinstance(message, store_pb2.Key):
        return (message.id,)
    return tuple(getattr(message, name) for name in SPECS[kind].key)
