"""Domain rules of the store over gRPC: each refusal has its status and names the field or entity."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from store.client import StoreClient
from store.v1 import store_pb2 as pb

WORLD = (Path(__file__).resolve().parent.parent / "worlds" / "spec-example.yaml").read_bytes()


@pytest.fixture
def client(store_client: StoreClient) -> StoreClient:
    store_client.import_world(WORLD, name="spec-example.yaml")
    return store_client


def refused(client: StoreClient, method: str, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        client.write(method, request)
    return info.value


CASES = [
    pytest.param(
        "UpdateRegistry",
        pb.Registry(id="fine-tuned", visibility="restricted", restrict_types=True, accepted_types=["dataset"]),
        grpc.StatusCode.FAILED_PRECONDITION,
        ["accepted_types", "model", "G-R7"],
        id="G-R7 accepted types cannot be removed",
    ),
    pytest.param(
        "UpdateRegistry",
        pb.Registry(id="model-acme", visibility="organization", restrict_types=True, accepted_types=["model"]),
        grpc.StatusCode.FAILED_PRECONDITION,
        ["accepted_types", "G-R7"],
        id="G-R7 all types cannot be narrowed",
    ),
    pytest.param(
        "CreateCustomRole",
        pb.CustomRole(id="r", org="acme", base="member", permissions=["report.edit", "team.delete"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["permissions[1]", "team.delete", "T7-T9"],
        id="custom role may not add team.delete",
    ),
    pytest.param(
        "CreateCustomRole",
        pb.CustomRole(id="r", org="acme", base="member", permissions=["report.edt"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["permissions[0]", "report.edt", "report.edit"],
        id="custom role unknown action with a hint",
    ),
    pytest.param(
        "CreateCustomRole",
        pb.CustomRole(id="r", org="acme", base="admin"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["base", "view_only"],
        id="custom role base must be view_only or member",
    ),
    pytest.param(
        "CreateTeam",
        pb.Team(id="vision", org="acme"),
        grpc.StatusCode.ALREADY_EXISTS,
        ["team vision"],
        id="duplicate team",
    ),
    pytest.param(
        "CreateTeam",
        pb.Team(id="nlp", org="globex"),
        grpc.StatusCode.NOT_FOUND,
        ["org globex", "org"],
        id="unknown org",
    ),
    pytest.param(
        "AddMember",
        pb.Membership(team="vision", user="zed", role="member"),
        grpc.StatusCode.NOT_FOUND,
        ["user zed"],
        id="unknown user",
    ),
    pytest.param(
        "AddMember",
        pb.Membership(team="vision", user="vic", role="owner"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["role", "owner"],
        id="unknown team role",
    ),
    pytest.param(
        "CreateRun",
        pb.Run(id="r9", project="nope", creator="user:bob"),
        grpc.StatusCode.NOT_FOUND,
        ["project nope"],
        id="run in unknown project",
    ),
    pytest.param(
        "CreateRun",
        pb.Run(id="r1", project="p1", creator="user:bob"),
        grpc.StatusCode.ALREADY_EXISTS,
        ["run r1"],
        id="duplicate run",
    ),
    pytest.param(
        "CreateProject",
        pb.Project(id="p9", owner="vision", visibility="team"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["owner", "kind:id"],
        id="owner without kind",
    ),
    pytest.param(
        "CreateProject",
        pb.Project(id="p9", owner="team:vision", visibility="secret"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["visibility", "secret"],
        id="bad visibility",
    ),
    pytest.param(
        "CreateTeam",
        pb.Team(id="", org="acme"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["team.id", "empty"],
        id="empty id",
    ),
    pytest.param(
        "CreateTeam",
        pb.Team(id="x" * 300, org="acme"),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["team.id", "256"],
        id="id too long",
    ),
    pytest.param(
        "AddProjectMember",
        pb.ProjectMember(project="p1", member="user:alice"),
        grpc.StatusCode.FAILED_PRECONDITION,
        ["p1", "restricted"],
        id="members only on restricted projects",
    ),
    pytest.param(
        "DeleteTeam",
        pb.Key(id="vision"),
        grpc.StatusCode.FAILED_PRECONDITION,
        ["team vision", "delete them first"],
        id="team with content cannot be deleted",
    ),
    pytest.param(
        "SetModelRegistryState",
        pb.SetModelRegistryStateRequest(team="vision", state="migrating"),
        None,
        [],
        id="legacy registry may start migrating",
    ),
    pytest.param(
        "UpdateTeam",
        pb.Team(id="vision", org="globex"),
        grpc.StatusCode.FAILED_PRECONDITION,
        ["org", "cannot be changed"],
        id="immutable field",
    ),
]


@pytest.mark.parametrize(("method", "request_message", "code", "words"), CASES)
def test_domain_rule(
    client: StoreClient, method: str, request_message: object, code: grpc.StatusCode | None, words: list[str]
) -> None:
    """A refused write has the rule's status and a message naming the field or entity."""
    if code is None:
        assert client.write(method, request_message) > 0
        return
    error = refused(client, method, request_message)
    assert error.code() == code, error.details()
    for word in words:
        assert word in error.details()


def test_storage_bucket_is_set_once(client: StoreClient) -> None:
    """T8: a team's bucket can be set once; changing it names the team and the bucket."""
    client.write("SetStorageBucket", pb.SetStorageBucketRequest(team="vision", bucket="s3://vision"))
    same = client.write("SetStorageBucket", pb.SetStorageBucketRequest(team="vision", bucket="s3://vision"))
    assert same == client.revision()
    error = refused(client, "SetStorageBucket", pb.SetStorageBucketRequest(team="vision", bucket="s3://other"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "vision" in error.details()
    assert "s3://vision" in error.details()
    assert "T8" in error.details()


def test_accepted_types_can_be_added(client: StoreClient) -> None:
    """G-R7 refuses removals only: adding a type is accepted and bumps the revision."""
    before = client.revision()
    request = pb.Registry(id="fine-tuned", visibility="restricted", restrict_types=True, accepted_types=["model", "x"])
    assert client.write("UpdateRegistry", request) == before + 1


def test_restricted_registry_creator_becomes_admin(client: StoreClient) -> None:
    """The creator of a restricted registry is recorded as its admin."""
    client.write("CreateRegistry", pb.Registry(id="evals", org="acme", visibility="restricted", creator="carol"))
    member = client.call("Get", pb.GetRequest(kind="registry_member", id="evals/user:carol")).entity
    assert member.registry_member.role == "admin"


def test_removing_a_member_keeps_their_work(client: StoreClient) -> None:
    """G5: after bob leaves the team and the org, his runs, reports and artifacts stay, creator recorded."""
    client.write("RemoveMember", pb.MembershipKey(team="vision", user="bob"))
    client.write("DeleteUser", pb.Key(id="bob"))
    run = client.call("Get", pb.GetRequest(kind="run", id="r1")).entity.run
    report = client.call("Get", pb.GetRequest(kind="report", id="rep1")).entity.report
    artifact = client.call("Get", pb.GetRequest(kind="artifact", id="a1")).entity.artifact
    assert (run.creator, report.creator, artifact.creator) == ("user:bob", "user:bob", "user:bob")
    error = refused(client, "AddMember", pb.Membership(team="vision", user="bob", role="member"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_deleting_a_user_cascades_link_rows(client: StoreClient) -> None:
    """Deleting a user removes their memberships and grants in the same revision."""
    revision = client.write("DeleteUser", pb.Key(id="bob"))
    changes = []
    for response in client.watch(revision - 1, timeout=2):
        changes.extend(response.changes)
        if response.revision_complete:
            break
    kinds = sorted(c.entity.WhichOneof("kind") for c in changes)
    assert kinds == ["membership", "model_registry_admin", "project_member", "registry_member", "user"]


def test_move_run_keeps_creator(client: StoreClient) -> None:
    """E4a: moving a run changes its project, never its creator."""
    client.write("CreateProject", pb.Project(id="p3", owner="team:vision", visibility="team", creator="user:carol"))
    client.write("MoveRun", pb.MoveRunRequest(id="r1", project="p3"))
    run = client.call("Get", pb.GetRequest(kind="run", id="r1")).entity.run
    assert (run.project, run.creator) == ("p3", "user:bob")


def test_legacy_registry_state_only_moves_forward(client: StoreClient) -> None:
    """A legacy registry goes active -> migrating -> migrated, never back."""
    client.write("SetModelRegistryState", pb.SetModelRegistryStateRequest(team="vision", state="migrated"))
    error = refused(client, "SetModelRegistryState", pb.SetModelRegistryStateRequest(team="vision", state="active"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "state" in error.details()
