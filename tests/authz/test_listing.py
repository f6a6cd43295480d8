"""ListResources and ListSubjects equal brute-force filtering with Check, page by page."""

from __future__ import annotations

import random

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz import listing
from authz.decider import Decider
from authz.decision import Request
from authz.testing import decider_for, random_requests, random_world, resource_ids, state_from_document
from authz.v1 import authorizer_pb2 as pb
from tests.conftest import Stack


def _pages(fetch: object, size: int) -> list[str]:
    ids: list[str] = []
    token = ""
    for _ in range(10_000):
        page = fetch(size, token)  # type: ignore[operator]
        assert len(page.ids) <= size
        ids += page.ids
        token = page.next_token
        if not token:
            return ids
    raise AssertionError("paging did not end")


def _brute_resources(decider: Decider, request: Request, ids: list[str]) -> list[str]:
    return sorted(
        i for i in ids
        if decider.decide(Request(request.subject_kind, request.subject_id, request.action, request.resource_kind, i,
                                  request.context)).allowed
    )  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), size=st.sampled_from([1, 2, 3, 7, 100]))
def test_list_resources_is_exact(seed: int, size: int) -> None:
    """For random subjects, actions and kinds: the pages together are exactly what Check allows."""
    rng = random.Random(seed)
    state = state_from_document(random_world(rng, rng.randint(4, 9)))
    decider = decider_for(state)
    all_ids = resource_ids(state)
    for request in random_requests(rng, state, decider.engines.policy, 15):
        if request.subject_id == "ghost":
            continue

        def fetch(n: int, token: str, r: Request = request) -> listing.Page:
            return listing.list_resources(
                decider, subject_kind=r.subject_kind, subject_id=r.subject_id, action=r.action,
                kind=r.resource_kind, context=dict(r.context), size=n, token=token,
            )  # fmt: skip

        listed = _pages(fetch, size)
        assert len(listed) == len(set(listed)), "no id twice across pages"
        assert sorted(listed) == _brute_resources(decider, request, all_ids[request.resource_kind]), request


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), size=st.sampled_from([1, 2, 5, 100]))
def test_list_subjects_is_exact(seed: int, size: int) -> None:
    """Who may do an action on a resource: exactly the users (or service accounts) Check allows."""
    rng = random.Random(seed)
    state = state_from_document(random_world(rng, rng.randint(4, 9)))
    decider = decider_for(state)
    for request in random_requests(rng, state, decider.engines.policy, 15):
        if request.resource_id == "missing":
            continue
        kind = rng.choice(["user", "service_account"])
        table = "user" if kind == "user" else "service_account"

        def fetch(n: int, token: str, r: Request = request, k: str = kind) -> listing.Page:
            return listing.list_subjects(
                decider, action=r.action, kind=r.resource_kind, ident=r.resource_id, subject_kind=k,
                context=dict(r.context), size=n, token=token,
            )  # fmt: skip

        brute = sorted(
            key[0] for key in state.rows[table]
            if decider.decide(Request(kind, key[0], request.action, request.resource_kind, request.resource_id,
                                      request.context)).allowed
        )  # fmt: skip
        assert _pages(fetch, size) == brute, request


def test_list_resources_over_grpc(stack: Stack) -> None:
    """Over gRPC: carol's editable reports, paged, with the revision and policy version."""
    request = pb.ListResourcesRequest(
        subject=pb.ObjectRef(kind="user", id="carol"), action="report.edit", resource_kind="report", page_size=1
    )
    first = stack.client.stub.ListResources(request, timeout=10)
    assert len(first.resource_ids) == 1
    assert first.revision >= 1
    assert first.policy_version
    ids = list(first.resource_ids)
    token = first.next_page_token
    while token:
        request.page_token = token
        page = stack.client.stub.ListResources(request, timeout=10)
        ids += page.resource_ids
        token = page.next_page_token
    for ident in ids:
        assert stack.client.check("user:carol", "report.edit", f"report:{ident}").allowed
    assert "rep-weekly-vision" in ids
    assert "rep-seg-notes" not in ids


def test_list_subjects_over_grpc(stack: Stack) -> None:
    """Who may edit a report: its creator and the team's admins and custom roles with report.edit."""
    reply = stack.client.stub.ListSubjects(
        pb.ListSubjectsRequest(action="report.edit", resource=pb.ObjectRef(kind="report", id="rep-weekly-vision"),
                               subject_kind="user"), timeout=10,
    )  # fmt: skip
    assert "carol" in reply.subject_ids
    assert "dave" not in reply.subject_ids
    for user in reply.subject_ids:
        assert stack.client.check(f"user:{user}", "report.edit", "report:rep-weekly-vision").allowed


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (
            pb.ListResourcesRequest(
                subject=pb.ObjectRef(kind="user", id="carol"), action="report.edit", resource_kind="reports"
            ),
            "resource_kind",
        ),
        (
            pb.ListResourcesRequest(
                subject=pb.ObjectRef(kind="user", id="carol"),
                action="report.edit",
                resource_kind="report",
                page_size=5000,
            ),
            "page_size",
        ),
        (
            pb.ListResourcesRequest(
                subject=pb.ObjectRef(kind="user", id="carol"),
                action="report.edit",
                resource_kind="report",
                page_token="zzz",
            ),
            "page_token",
        ),
        (
            pb.ListResourcesRequest(
                subject=pb.ObjectRef(kind="user", id=""), action="report.edit", resource_kind="report"
            ),
            "subject.id",
        ),
    ],
)
def test_list_resources_bad_input(stack: Stack, request_message: pb.ListResourcesRequest, field: str) -> None:
    """Malformed list requests are INVALID_ARGUMENT naming the field."""
    with pytest.raises(grpc.RpcError) as info:
        stack.client.stub.ListResources(request_message, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in info.value.details()
