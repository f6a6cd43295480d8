"""Fuzzing (hypothesis, bounded): malformed requests and world documents never crash anything,
never raise anything but our errors, and an invalid request is never allowed."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz.decider import Decider
from authz.decision import Request
from authz.errors import InvalidRequest
from authz.testing import decider_for, state_from_document, state_from_file
from store.errors import StoreError
from store.world import load_document
from tests.conftest import DEMO_WORLD

# CI runs bounded examples; AUTHZ_FUZZ_SCALE=20 multiplies them for a longer run (RELIABILITY.md).
SCALE = int(os.environ.get("AUTHZ_FUZZ_SCALE", "1"))
TEXT = st.text(max_size=300)
NAMES = st.sampled_from(
    ["user", "service_account", "anonymous", "team", "report", "run", "project", "registry", "version", "", "x"]
)
IDS = st.one_of(st.sampled_from(["carol", "dave", "rep-weekly-vision", "vision", "", "a b", "x" * 257]), TEXT)
ACTIONS = st.one_of(st.sampled_from(["report.edit", "run.view", "team.add_member", "report.", ".x", ""]), TEXT)


@cache
def _decider() -> Decider:
    return decider_for(state_from_file(DEMO_WORLD))


@settings(max_examples=600 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject_kind=NAMES, subject_id=IDS, action=ACTIONS, resource_kind=NAMES, resource_id=IDS,
    context=st.dictionaries(TEXT, TEXT, max_size=40), min_revision=st.integers(-5, 1),
)  # fmt: skip
def test_check_never_crashes(
    subject_kind: str, subject_id: str, action: str, resource_kind: str, resource_id: str, context: dict[str, str],
    min_revision: int,
) -> None:  # fmt: skip
    """Any request is a decision or an InvalidRequest naming a field; an invalid one is never allowed."""
    request = Request(subject_kind, subject_id, action, resource_kind, resource_id, context, min_revision)
    try:
        decision = _decider().check(request, timeout=0)
    except InvalidRequest as exc:
        problem = exc
    else:
        assert decision.reason
        if decision.allowed:
            assert subject_kind in ("user", "service_account", "anonymous")
            assert "internal error" not in decision.reason
        return
    assert problem.field


@settings(max_examples=200 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(NAMES, IDS, ACTIONS, NAMES, IDS), max_size=20))
def test_batch_never_crashes(items: list[tuple[str, str, str, str, str]]) -> None:
    """A batch either names its first bad item or answers every item."""
    requests = [Request(a, b, c, d, e) for a, b, c, d, e in items]
    try:
        decisions = _decider().check_many(requests, timeout=0)
    except InvalidRequest as exc:
        problem = exc
    else:
        assert len(decisions) == len(requests)
        return
    assert problem.field.startswith("checks[")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["acme", "vision", "bob", "admin", "p1"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "org", "users", "teams", "members", "projects", "owner", "visibility", "runs",
                         "project", "creator", "registries", "collections", "versions", "role", "world", "x"]),
        children, max_size=5,
    ),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=400 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_world_documents_never_crash(document: Any) -> None:
    """Any document gives a world or one of the store's errors, never another exception."""
    try:
        if isinstance(document, dict):
            state_from_document(document)  # the store's parser and reference rules
    except StoreError:
        pass


@settings(max_examples=300 * SCALE, deadline=None)
@given(st.binary(max_size=400))
def test_world_bytes_never_crash(data: bytes) -> None:
    """Any bytes are a document or an InvalidArgument naming the file."""
    message = "parsed"
    try:
        state_from_document(load_document(data, "fuzz.yaml"))
    except StoreError as exc:
        message = str(exc)
    assert message
