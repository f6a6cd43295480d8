"""ImportWorld: the decision-test world format, idempotent loads, errors with document paths."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from store.client import StoreClient
from store.server import StoreConfig, create_server
from store.v1 import store_pb2 as pb
from tests.conftest import ROOT, TOKEN

SPEC_EXAMPLE = ROOT / "tests" / "worlds" / "spec-example.yaml"
DEMO = ROOT / "examples" / "demo-world.yaml"


@pytest.mark.parametrize("path", [SPEC_EXAMPLE, DEMO], ids=lambda p: p.name)
def test_accepts_reference_worlds(store_client: StoreClient, path: Path) -> None:
    """The example of DECISION_TESTS.md and the demo world import cleanly; a second load changes nothing."""
    first = store_client.import_world(path.read_bytes(), name=path.name)
    assert first.created > 10
    assert first.revision == 1
    again = store_client.import_world(path.read_bytes(), name=path.name)
    assert (again.created, again.unchanged, again.revision) == (0, first.created, 1)


def test_spec_example_content(store_client: StoreClient) -> None:
    """Defaults of the format: org role member, null registry role viewer, creator admin, bare names are users."""
    store_client.import_world(SPEC_EXAMPLE.read_bytes())

    def get(kind: str, ident: str) -> pb.Entity:
        return store_client.call("Get", pb.GetRequest(kind=kind, id=ident)).entity

    assert get("user", "bob").user.role == "member"
    assert get("user", "root").user.system_admin
    assert get("user", "dave").user.org == "acme", "team members absent from users join the org"
    assert get("membership", "vision/dave").membership.role == "ml-lead"
    assert get("registry_member", "fine-tuned/team:vision").registry_member.role == "viewer"
    assert get("registry_member", "fine-tuned/user:alice").registry_member.role == "admin"
    assert get("run", "r2").run.creator == "service_account:ci-bot"
    assert get("run", "r2").run.attributed_to == "bob"
    assert get("project_member", "p2/user:bob").project_member.member == "user:bob"
    registry = get("registry", "fine-tuned").registry
    assert (registry.restrict_types, list(registry.accepted_types)) == (True, ["model"])
    assert not get("registry", "model-acme").registry.restrict_types
    assert list(get("collection", "m0").collection.protected_aliases) == ["production"]


def test_changed_entity_is_named(store_client: StoreClient) -> None:
    """Loading a world whose entity exists with other content fails, naming the entity and the path."""
    store_client.import_world(SPEC_EXAMPLE.read_bytes())
    changed = SPEC_EXAMPLE.read_text().replace(
        "{id: p1, owner: team:vision, visibility: team", "{id: p1, owner: team:vision, visibility: public"
    )
    with pytest.raises(grpc.RpcError) as info:
        store_client.import_world(changed.encode())
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "world.projects[0]" in info.value.details()
    assert "project p1" in info.value.details()
    assert "visibility" in info.value.details()


BAD_WORLDS = [
    ("world: {teams: [{id: vision, org: acme, members: {dave: null}}], orgs: [{id: acme}]}",
     "world.teams[0].members.dave", grpc.StatusCode.INVALID_ARGUMENT),
    ("world: {orgs: [{id: acme}], teams: [{id: vision, org: acme, members: {dave: owner}}]}",
     "world.teams[0].members.dave.role", grpc.StatusCode.INVALID_ARGUMENT),
    ("world: {orgs: [{id: acme}], teams: [{id: vision, org: globex}]}",
     "world.teams[0].org", grpc.StatusCode.NOT_FOUND),
    ("world: {orgs: [{id: acme}], temas: []}", "temas", grpc.StatusCode.INVALID_ARGUMENT),
    ("world: {orgs: [{id: acme}, {id: acme}]}", "world.orgs[1]", grpc.StatusCode.INVALID_ARGUMENT),
    ("world: {orgs: [{id: acme, users: [{id: bob, role: owner}]}]}",
     "world.orgs[0].users[0].role", grpc.StatusCode.INVALID_ARGUMENT),
    ("world: {orgs: [{id: acme}], projects: [{id: p, owner: team:nope}]}",
     "world.projects[0].owner", grpc.StatusCode.NOT_FOUND),
    ("world: {orgs: [{id: acme}], runs: [{id: r, project: p}]}", "world.runs[0].creator",
     grpc.StatusCode.INVALID_ARGUMENT),
    ("world: [1, 2]", "world", grpc.StatusCode.INVALID_ARGUMENT),
    ("world: {orgs: [{id: 'bad id'}]}", "world.orgs[0].id", grpc.StatusCode.INVALID_ARGUMENT),
    ("world: {orgs: [{id: acme}]\n  bad: [", "not valid YAML", grpc.StatusCode.INVALID_ARGUMENT),
    ("world: {orgs: [{id: acme}], custom_roles: [{id: x, org: acme, base: member, permissions: [team.delete]}]}",
     "world.custom_roles[0].permissions[0]", grpc.StatusCode.INVALID_ARGUMENT),
]  # fmt: skip


@pytest.mark.parametrize(("document", "path", "code"), BAD_WORLDS, ids=[w[1] for w in BAD_WORLDS])
def test_malformed_world_names_the_path(
    store_client: StoreClient, document: str, path: str, code: grpc.StatusCode
) -> None:
    """A malformed world is refused as a whole with the path inside the document."""
    with pytest.raises(grpc.RpcError) as info:
        store_client.import_world(document.encode(), name="bad.yaml")
    assert info.value.code() == code
    assert path in info.value.details()
    assert store_client.revision() == 0, "nothing was written"


def test_replace_needs_the_test_reset_flag(database_url: str) -> None:
    """Replacing the whole content is refused unless the store was started with --allow-test-reset."""
    server = create_server(StoreConfig(listen="127.0.0.1:0", database_url=database_url, token=TOKEN))
    try:
        with StoreClient(f"127.0.0.1:{server.port}", TOKEN) as client:
            with pytest.raises(grpc.RpcError) as info:
                client.import_world(SPEC_EXAMPLE.read_bytes(), replace=True)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "--allow-test-reset" in info.value.details()
    finally:
        server.stop(0)


def test_replace_resets_the_feed(store_client: StoreClient) -> None:
    """A replacing import drops everything first; Watch carries a RESET before the new rows."""
    store_client.import_world(SPEC_EXAMPLE.read_bytes())
    revision = store_client.import_world(b"world: {orgs: [{id: other}]}", replace=True).revision
    page = store_client.call("List", pb.ListRequest(kind="org"))
    assert [e.org.id for e in page.entities] == ["other"]
    assert store_client.call("List", pb.ListRequest(kind="team")).entities == []
    response = next(iter(store_client.watch(revision - 1, timeout=5)))
    assert [c.op for c in response.changes] == [pb.Change.RESET, pb.Change.UPSERT]
