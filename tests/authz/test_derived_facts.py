"""The project facts a state keeps between decisions (``WorldState.project_parts``) never go stale.

Every resource's facts are resolved from a state whose kept facts are warm, after each change of a
random sequence (upserts and deletes of projects, teams, memberships, users and content, drawn
from a second random world), and compared with the facts a copy of the same rows, derived from
nothing, gives. A change that forgot to drop what it made stale fails this.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from authz import resolver
from authz.migration_proof import copy_state
from authz.state import WorldState
from authz.testing import random_world, state_from_document
from store.kinds import CONTENT_KINDS

CHANGED = ("project", "team", "membership", "user", *CONTENT_KINDS)
KINDS = ("project", *CONTENT_KINDS)


def _facts(state: WorldState) -> dict[tuple[str, str], Any]:
    """Every project's and content row's facts and scope (None for one whose project or team is gone)."""
    out: dict[tuple[str, str], Any] = {}
    for kind in KINDS:
        for (ident,) in list(state.rows[kind]):
            found = resolver.resource(state, kind, ident)
            out[kind, ident] = None if found is None else (found.facts, found.scope, found.project)
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_kept_project_facts_follow_every_change(seed: int) -> None:
    rng = random.Random(seed)
    state = state_from_document(random_world(rng, 6))
    other = state_from_document(random_world(rng, 6))
    _facts(state)  # warm: every project's part is kept now
    assert state.project_parts
    for _ in range(25):
        kind = rng.choice(CHANGED)
        if rng.random() < 0.6 and other.rows[kind]:
            row = dict(rng.choice(list(other.rows[kind].values())))
            if kind == "user":  # every random world has one org: move people between orgs too
                row["org"] = rng.choice(["o", "o2", ""])
            state.apply("upsert", kind, row)
        elif state.rows[kind]:
            state.apply("delete", kind, dict(rng.choice(list(state.rows[kind].values()))))
        assert _facts(state) == _facts(copy_state(state)), f"stale facts after a change of {kind}"


def test_a_membership_change_reaches_the_kept_facts() -> None:
    """The case the property covers most often, spelled out: a member added after the facts were kept."""
    state = state_from_document(
        {"orgs": [{"id": "o", "users": [{"id": "ann", "role": "member"}, {"id": "bo", "role": "member"}]}],
         "teams": [{"id": "t", "org": "o", "members": {"ann": "member"}}],
         "projects": [{"id": "p", "owner": "team:t", "visibility": "team", "creator": "ann"}]}
    )  # fmt: skip
    assert _members(state) == {"ann"}
    state.apply("upsert", "membership", {"team": "t", "user": "bo", "role": "member"})
    assert _members(state) == {"ann", "bo"}
    state.apply("delete", "membership", {"team": "t", "user": "ann"})
    assert _members(state) == {"bo"}


def _members(state: WorldState) -> Any:
    found = resolver.resource(state, "project", "p")
    assert found is not None
    return found.facts["team_members"]
