"""Helpers for tests and tools: build a replica from a world document, in memory, no store needed.

The world is checked exactly as the store's ImportWorld checks it (same parser, same reference
and domain rules), then applied to a fresh WorldState.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from authz.decider import Decider, EngineHolder, engine_factory
from authz.policy import Policy, load_policy
from authz.replica import Replica
from authz.state import WorldState, key_of
from store.repository import check_row
from store.world import load_document, parse_world

DEFAULT_POLICIES = Path(__file__).resolve().parents[2] / "policies"


class _WorldLookup:
    def __init__(self, rows: dict[str, dict[tuple[str, ...], dict[str, Any]]]) -> None:
        self.rows = rows

    def get(self, kind: str, key: tuple[str, ...]) -> dict[str, Any] | None:
        return self.rows.get(kind, {}).get(key)


def state_from_document(document: dict[str, Any], revision: int = 1) -> WorldState:
    """A WorldState holding the document's world; raises the store's errors for a bad world."""
    rows = parse_world(document)
    table: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}
    lookup = _WorldLookup(table)
    state = WorldState()
    for item in rows:
        check_row(lookup, item.kind, item.row, item.path)
        table.setdefault(item.kind, {})[key_of(item.kind, item.row)] = item.row
        state.apply("upsert", item.kind, dict(item.row))
    state.revision = revision
    return state


def state_from_file(path: Path | str) -> WorldState:
    path = Path(path)
    return state_from_document(load_document(path.read_bytes(), str(path)))


def decider_for(state: WorldState, policy: Policy | None = None, engine: str = "compiled") -> Decider:
    """A Decider over a fixed state (no store) with the given or the repository's policy."""
    replica = Replica()
    replica.state = state
    replica.synced.set()
    return Decider(replica, EngineHolder(policy or load_policy(DEFAULT_POLICIES), engine_factory(engine)))
