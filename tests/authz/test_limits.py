"""The decision service's limits, each on both sides of its boundary: the status code, and an error
that names the field and the limit (ARCHITECTURE.md, Failure behaviour)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from authz.client import Check
from authz.decision import MAX_CONTEXT, MAX_CONTEXT_VALUE, MAX_ID
from authz.server import MAX_MESSAGE_BYTES
from authz.service import MAX_BATCH
from authz.v1 import authorizer_pb2 as pb
from tests.conftest import Stack

ALLOWED = ("user:carol", "report.edit", "report:rep-weekly-vision")


def _refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def _invalid(call: Callable[[], object], field: str, limit: object) -> str:
    error = _refused(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    details = error.details() or ""
    assert field in details, details
    assert str(limit) in details, details
    return details


def test_id_length(stack: Stack) -> None:
    """Ids of 256 characters are fine; 257 is INVALID_ARGUMENT naming the field and 256."""
    assert MAX_ID == 256
    at_limit = "u" * MAX_ID
    decision = stack.client.check(f"user:{at_limit}", "report.view", f"report:{'r' * MAX_ID}")
    assert not decision.allowed  # an unknown user and report: a normal deny, not an error
    over = "u" * (MAX_ID + 1)
    details = _invalid(lambda: stack.client.check(f"user:{over}", "report.view", "report:x"), "subject.id", MAX_ID)
    assert "257 characters" in details
    _invalid(lambda: stack.client.check("user:carol", "report.view", f"report:{over}"), "resource.id", MAX_ID)


@pytest.mark.parametrize(
    ("subject", "resource", "field"),
    [
        ("user:b b", "report:x", "subject.id"),
        ("user:carol", "report:x/../y", "resource.id"),
        ("user:-carol", "report:x", "subject.id"),  # must start with a letter or digit
        ("user:carol", "report:rep\n1", "resource.id"),
        ("user:caról", "report:x", "subject.id"),
    ],
)
def test_id_characters(stack: Stack, subject: str, resource: str, field: str) -> None:
    """Ids hold letters, digits and . _ @ + - only; the error names the field and the allowed set."""
    _invalid(lambda: stack.client.check(subject, "report.view", resource), field, "letters, digits and . _ @ + -")


def test_id_characters_allowed(stack: Stack) -> None:
    assert not stack.client.check("user:a.b_c@d+e-f", "report.view", "report:X9").allowed


def test_context_entries(stack: Stack) -> None:
    """32 context entries are fine; 33 are INVALID_ARGUMENT naming context and 32."""
    assert MAX_CONTEXT == 32
    at_limit = {f"key_{chr(97 + i // 26)}{chr(97 + i % 26)}": "v" for i in range(MAX_CONTEXT)}
    assert stack.client.check(*ALLOWED, at_limit).allowed
    over = {**at_limit, "one_more": "v"}
    details = _invalid(lambda: stack.client.check(*ALLOWED, over), "context", MAX_CONTEXT)
    assert "33 entries" in details


def test_context_value_length(stack: Stack) -> None:
    assert stack.client.check(*ALLOWED, {"alias": "a" * MAX_CONTEXT_VALUE}).allowed
    _invalid(
        lambda: stack.client.check(*ALLOWED, {"alias": "a" * (MAX_CONTEXT_VALUE + 1)}), "context.alias",
        MAX_CONTEXT_VALUE,
    )  # fmt: skip


def test_context_in_list_calls(stack: Stack) -> None:
    """The list calls validate their context with the same limit."""
    context = {f"key_{chr(97 + i // 26)}{chr(97 + i % 26)}": "v" for i in range(MAX_CONTEXT + 1)}
    request = pb.ListResourcesRequest(
        subject=pb.ObjectRef(kind="user", id="carol"), action="report.view", resource_kind="report", context=context
    )
    _invalid(lambda: stack.client.stub.ListResources(request, timeout=10), "context", MAX_CONTEXT)


def test_batch_size(stack: Stack) -> None:
    """1000 checks in a batch are fine; 1001 are INVALID_ARGUMENT naming checks and 1000."""
    assert MAX_BATCH == 1000
    results = stack.client.batch_check([Check(*ALLOWED)] * MAX_BATCH)
    assert len(results) == MAX_BATCH
    assert all(r.allowed for r in results)
    details = _invalid(lambda: stack.client.batch_check([Check(*ALLOWED)] * (MAX_BATCH + 1)), "checks", MAX_BATCH)
    assert "1001 items" in details


def test_batch_item_names_its_index(stack: Stack) -> None:
    checks = [Check(*ALLOWED)] * 5 + [Check("user:carol", "report.view", f"report:{'r' * (MAX_ID + 1)}")]
    _invalid(lambda: stack.client.batch_check(checks), "checks[5].resource.id", MAX_ID)


def test_message_size(stack: Stack) -> None:
    """A request over 4 MiB is refused by gRPC with RESOURCE_EXHAUSTED, naming the limit in bytes."""
    assert MAX_MESSAGE_BYTES == 4 << 20
    # Just under the limit, many small checks: accepted (and then judged by the batch limit).
    under = pb.BatchCheckRequest(
        checks=[pb.CheckRequest(subject=pb.ObjectRef(kind="user", id="carol"), action="report.edit",
                                resource=pb.ObjectRef(kind="report", id="rep-weekly-vision"),
                                context={"alias": "a" * 200})] * MAX_BATCH,
    )  # fmt: skip
    assert under.ByteSize() < MAX_MESSAGE_BYTES
    assert len(stack.client.stub.BatchCheck(under, timeout=30).results) == MAX_BATCH
    oversized = Check("user:carol", "report.view", "report:x", {"alias": "a" * (MAX_MESSAGE_BYTES + 1)}).message()
    error = _refused(lambda: stack.client.stub.Check(oversized, timeout=30))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error.details() or ""
    assert "message larger than max" in details.lower(), details
    assert str(MAX_MESSAGE_BYTES) in details, details
    # The server is unharmed.
    assert stack.client.check(*ALLOWED).allowed
