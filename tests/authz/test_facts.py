"""The facts schema (authz/facts.py) is exactly what the resolver gives, kind by kind, and docs say it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from authz import facts, resolver
from authz.testing import random_world, resource_ids, state_from_document
from store.kinds import RESOURCE_KINDS

ROOT = Path(__file__).resolve().parents[2]
TYPES = {"str": str, "bool": bool, "set": frozenset}


def _state() -> object:
    for seed in range(50):
        state = state_from_document(random_world(random.Random(seed), 8))
        ids = resource_ids(state)
        if all(ids.get(kind) for kind in RESOURCE_KINDS):
            return state
    raise AssertionError("no random world had every kind")


STATE = _state()


@pytest.mark.parametrize("kind", RESOURCE_KINDS)
def test_resource_facts_match_the_schema(kind: str) -> None:
    """Every resource of a kind has exactly the schema's facts, of the schema's types."""
    for ident in resource_ids(STATE)[kind]:  # type: ignore[arg-type]
        target = resolver.resource(STATE, kind, ident)  # type: ignore[arg-type]
        assert target is not None
        assert set(target.facts) == set(facts.RESOURCE[kind])
        for name, value in target.facts.items():
            assert isinstance(value, TYPES[facts.RESOURCE[kind][name]]), (kind, name, value)


def test_subject_facts_match_the_schema() -> None:
    """Every subject, of every kind, has exactly the schema's facts; its role tokens are the schema's."""
    target = resolver.resource(STATE, "team", resource_ids(STATE)["team"][0])  # type: ignore[arg-type]
    assert target is not None
    users = [key[0] for key in STATE.rows["user"]]  # type: ignore[attr-defined]
    accounts = [key[0] for key in STATE.rows["service_account"]]  # type: ignore[attr-defined]
    subjects = [("user", u) for u in users] + [("service_account", a) for a in accounts] + [("anonymous", "")]
    for kind, ident in subjects:
        sub = resolver.subject(STATE, kind, ident, target)  # type: ignore[arg-type]
        assert set(sub) == set(facts.SUBJECT)
        for name, value in sub.items():
            assert isinstance(value, TYPES[facts.SUBJECT[name]]), (name, value)
        assert all(role in facts.ROLE_TOKENS or role.startswith(facts.GENERATED_ROLE_PREFIX) for role in sub["roles"])


def test_docs_describe_every_fact() -> None:
    """docs/facts.md names every fact, context value and role token."""
    text = (ROOT / "docs" / "facts.md").read_text()
    names = {*facts.SUBJECT, *(n for kind in facts.RESOURCE.values() for n in kind), *facts.CONTEXT, *facts.ROLE_TOKENS}
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert missing == []
