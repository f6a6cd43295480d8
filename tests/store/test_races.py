"""Domain rules hold when two writes race, on SQLite and PostgreSQL: no orphans, no broken rule,
and every refused write gets a clear status naming the entity (bench/races.py has the scenarios)."""

from __future__ import annotations

import pytest
from bench.races import SCENARIOS, prepare, run_scenario

from store.client import StoreClient

PAIRS = 25


@pytest.fixture
def prepared(store_client: StoreClient) -> StoreClient:
    prepare(store_client)
    return store_client


@pytest.mark.slow
@pytest.mark.parametrize("make", SCENARIOS, ids=[make.__name__.strip("_") for make in SCENARIOS])
def test_racing_pairs_keep_the_rule(prepared: StoreClient, make: object) -> None:
    """Racing pairs leave no orphan and break no rule; each loser's status is clear and names it."""
    scenario = make()  # type: ignore[operator]
    tally = run_scenario(prepared, scenario, PAIRS)
    assert tally.pairs == PAIRS
    assert tally.orphans == 0, tally.as_dict()
    assert tally.broken == 0, tally.as_dict()
    assert not tally.unclear, tally.as_dict()
