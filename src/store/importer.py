"""ImportWorld: write a parsed world in one transaction, idempotently, with bulk inserts.

Loading the same world twice changes nothing (no new revision); an entity that exists with
different content is an ALREADY_EXISTS error naming it and the path in the document. With
``replace`` the store's whole content is dropped first (one ``reset`` change, then the world).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

from sqlalchemy import select
from sqlalchemy.orm import Session

from servicekit.text import clip
from store.changes import insert_many
from store.entities import SPECS, Spec
from store.errors import AlreadyExists
from store.kinds import Key, Row
from store.repository import Change, check_row, iter_rows, wipe
from store.world import WorldRow, iter_kinds


@dataclass(frozen=True)
class ImportResult:
    changes: list[Change]
    created: int
    unchanged: int


class _Overlay:
    """Entities of the database (loaded per kind on first use) with the world's new rows on top."""

    def __init__(self, session: Session, empty: bool) -> None:
        self.session = session
        self.empty = empty
        self.loaded: dict[str, dict[Key, Row]] = {}

    def existing(self, kind: str) -> dict[Key, Row]:
        rows = self.loaded.get(kind)
        if rows is None:
            spec = SPECS[kind]
            rows = {} if self.empty else {spec.key_of(r): r for r in iter_rows(self.session, kind)}
            self.loaded[kind] = rows
        return rows

    def get(self, kind: str, key: Key) -> Row | None:
        rows = self.loaded.get(kind)
        if rows is None:
            rows = self.existing(kind)
        return rows.get(key)


def _database_empty(session: Session) -> bool:
    return all(session.execute(select(SPECS[k].table).limit(1)).first() is None for k in SPECS)


def _key_function(spec: Spec) -> Callable[[Row], Key]:
    """``spec.key_of``, without its generic per-row overhead for the usual one-field key."""
    if len(spec.key) == 1:
        (name,) = spec.key
        return lambda row: (str(row[name]),)
    return spec.key_of


def _values_function(spec: Spec) -> Callable[[Row], tuple[object, ...]]:
    """The values of a row of ``spec``, as a tuple in the order of ``spec.columns``."""
    columns = spec.columns
    if len(columns) == 1:
        (name,) = columns
        return lambda row: (row[name],)
    return itemgetter(*columns)


def import_world(session: Session, rows: list[WorldRow], *, replace: bool = False) -> ImportResult:
    changes: list[Change] = wipe(session) if replace else []
    overlay = _Overlay(session, empty=replace or _database_empty(session))
    created = unchanged = 0
    for kind, items in iter_kinds(rows):
        spec = SPECS[kind]
        key_of = _key_function(spec)
        existing = overlay.existing(kind)
        new_rows: list[Row] = []
        for item in items:
            row = item.row
            key = key_of(row)
            old = existing.get(key)
            if old is not None:
                if old != row:
                    diff = ", ".join(
                        f"{name} is {clip(old[name])}, the world says {clip(row[name])}"
                        for name in spec.columns
                        if old[name] != row[name]
                    )
                    raise AlreadyExists(f"{item.path}: {spec.describe(key)} exists with different content: {diff}")
                unchanged += 1
                continue
            check_row(overlay, kind, row, item.path)
            existing[key] = row
            new_rows.append(row)
        if new_rows:
            insert_many(session, spec.table, spec.columns, map(_values_function(spec), new_rows))
            changes += [Change("upsert", kind, row) for row in new_rows]
            created += len(new_rows)
    return ImportResult(changes, created, unchanged)
