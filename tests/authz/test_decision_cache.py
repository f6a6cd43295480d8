"""The decision cache (`serve --decision-cache N`) answers as deciding again would: a store change
(a new revision) or a new engine empties it."""

from __future__ import annotations

from pathlib import Path

from authz.decider import Decider
from authz.decision import Request
from authz.state import FixedState
from authz.testing import decider_for, state_from_document
from store.world import load_document

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-world.yaml"
VIEW = Request("user", "trent", "report.view", "report", "rep-weekly-vision")


def _cached() -> tuple[Decider, FixedState]:
    state = state_from_document(load_document(DEMO.read_bytes(), str(DEMO)))
    plain = decider_for(state)
    source = FixedState(state)
    return Decider(source, plain.engines, cache=100), source


def test_a_repeated_request_is_answered_from_the_cache() -> None:
    decider, _ = _cached()
    first = decider.check(VIEW)
    assert decider.check(VIEW) is first
    assert decider.check(Request(**{**VIEW.__dict__, "explain": True})) is not first


def test_a_new_revision_decides_again() -> None:
    decider, source = _cached()
    before = decider.check(VIEW)
    state = source.state
    member = {"team": "vision", "user": "trent", "role": "view_only"}
    if before.allowed:
        state.apply("delete", "membership", member)
    else:
        state.apply("upsert", "membership", member)
    state.revision += 1
    after = decider.check(VIEW)
    assert after.allowed != before.allowed
    assert after.revision == state.revision
    uncached = Decider(source, decider.engines).check(VIEW)
    assert (after.allowed, after.reason, after.rules) == (uncached.allowed, uncached.reason, uncached.rules)
