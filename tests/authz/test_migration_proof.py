"""The proof by decisions of MG2/MG3: the store's migration plan, applied to a world, changes no decision.

Plans come from the store's own code (store.migration through the servicer's dry run, on an
in-memory SQLite database); decisions from the repository's policy and the compiled engine.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz.cli import main
from authz.decision import Request
from authz.migration_proof import Proof, apply_changes, changes_from_messages, count_work, prove
from authz.state import WorldState
from authz.testing import decider_for, random_world, state_from_document
from store import convert, migration
from store.changes import Notifier
from store.client import StoreClient
from store.database import open_database
from store.importer import import_world
from store.repository import Change
from store.schema import migrate as migrate_schema
from store.server import StoreServer
from store.service import StoreServicer
from store.v1 import store_pb2 as pb
from store.world import parse_world
from tests.conftest import POLICIES, ROOT, TOKEN

WORLD_FILE = ROOT / "tests" / "decisions" / "migration.yaml"
DOCUMENT: dict[str, Any] = yaml.safe_load(WORLD_FILE.read_text())


class Store:
    """The store's write path over a fresh in-memory SQLite database, without gRPC."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.db = open_database("sqlite://")
        migrate_schema(self.db)
        self.servicer = StoreServicer(self.db, Notifier())
        self.servicer.write(lambda s: import_world(s, parse_world(document)).changes)

    def plan(self, team: str) -> list[Change]:
        """The dry run: what MigrateLegacyRegistry(team, dry_run=True) answers."""
        done, _ = self.servicer.rehearse(lambda s: migration.migrate(s, team))
        return done.changes

    def migrate(self, team: str) -> list[Change]:
        outcome: list[migration.Migration] = []

        def work(session: Any) -> list[Change]:
            outcome.append(migration.migrate(session, team))
            return outcome[0].changes

        self.servicer.write(work)
        return outcome[0].changes

    def close(self) -> None:
        self.db.dispose()


@pytest.fixture
def store() -> Iterator[Store]:
    opened = Store(DOCUMENT)
    try:
        yield opened
    finally:
        opened.close()


def differences(proof: Proof) -> set[tuple[str, str, str, bool, bool]]:
    return {(d.user, d.model, d.check, d.before, d.after) for d in proof.differences}


# ---- the proof on the decision-test world -------------------------------------------------------


@pytest.mark.parametrize("team", ["vision", "speech", "archive"])
def test_proof_holds_at_every_stage(store: Store, team: str) -> None:
    """Active, migrating and already migrated registries: the plan changes no decision of MG2 or MG3."""
    before = state_from_document(DOCUMENT)
    plan = store.plan(team)
    proof = prove(before, plan, team)
    assert proof.holds, proof.differences[:5]
    assert (proof.users, proof.org_admins_excluded, proof.models) == (len(before.rows["user"]) - 1, 1, 1)
    assert proof.decisions == count_work(before, team) > 0
    assert store.migrate(team) == plan, "the dry run plans exactly what the migration does"


def test_archive_is_already_migrated(store: Store) -> None:
    """A registry migrated with matching collections plans no change; the proof still compares everything."""
    assert store.plan("archive") == []


def test_every_team_in_turn(store: Store) -> None:
    """Migrating the teams one after the other, each proof against the world the previous one left."""
    state = state_from_document(DOCUMENT)
    for team in ("vision", "speech", "archive"):
        plan = store.migrate(team)
        assert prove(state, plan, team).holds
        state = apply_changes(state, plan)
    assert {row["team"] for row in state.rows["collection"].values()} == {"", "vision", "speech", "archive"}


def _restricted_to(plan: list[Change], team: str) -> list[Change]:
    return [Change(c.op, c.kind, {**c.data, "team": team}) if c.kind == "collection" else c for c in plan]


def test_proof_catches_an_unrestricted_collection(store: Store) -> None:
    """A collection left open to the org (no team) is named: who would gain view and download."""
    proof = prove(state_from_document(DOCUMENT), _restricted_to(store.plan("vision"), ""), "vision")
    found = differences(proof)
    assert ("zed", "detector", "view", False, True) in found, "organization visibility reaches zed"
    assert ("zed", "detector", "download", False, True) in found
    assert ("gail", "detector", "link", False, True) in found, "gail's registry-wide admin grant reaches"
    assert ("cat", "detector", "download", False, True) in found, "view_only becomes an org viewer"
    assert ("ben", "detector", "link", True, False) in found, "outside the team's scope, team roles stop counting"
    example = next(d for d in proof.differences if (d.user, d.check) == ("zed", "view"))
    assert (example.before_action, example.before_resource) == ("model_registry.view", "registered_model:detector")
    assert (example.after_action, example.after_resource) == ("collection.view", "collection:detector")
    assert example.before_reason.startswith("denied")
    assert example.after_reason.startswith("allowed")


def test_proof_catches_the_wrong_team(store: Store) -> None:
    """A collection restricted to another team: the team's members lose, the other team gains."""
    found = differences(prove(state_from_document(DOCUMENT), _restricted_to(store.plan("vision"), "speech"), "vision"))
    assert ("ben", "detector", "view", True, False) in found
    assert ("sid", "detector", "link", False, True) in found


def test_proof_catches_a_lost_version(store: Store) -> None:
    """A version the plan forgets cannot be downloaded or aliased after: named per user."""
    plan = [c for c in store.plan("vision") if c.data.get("id") != "detector-v2"]
    found = differences(prove(state_from_document(DOCUMENT), plan, "vision"))
    assert ("ben", "detector", "download", True, False) in found
    assert ("ben", "detector", "add_alias", True, False) in found
    assert not [d for d in found if d[2] in ("view", "link")]


def test_proof_catches_a_broken_legacy_registry(store: Store) -> None:
    """MG3: a plan that drops the legacy model makes it unreadable: named as a legacy difference."""
    plan = [*store.plan("vision"), Change("delete", "registered_model", {"id": "detector", "team": "vision"})]
    found = differences(prove(state_from_document(DOCUMENT), plan, "vision"))
    assert ("ben", "detector", "legacy view", True, False) in found
    assert ("ben", "detector", "legacy download", True, False) in found


def test_org_admins_are_left_out_as_the_intended_difference(store: Store) -> None:
    """Org admins gain the migrated collection (MG2's one intended difference), so the proof leaves them out."""
    before = state_from_document(DOCUMENT)
    plan = store.plan("vision")
    after = apply_changes(before, plan)
    view = decider_for(before).check(Request("user", "olga", "model_registry.view", "registered_model", "detector"))
    now = decider_for(after).check(Request("user", "olga", "collection.view", "collection", "detector"))
    assert (view.allowed, now.allowed) == (False, True)
    proof = prove(before, plan, "vision")
    assert proof.org_admins_excluded == 1
    assert proof.holds


def test_a_frozen_registry_is_compared_as_it_was_in_service(store: Store) -> None:
    """speech is migrating (M7 denies link): the proof compares with the registry as active, where sid could link."""
    before = state_from_document(DOCUMENT)
    link = Request("user", "sid", "model_registry.link_model", "registered_model", "asr")
    assert not decider_for(before).check(link).allowed, "frozen by M7 in the snapshot"
    proof = prove(before, store.plan("speech"), "speech")
    assert proof.holds
    assert before.rows["model_registry"][("speech",)]["state"] == "migrating", "the world is left alone"


def test_a_protected_candidate_alias_is_not_compared() -> None:
    """MG2 compares adding a non-protected alias: when `candidate` is protected, another name is used."""
    document = json.loads(json.dumps(DOCUMENT))
    document["world"]["model_registries"][0]["protected_aliases"] = ["production", "candidate"]
    store = Store(document)
    try:
        proof = prove(state_from_document(document), store.plan("vision"), "vision")
    finally:
        store.close()
    assert proof.holds, proof.differences[:3]


def test_apply_changes_copies() -> None:
    """The after-state is a copy; the before-state keeps its rows and indexes."""
    before = state_from_document(DOCUMENT)
    rows = before.count()
    change = Change("upsert", "membership", {"team": "vision", "user": "zed", "role": "member"})
    after = apply_changes(before, [change])
    assert (before.count(), after.count()) == (rows, rows + 1)
    assert "zed" not in before.team_members["vision"]
    assert after.team_members["vision"]["zed"] == "member"
    assert after.revision == before.revision + 1


def test_changes_from_messages_round_trip(store: Store) -> None:
    """The store's repeated Change (as a client receives a plan) converts back to the same changes."""
    plan = store.plan("vision")
    messages = [pb.Change.FromString(convert.change(c.op, c.kind, c.data).SerializeToString()) for c in plan]
    assert changes_from_messages(messages) == plan


# ---- property: random worlds --------------------------------------------------------------------

ALIASES = ("latest", "production", "best", "candidate", "staging")


def _richer(rng: random.Random, document: dict[str, Any]) -> dict[str, Any]:
    """random_world, with more models and versions per legacy registry and sometimes a model-o already there."""
    world = document["world"]
    users = [u["id"] for u in world["orgs"][0]["users"]]
    teams = [t["id"] for t in world["teams"]]
    for registry in world["model_registries"]:
        team = registry["team"]
        if rng.random() < 0.2:
            registry["protected_aliases"] = [*registry["protected_aliases"], "candidate"]
        for m in range(rng.randint(0, 3)):
            model_id = f"m-{team}-{m}"
            registry["models"].append({
                "id": model_id, "created_at": rng.randint(0, 2**40), "lineage": {"run": f"r{m}"},
                "versions": [{"id": f"{model_id}-v{v}", "aliases": rng.sample(ALIASES, rng.randint(0, 2)),
                              "created_at": rng.randint(0, 2**40)} for v in range(rng.randint(0, 3))],
            })  # fmt: skip
    if rng.random() < 0.5:
        world["registries"].append({
            "id": "model-o", "org": "o", "visibility": rng.choice(["organization", "restricted"]),
            "members": {**{f"user:{u}": rng.choice(["viewer", "member", "admin"]) for u in rng.sample(users, 2)},
                        **{f"team:{t}": rng.choice(["viewer", "admin"]) for t in rng.sample(teams, 1)}},
            "collections": [{"id": "shared", "versions": [{"id": "shared-v1", "type": "model"}]}],
        })  # fmt: skip
    return document


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_worlds_keep_every_decision(seed: int) -> None:
    """Migrating each team's legacy registry of a random world in turn changes no decision but org admins'."""
    rng = random.Random(seed)
    document = _richer(rng, random_world(rng, rng.randint(4, 10)))
    state: WorldState = state_from_document(document)
    store = Store(document)
    try:
        for team in sorted(key[0] for key in state.rows["model_registry"]):
            plan = store.plan(team)
            proof = prove(state, plan, team)
            assert proof.holds, [d.as_dict() for d in proof.differences[:3]]
            assert proof.decisions == count_work(state, team)
            assert store.migrate(team) == plan
            assert store.plan(team) == [], "a second run changes nothing"
            state = apply_changes(state, plan)
    finally:
        store.close()


# ---- the command line ----------------------------------------------------------------------------


@pytest.fixture
def loaded(store_server: StoreServer) -> Iterator[tuple[str, StoreClient]]:
    address = f"127.0.0.1:{store_server.port}"
    with StoreClient(address, TOKEN) as client:
        client.import_world(WORLD_FILE.read_bytes(), name=WORLD_FILE.name)
        yield address, client


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["registry", "migrate", *args], env={"AUTHZ_STORE_TOKEN": TOKEN})


def test_cli_dry_run_proves_and_changes_nothing(loaded: tuple[str, StoreClient]) -> None:
    """--dry-run --json prints the plan and the proof, exits 0, and leaves the store as it was."""
    address, client = loaded
    before = client.revision()
    result = run("vision", "--dry-run", "--json", "--store", address, "--policies", str(POLICIES))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["dry_run"], report["revision"], report["registry"], report["migrated"]) == (
        True, before, "model-acme", None,
    )  # fmt: skip
    assert (report["plan"]["collections_created"], report["plan"]["versions_created"]) == (1, 2)
    assert report["proof"]["holds"]
    assert report["proof"]["differences"] == []
    assert report["proof"]["decisions"] > 0
    assert client.revision() == before


def test_cli_migrates_then_finds_nothing_to_do(loaded: tuple[str, StoreClient]) -> None:
    """Without --dry-run it migrates after the proof and prints the revision; a second run changes nothing."""
    address, client = loaded
    result = run("vision", "--store", address, "--policies", str(POLICIES))
    assert result.exit_code == 0, result.output
    revision = client.revision()
    assert f"migrated at revision {revision}" in result.stdout
    assert "differences" in result.stdout
    again = run("vision", "--store", address, "--policies", str(POLICIES))
    assert again.exit_code == 0, again.output
    assert f"already migrated: nothing changed (revision {revision})" in again.stdout


def test_cli_names_an_unknown_team(loaded: tuple[str, StoreClient]) -> None:
    """An unknown team is the store's NOT_FOUND, exit 1."""
    address, _ = loaded
    result = run("ghost", "--dry-run", "--store", address, "--policies", str(POLICIES))
    assert result.exit_code == 1
    assert "NOT_FOUND" in result.output
    assert "ghost" in result.output


def test_cli_refuses_when_a_decision_would_change(loaded: tuple[str, StoreClient], tmp_path: Path) -> None:
    """With a policy under which org visibility reaches restricted collections, nothing migrates unless forced."""
    address, client = loaded
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    registries = policies / "registries.csv"
    leaky = registries.read_text().replace(
        "collection.view, org:viewer, r.obj.registry_visibility == 'organization' && r.obj.collection_team == ''",
        "collection.view, org:viewer, r.obj.registry_visibility == 'organization'",
    )
    assert leaky != registries.read_text()
    registries.write_text(leaky)
    result = run("vision", "--store", address, "--policies", str(policies))
    assert result.exit_code == 1, result.output
    assert "not migrated" in result.stdout
    assert "zed" in result.stdout
    state = client.call("Get", pb.GetRequest(kind="model_registry", id="vision")).entity.model_registry.state
    assert state == "active"
    forced = run("vision", "--force", "--json", "--store", address, "--policies", str(policies))
    assert forced.exit_code == 0, forced.output
    report = json.loads(forced.stdout)
    assert report["proof"]["differences"]
    assert report["migrated"]["revision"] == client.revision()
