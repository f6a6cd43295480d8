"""MigrateLegacyRegistry (MG1, MG4) and the read-only legacy registry (M7), over gRPC, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from store import migration
from store.client import StoreClient
from store.database import Database, open_database
from store.entities import SPECS
from store.models import Base
from store.server import StoreServer
from store.v1 import store_pb2 as pb

WORLD = """
world:
  orgs:
    - id: acme
      users: [{id: olga, role: admin}, ada, ben, cat, mia, ned, zed]
    - id: globex
      users: [gus]
  teams:
    - {id: vision, org: acme, members: {ada: admin, ben: member, cat: view_only, mia: member}}
    - {id: nlp, org: acme, members: {ned: member}}
    - {id: research, org: acme, members: {zed: member}}
    - {id: labs, org: globex, members: {gus: admin}}
  model_registries:
    - team: vision
      admins: [mia]
      protected_aliases: [production, golden]
      models:
        - id: detector
          created_at: 1690000000000
          lineage: {run: r-1, dataset: coco}
          versions:
            - {id: detector-v1, aliases: [production], created_at: 1690000001000, lineage: {run: r-1}}
            - {id: detector-v2, aliases: [staging, latest], created_at: 1690000002000, lineage: {run: r-2}}
        - id: segmenter
          created_at: 1690000005000
          versions: [{id: segmenter-v1, aliases: [], created_at: 1690000006000}]
        - {id: empty-model}
    - team: nlp
      protected_aliases: []
      models:
        - {id: tagger, versions: [{id: tagger-v1, aliases: [latest]}]}
    - team: labs
      models:
        - {id: globex-model, versions: [{id: globex-model-v1}]}
"""


@pytest.fixture
def client(store_client: StoreClient) -> StoreClient:
    store_client.import_world(WORLD.encode(), name="migration-world")
    return store_client


def migrate(client: StoreClient, team: str, *, dry_run: bool = False) -> pb.MigrateLegacyRegistryResponse:
    request = pb.MigrateLegacyRegistryRequest(team=team, dry_run=dry_run)
    response: pb.MigrateLegacyRegistryResponse = client.call("MigrateLegacyRegistry", request)
    return response


def refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def get(client: StoreClient, kind: str, ident: str) -> Any:
    return getattr(client.call("Get", pb.GetRequest(kind=kind, id=ident)).entity, kind)


def exists(client: StoreClient, kind: str, ident: str) -> bool:
    try:
        client.call("Get", pb.GetRequest(kind=kind, id=ident))
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return False
    return True


def feed(client: StoreClient, revision: int) -> list[tuple[str, str, str]]:
    """The changes of ``revision`` on the change feed: (kind, id, state) per change."""
    found: list[tuple[str, str, str]] = []
    for response in client.watch(revision - 1, timeout=5):
        assert response.revision == revision
        found += [_summary(c) for c in response.changes]
        if response.revision_complete:
            break
    return found


def _summary(change: pb.Change) -> tuple[str, str, str]:
    kind = change.entity.WhichOneof("kind")
    message = getattr(change.entity, kind)
    ident = message.team if kind == "model_registry" else message.id
    return kind, ident, message.state if kind == "model_registry" else ""


# ---- MG1: what migration creates ------------------------------------------------------------


def test_migration_creates_collections_with_everything_kept(client: StoreClient) -> None:
    """Every model becomes a collection of model-acme restricted to the team, with ids, aliases, times, lineage kept."""
    before = client.revision()
    done = migrate(client, "vision")
    assert done.revision == before + 1, "one migration is one revision"
    assert (done.registry, done.state_before, done.registry_created) == ("model-acme", "active", True)
    assert (done.models, done.versions, done.collections_created, done.versions_created) == (3, 3, 3, 3)
    registry = get(client, "registry", "model-acme")
    assert (registry.org, registry.visibility, registry.restrict_types) == ("acme", "organization", False)
    for model_id in ("detector", "segmenter", "empty-model"):
        model = get(client, "registered_model", model_id)
        collection = get(client, "collection", model_id)
        assert (collection.registry, collection.team) == ("model-acme", "vision")
        assert list(collection.protected_aliases) == ["production", "golden"]
        assert (collection.created_at, collection.lineage) == (model.created_at, model.lineage)
    assert json.loads(get(client, "collection", "detector").lineage) == {"dataset": "coco", "run": "r-1"}
    for version_id in ("detector-v1", "detector-v2", "segmenter-v1"):
        legacy = get(client, "model_version", version_id)
        version = get(client, "collection_version", version_id)
        assert (version.collection, version.type) == (legacy.model, "model")
        assert list(version.aliases) == list(legacy.aliases)
        assert (version.created_at, version.lineage) == (legacy.created_at, legacy.lineage)
    assert list(get(client, "collection_version", "detector-v2").aliases) == ["staging", "latest"]
    assert get(client, "model_registry", "vision").state == "migrated"
    assert get(client, "registered_model", "detector").team == "vision", "the legacy registry stays readable (MG3)"


def test_change_feed_shows_the_sequence_in_one_revision(client: StoreClient) -> None:
    """The revision holds: state -> migrating, the new registry, each collection and its versions, state -> migrated."""
    done = migrate(client, "vision")
    expected = [
        ("model_registry", "vision", "migrating"),
        ("registry", "model-acme", ""),
        ("collection", "detector", ""), ("collection_version", "detector-v1", ""),
        ("collection_version", "detector-v2", ""),
        ("collection", "empty-model", ""),
        ("collection", "segmenter", ""), ("collection_version", "segmenter-v1", ""),
        ("model_registry", "vision", "migrated"),
    ]  # fmt: skip
    assert feed(client, done.revision) == expected
    assert [_summary(c) for c in done.changes] == expected, "the response lists the same changes"


def test_second_team_reuses_the_registry(client: StoreClient) -> None:
    """model-<org> is created once; the next team's collections go into it, restricted to that team."""
    assert migrate(client, "vision").registry_created
    done = migrate(client, "nlp")
    assert (done.registry, done.registry_created) == ("model-acme", False)
    assert "registry" not in [_summary(c)[0] for c in done.changes]
    assert get(client, "collection", "tagger").team == "nlp"
    assert get(client, "collection", "detector").team == "vision"


def test_registry_is_per_org(client: StoreClient) -> None:
    """Another org's team gets its own org's model registry."""
    done = migrate(client, "labs")
    assert (done.registry, done.registry_created) == ("model-globex", True)
    assert get(client, "registry", "model-globex").org == "globex"


def test_concurrent_migrations_of_one_org(client: StoreClient) -> None:
    """Two teams of one org migrating at once: both succeed, the org's registry is created once."""
    barrier = threading.Barrier(2)
    results: dict[str, pb.MigrateLegacyRegistryResponse] = {}

    def run(team: str) -> None:
        barrier.wait()
        results[team] = migrate(client, team)

    threads = [threading.Thread(target=run, args=(team,)) for team in ("vision", "nlp")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["nlp", "vision"]
    assert sorted(r.registry_created for r in results.values()) == [False, True]
    assert {results["vision"].revision, results["nlp"].revision} == {client.revision() - 1, client.revision()}


# ---- MG4: idempotent, all or nothing, dry run ---------------------------------------------------


def test_second_run_changes_nothing(client: StoreClient) -> None:
    """Running it again returns the current revision and reports nothing created."""
    first = migrate(client, "vision")
    again = migrate(client, "vision")
    assert again.revision == first.revision == client.revision()
    assert (again.state_before, again.registry_created, again.collections_created, again.versions_created) == (
        "migrated", False, 0, 0,
    )  # fmt: skip
    assert (again.collections_unchanged, again.versions_unchanged) == (3, 3)
    assert list(again.changes) == []


def test_second_run_keeps_edits_made_in_the_new_registry(client: StoreClient) -> None:
    """Aliases moved in a migrated collection since do not make a second run fail or undo them."""
    migrate(client, "vision")
    edited = client.write("UpdateCollectionVersion", pb.CollectionVersion(id="detector-v2", aliases=["champion"]))
    again = migrate(client, "vision")
    assert (again.revision, again.collections_created, again.versions_created) == (edited, 0, 0)
    assert list(get(client, "collection_version", "detector-v2").aliases) == ["champion"]


def test_a_migrating_registry_is_finished(client: StoreClient) -> None:
    """A registry already frozen (migrating) is migrated without a second state change."""
    client.write("SetModelRegistryState", pb.SetModelRegistryStateRequest(team="vision", state="migrating"))
    done = migrate(client, "vision")
    assert done.state_before == "migrating"
    states = [s for kind, _, s in map(_summary, done.changes) if kind == "model_registry"]
    assert states == ["migrated"]


def test_dry_run_commits_nothing(client: StoreClient) -> None:
    """A dry run reports the plan, uses no revision and leaves the store as it was; the real run does the same."""
    before = client.revision()
    plan = migrate(client, "vision", dry_run=True)
    assert (plan.dry_run, plan.revision, client.revision()) == (True, before, before)
    assert (plan.registry_created, plan.collections_created, plan.versions_created) == (True, 3, 3)
    assert not exists(client, "registry", "model-acme")
    assert not exists(client, "collection", "detector")
    assert get(client, "model_registry", "vision").state == "active"
    done = migrate(client, "vision")
    assert not done.dry_run
    assert list(done.changes) == list(plan.changes), "the plan is what the migration does"


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("team", "code", "words"),
    [
        pytest.param("ghost", grpc.StatusCode.NOT_FOUND, ["team ghost"], id="unknown team"),
        pytest.param(
            "research", grpc.StatusCode.NOT_FOUND, ["team research", "legacy model registry"], id="no legacy registry"
        ),
        pytest.param("", grpc.StatusCode.INVALID_ARGUMENT, ["team", "empty"], id="empty team"),
        pytest.param("bad team", grpc.StatusCode.INVALID_ARGUMENT, ["team", "bad team"], id="malformed team"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry run"])
def test_refusals_name_what_is_missing(
    client: StoreClient, team: str, code: grpc.StatusCode, words: list[str], dry_run: bool
) -> None:
    """Unknown teams and teams without a legacy registry are refused, naming them; nothing changes."""
    before = client.revision()
    error = refused(lambda: migrate(client, team, dry_run=dry_run))
    assert error.code() == code, error.details()
    for word in words:
        assert word in error.details()
    assert client.revision() == before


COLLISIONS = [
    pytest.param(
        [("CreateRegistry", pb.Registry(id="evals", org="acme", visibility="restricted")),
         ("CreateCollection", pb.Collection(id="segmenter", registry="evals"))],
        ["collection segmenter", "registry"],
        id="collection id taken in another registry",
    ),
    pytest.param(
        [("CreateRegistry", pb.Registry(id="model-acme", org="acme", visibility="organization")),
         ("CreateCollection", pb.Collection(id="detector", registry="model-acme", team="nlp"))],
        ["collection detector", "team"],
        id="collection restricted to another team",
    ),
    pytest.param(
        [("CreateRegistry", pb.Registry(id="evals", org="acme", visibility="restricted")),
         ("CreateCollection", pb.Collection(id="other", registry="evals")),
         ("CreateCollectionVersion", pb.CollectionVersion(id="detector-v2", collection="other", type="model"))],
        ["collection_version detector-v2", "collection"],
        id="version id taken",
    ),
    pytest.param(
        [("CreateRegistry", pb.Registry(id="model-acme", org="globex", visibility="organization"))],
        ["registry model-acme", "globex"],
        id="registry id taken by another org",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("writes", "words"), COLLISIONS)
def test_id_collisions_are_refused(client: StoreClient, writes: list[tuple[str, Any]], words: list[str]) -> None:
    """An id the migration needs, taken by other content, is ALREADY_EXISTS naming it; nothing is migrated."""
    for method, request in writes:
        client.write(method, request)
    before = client.revision()
    error = refused(lambda: migrate(client, "vision"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS, error.details()
    for word in words:
        assert word in error.details()
    assert client.revision() == before
    assert get(client, "model_registry", "vision").state == "active"


def test_registry_refusing_models_is_a_failed_precondition(client: StoreClient) -> None:
    """An existing model-<org> that does not accept model versions is refused, naming G-R6."""
    registry = pb.Registry(id="model-acme", org="acme", visibility="organization", restrict_types=True,
                           accepted_types=["dataset"])  # fmt: skip
    client.write("CreateRegistry", registry)
    error = refused(lambda: migrate(client, "vision"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "G-R6" in error.details()
    assert "model-acme" in error.details()


# ---- M7: the legacy registry is read-only once migration starts --------------------------------

LEGACY_WRITES = [
    pytest.param("CreateRegisteredModel", pb.RegisteredModel(id="new-model", team="vision"), id="create model"),
    pytest.param("DeleteRegisteredModel", pb.Key(id="empty-model"), id="delete model"),
    pytest.param("CreateModelVersion", pb.ModelVersion(id="detector-v3", model="detector"), id="link version"),
    pytest.param("UpdateModelVersion", pb.ModelVersion(id="detector-v2", aliases=["candidate"]), id="move alias"),
    pytest.param("DeleteModelVersion", pb.Key(id="segmenter-v1"), id="delete version"),
    pytest.param("AddModelRegistryAdmin", pb.ModelRegistryAdmin(team="vision", user="ben"), id="add admin"),
    pytest.param("RemoveModelRegistryAdmin", pb.ModelRegistryAdminKey(team="vision", user="mia"), id="remove admin"),
    pytest.param(
        "UpdateModelRegistry",
        pb.ModelRegistry(team="vision", state="active", protected_aliases=["production"]),
        id="protected aliases",
    ),
]


@pytest.mark.parametrize(("method", "request_message"), LEGACY_WRITES)
def test_active_legacy_registry_takes_writes(client: StoreClient, method: str, request_message: Any) -> None:
    """While the legacy registry is active, its writes go through."""
    before = client.revision()
    assert client.write(method, request_message) == before + 1


@pytest.mark.parametrize(("method", "request_message"), LEGACY_WRITES)
@pytest.mark.parametrize("stage", ["migrating", "migrated"])
def test_legacy_registry_is_read_only(client: StoreClient, method: str, request_message: Any, stage: str) -> None:
    """Once migration starts, writes to the legacy registry are FAILED_PRECONDITION naming M7; it stays readable."""
    if stage == "migrating":
        client.write("SetModelRegistryState", pb.SetModelRegistryStateRequest(team="vision", state="migrating"))
    else:
        migrate(client, "vision")
    before = client.revision()
    request = type(request_message)()
    request.CopyFrom(request_message)
    if method == "UpdateModelRegistry":
        request.state = stage  # the state may stay; the protected aliases may not change
    error = refused(lambda: client.write(method, request))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert "M7" in error.details()
    assert "vision" in error.details()
    assert client.revision() == before
    assert list(get(client, "model_version", "detector-v2").aliases) == ["staging", "latest"]


def test_read_only_registry_still_moves_forward(client: StoreClient) -> None:
    """M7 freezes the content, not the state: a migrating registry can still be marked migrated."""
    client.write("SetModelRegistryState", pb.SetModelRegistryStateRequest(team="vision", state="migrating"))
    request = pb.ModelRegistry(team="vision", state="migrated", protected_aliases=["production", "golden"])
    client.write("UpdateModelRegistry", request)
    assert get(client, "model_registry", "vision").state == "migrated"


def test_other_teams_registries_stay_writable(client: StoreClient) -> None:
    """Migrating one team's registry freezes only that registry."""
    migrate(client, "vision")
    client.write("CreateModelVersion", pb.ModelVersion(id="tagger-v2", model="tagger"))
    assert get(client, "model_version", "tagger-v2").model == "tagger"


def test_writes_racing_a_migration_are_migrated_or_refused(client: StoreClient) -> None:
    """A version linked while migration runs is either committed first (and migrated) or refused (M7): none is lost."""
    started = threading.Event()
    refusals: list[grpc.StatusCode] = []

    def link_versions() -> None:
        for i in range(10_000):
            try:
                client.write("CreateModelVersion", pb.ModelVersion(id=f"detector-x{i}", model="detector"))
            except grpc.RpcError as exc:
                refusals.append(exc.code())
                return
            started.set()

    writer = threading.Thread(target=link_versions)
    writer.start()
    assert started.wait(10)
    migrate(client, "vision")
    writer.join(30)
    assert refusals == [grpc.StatusCode.FAILED_PRECONDITION]
    vision = {"detector", "segmenter", "empty-model"}
    legacy = {e.model_version.id for e in listing(client, "model_version") if e.model_version.model in vision}
    migrated = {e.collection_version.id for e in listing(client, "collection_version")}
    assert len(legacy) > 3
    assert legacy == migrated


def listing(client: StoreClient, kind: str) -> list[pb.Entity]:
    entities: list[pb.Entity] = []
    token = ""
    while True:
        page = client.call("List", pb.ListRequest(kind=kind, page_size=1000, page_token=token))
        entities += page.entities
        token = page.next_page_token
        if not token:
            return entities


def test_import_world_may_load_any_state(client: StoreClient) -> None:
    """ImportWorld loads legacy registries in any state with their models (M7 binds the write RPCs only)."""
    world = """
world:
  teams: [{id: frozen, org: acme}]
  model_registries:
    - {team: frozen, state: migrated, models: [{id: frozen-model, versions: [{id: frozen-v1}]}]}
"""
    assert client.import_world(world.encode()).created == 4
    assert get(client, "model_version", "frozen-v1").model == "frozen-model"


# ---- MG4: a failure part-way leaves the database as it was ---------------------------------------


def dump(database: Database) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table, as the driver returns the stored values, sorted."""
    tables: dict[str, list[tuple[str, ...]]] = {}
    with database.read_engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            quoted = connection.dialect.identifier_preparer.quote(table.name)
            rows = connection.exec_driver_sql(f"SELECT * FROM {quoted}").all()
            tables[table.name] = sorted(tuple(repr(value) for value in row) for row in rows)
    return tables


@pytest.fixture
def database(store_server: StoreServer, database_url: str) -> Iterator[Database]:
    """A second handle on the store server's database, to read it directly."""
    handle = open_database(database_url)
    try:
        yield handle
    finally:
        handle.dispose()


def _fail_in_second_model(monkeypatch: pytest.MonkeyPatch, written: list[int]) -> None:
    original = migration._migrate_model

    def failing(session: Any, *args: Any) -> Any:
        changes = original(session, *args)
        written.append(len(changes))
        if len(written) == 2:
            raise RuntimeError("injected failure after writing the second collection")
        return changes

    monkeypatch.setattr(migration, "_migrate_model", failing)


def _fail_at_final_state(monkeypatch: pytest.MonkeyPatch, written: list[int]) -> None:
    original = migration.set_fields

    def failing(session: Any, kind: str, key: Any, **fields: Any) -> Any:
        if fields.get("state") == "migrated":
            table = SPECS["collection_version"].table
            written.append(int(session.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one()))
            raise RuntimeError("injected failure before the last change")
        return original(session, kind, key, **fields)

    monkeypatch.setattr(migration, "set_fields", failing)


@pytest.mark.parametrize("inject", [_fail_in_second_model, _fail_at_final_state], ids=["second model", "final state"])
def test_failure_part_way_leaves_the_database_as_it_was(
    client: StoreClient, database: Database, monkeypatch: pytest.MonkeyPatch, inject: Callable[..., None]
) -> None:
    """An error after some rows were written rolls everything back: every table is as before, row for row."""
    before = dump(database)
    written: list[int] = []
    inject(monkeypatch, written)
    error = refused(lambda: migrate(client, "vision"))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert written, "the failure came after rows were written"
    assert all(count > 0 for count in written)
    assert dump(database) == before
    monkeypatch.undo()
    done = migrate(client, "vision")
    assert done.collections_created == 3, "a later run starts from the untouched state"


def test_dump_sees_a_migration(client: StoreClient, database: Database) -> None:
    """The dump compared above does notice a migration (it is not vacuous)."""
    before = dump(database)
    migrate(client, "vision")
    after = dump(database)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"model_registries", "registries", "collections", "collection_versions", "changes",
                       "store_state"}  # fmt: skip
