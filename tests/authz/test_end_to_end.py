"""Both services over real gRPC: read-your-writes, membership evaluated at decision time (G4)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from authz.client import Check, Client
from authz.server import ServerConfig
from authz.server import create_server as create_decision_server
from store.v1 import store_pb2 as pb
from tests.conftest import TOKEN, Stack


def test_read_your_writes(stack: Stack) -> None:
    """A Check with the revision a write returned as min_revision sees that write."""
    before = stack.client.check("user:trent", "report.view", "report:rep-weekly-vision")
    assert not before.allowed
    revision = stack.store_client.write("AddMember", pb.Membership(team="vision", user="trent", role="view_only"))
    after = stack.client.check("user:trent", "report.view", "report:rep-weekly-vision", min_revision=revision)
    assert after.allowed, after.reason
    assert after.revision >= revision
    assert "RP1" in after.rules


def test_removing_a_member_flips_decisions(stack: Stack) -> None:
    """G4: once dave leaves vision, what came through vision is gone, with no restart."""
    checks = [
        ("user:dave", "report.view", "report:rep-weekly-vision"),
        ("user:dave", "run.delete", "run:run-seg-moved"),  # denied either way (E4a)
        ("user:dave", "project.edit", "project:vision-detection"),
        ("user:dave", "model_registry.view", "model_registry:vision"),
    ]
    before = [stack.client.check(*c).allowed for c in checks]
    assert before == [True, False, True, True]
    revision = stack.store_client.write("RemoveMember", pb.MembershipKey(team="vision", user="dave"))
    after = [stack.client.check(*c, min_revision=revision) for c in checks]
    assert [d.allowed for d in after] == [False, False, False, False]
    assert "P0" in after[0].rules


def test_removed_members_work_stays_theirs(stack: Stack) -> None:
    """G5: after carol leaves, her report is still hers on record; a team admin may delete her run."""
    revision = stack.store_client.write("RemoveMember", pb.MembershipKey(team="vision", user="carol"))
    report = stack.store_client.call("Get", pb.GetRequest(kind="report", id="rep-weekly-vision")).entity.report
    assert report.creator == "user:carol"
    assert stack.client.check("user:bob", "run.delete", "run:run-det-001", min_revision=revision).allowed
    assert not stack.client.check("user:dave", "run.delete", "run:run-det-001", min_revision=revision).allowed


def test_custom_role_changes_apply_live(stack: Stack) -> None:
    """A custom role's extra permissions follow the store: dropping one revokes it at once."""
    assert stack.client.check("user:frank", "report.edit", "report:rep-weekly-vision").allowed
    revision = stack.store_client.write(
        "UpdateCustomRole", pb.CustomRole(id="ml-lead", base="member", permissions=["team.add_member"])
    )
    decision = stack.client.check("user:frank", "report.edit", "report:rep-weekly-vision", min_revision=revision)
    assert not decision.allowed


def test_batch_check(stack: Stack) -> None:
    """BatchCheck answers each item, in order, at one revision."""
    results = stack.client.batch_check(
        [
            Check("user:carol", "report.edit", "report:rep-weekly-vision"),
            Check("user:dave", "report.edit", "report:rep-weekly-vision"),
            Check("anonymous", "report.view", "report:rep-benchmarks"),
        ]
    )
    assert [r.allowed for r in results] == [True, False, True]
    assert len({r.revision for r in results}) == 1


def test_unreachable_revision_fails_before_the_deadline(stack: Stack) -> None:
    """A min_revision the store never reaches fails with UNAVAILABLE, inside the caller's deadline."""
    request = Check("user:carol", "report.edit", "report:rep-weekly-vision", min_revision=10**9).message()
    with pytest.raises(grpc.RpcError) as info:
        stack.client.stub.Check(request, timeout=1.0)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "revision 1000000000" in info.value.details()


BAD = [
    (Check("user:", "report.edit", "report:x"), "subject.id"),
    (Check("robot:x", "report.edit", "report:x"), "subject.kind"),
    (Check("user:bob", "edit", "report:x"), "action"),
    (Check("user:bob", "report.edit", "report:"), "resource.id"),
    (Check("user:bob", "report.edit", "report:" + "x" * 300), "256"),
    (Check("user:bob", "report.edit", "report:a b"), "resource.id"),
    (Check("user:bob", "report.edit", "report:x", {f"k{i}": "v" for i in range(40)}), "context"),
]


@pytest.mark.parametrize(("check", "field"), BAD, ids=[b[1] for b in BAD])
def test_malformed_requests_name_the_field(stack: Stack, check: Check, field: str) -> None:
    """Malformed input is INVALID_ARGUMENT naming the field, not a deny (G3)."""
    with pytest.raises(grpc.RpcError) as info:
        stack.client.stub.Check(check.message(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in info.value.details()


def test_batch_item_errors_name_the_item(stack: Stack) -> None:
    """A malformed item of a batch is named by its index."""
    checks = [Check("user:bob", "report.view", "report:rep-weekly-vision"), Check("user:bob", "nope", "report:x")]
    with pytest.raises(grpc.RpcError) as info:
        stack.client.batch_check(checks)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "checks[1].action" in info.value.details()


def test_unknowns_are_denied_with_reasons(stack: Stack) -> None:
    """G3: unknown subject, resource, action and a kind the action does not apply to are denials naming them."""
    cases = [
        (("user:zed", "report.view", "report:rep-weekly-vision"), "unknown subject user:zed"),
        (("user:carol", "report.view", "report:nope"), "unknown resource report:nope"),
        (("user:carol", "report.publish", "report:rep-weekly-vision"), "unknown action report.publish"),
        (("user:carol", "report.edit", "run:run-det-001"), "applies to report resources, not run"),
    ]
    for args, words in cases:
        decision = stack.client.check(*args)
        assert not decision.allowed
        assert words in decision.reason


def test_audit_log(stack: Stack, tmp_path: Path) -> None:
    """With an audit log, each decision is one JSON line: who, what, answer, rules, revision, policy."""
    audit = tmp_path / "audit.jsonl"
    server = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                     policies=stack.policies, audit_log=audit)
    )  # fmt: skip
    try:
        server.replica.synced.wait(10)
        with Client(f"127.0.0.1:{server.port}") as client:
            client.check("user:carol", "report.edit", "report:rep-weekly-vision", {"alias": "x"})
            client.batch_check([Check("user:dave", "report.edit", "report:rep-weekly-vision")])
    finally:
        server.stop(0)
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(e["subject"], e["allowed"]) for e in lines] == [("user:carol", True), ("user:dave", False)]
    assert lines[0]["rules"][0] == "RP3"
    assert lines[0]["context_keys"] == ["alias"]
    assert {"revision", "policy_version", "peer", "time", "policy_lines"} <= set(lines[0])
