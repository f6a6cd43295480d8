"""Entity writes and reads with the store's domain rules. Functions take a session first and never commit.

Every write returns the list of :class:`Change` it made; :func:`store.changes.record` turns
that list into the next revision in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, Protocol

from sqlalchemy import and_, delete, insert, select
from sqlalchemy import update as update_statement
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from servicekit.text import clip
from store.entities import SPECS, Ref, Spec, split_subject
from store.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from store.kinds import CUSTOM_ROLE_ACTIONS, ID, MAX_ID, REGISTRY_ROLES, TEAM_ROLES, Key, Row

STATE_ORDER = {"active": 0, "migrating": 1, "migrated": 2}


@dataclass(frozen=True)
class Change:
    """One entity change: ``upsert`` carries the whole row, ``delete`` the row as it was."""

    op: str
    kind: str
    data: Row


class Lookup(Protocol):
    """Finds an entity by kind and key; the database, or a world being imported over it."""

    def get(self, kind: str, key: Key) -> Row | None: ...


class SessionLookup:
    """Looks entities up in the database through ``session``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, kind: str, key: Key) -> Row | None:
        return get_row(self.session, kind, key)


def spec_of(kind: str) -> Spec:
    try:
        return SPECS[kind]
    except KeyError:
        hint = get_close_matches(kind, SPECS, n=1)
        raise InvalidArgument(
            f"unknown entity kind {clip(kind)}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        ) from None


# ---- validation ---------------------------------------------------------------------------


def check_id(value: str, path: str) -> None:
    if not value:
        raise InvalidArgument("must not be empty", path=path)
    if len(value) > MAX_ID:
        raise InvalidArgument(f"is {len(value)} characters long; the limit is {MAX_ID}", path=path)
    if not ID.match(value):
        raise InvalidArgument(
            f"{clip(value)} is not a valid id (letters, digits and . _ @ + - only, starting with a letter or digit)",
            path=path,
        )


def normalize(kind: str, values: dict[str, Any], path: str = "") -> Row:
    """A complete row of ``kind`` from ``values``: defaults filled in, types and enums checked."""
    spec = spec_of(kind)
    where = path or kind
    unknown = set(values) - set(spec.columns)
    if unknown:
        raise InvalidArgument(f"unknown field(s) {', '.join(sorted(unknown))}", path=where)
    row: Row = {}
    for column in spec.table.columns:
        name = column.name
        value = values.get(name)
        field_path = f"{where}.{name}"
        is_list = name in spec.lists
        python_type: type = list if is_list else column.type.python_type
        if value is None:
            default = column.default
            value = default.arg if isinstance(default, ScalarElementColumnDefault) else python_type()
        if is_list:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise InvalidArgument("must be a list of strings", path=field_path)
            for i, item in enumerate(value):
                _check_text(item, f"{field_path}[{i}]")
            value = list(dict.fromkeys(value))  # keep order, drop duplicates
        elif python_type is bool:
            if not isinstance(value, bool):
                raise InvalidArgument(f"must be true or false, not {clip(value)}", path=field_path)
        elif python_type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidArgument(f"must be an integer, not {clip(value)}", path=field_path)
        elif not isinstance(value, str):
            raise InvalidArgument(f"must be a string, not {clip(value)}", path=field_path)
        else:
            _check_text(value, field_path)
        row[name] = value
    prefixed = {ref.field for ref in spec.refs if ref.prefixed}
    for name in spec.key:
        if name not in prefixed:
            check_id(row[name], f"{where}.{name}")
    for name, allowed in spec.enums.items():
        if row[name] not in allowed:
            raise InvalidArgument(f"{clip(row[name])} is not one of {', '.join(allowed)}", path=f"{where}.{name}")
    return row


def _check_text(value: str, path: str) -> None:
    # PostgreSQL text cannot hold NUL; refuse it on every backend, so both keep the same data.
    if "\x00" in value:
        raise InvalidArgument("must not contain a NUL character (\\x00)", path=path)


def _target(ref: Ref, value: str, path: str) -> tuple[str, str]:
    """The (kind, id) a reference value names, checking its syntax."""
    if ref.prefixed:
        try:
            kind, ident = split_subject(value)
        except ValueError:
            raise InvalidArgument(
                f"{clip(value)} must be written kind:id with kind one of {', '.join(ref.kinds)}", path=path
            ) from None
        if kind not in ref.kinds:
            raise InvalidArgument(f"{clip(value)}: kind must be one of {', '.join(ref.kinds)}", path=path)
    else:
        kind, ident = ref.kinds[0], value
    check_id(ident, path)
    return kind, ident


def field_path(where: str, name: str) -> str:
    """``world.teams[0].org`` inside a document; ``team x, field org`` for an entity."""
    return f"{where}.{name}" if where.startswith("world") else f"{where}, field {name}"


def check_row(lookup: Lookup, kind: str, row: Row, path: str = "") -> None:
    """References exist (NOT_FOUND naming them) and the domain rules of ``kind`` hold."""
    spec = SPECS[kind]
    where = path or f"{spec.describe(spec.key_of(row))}"
    for ref in spec.refs:
        value = row[ref.field]
        if not value and ref.optional:
            continue
        target_kind, ident = _target(ref, value, field_path(where, ref.field))
        if lookup.get(target_kind, (ident,)) is None:
            raise NotFound(f"{field_path(where, ref.field)}: {target_kind.replace('_', ' ')} {ident} does not exist")
    _RULES.get(kind, _no_rule)(lookup, row, where)


def _no_rule(lookup: Lookup, row: Row, where: str) -> None:
    return None


def _membership_rule(lookup: Lookup, row: Row, where: str) -> None:
    team = lookup.get("team", (row["team"],))
    user = lookup.get("user", (row["user"],))
    assert team is not None
    assert user is not None
    if user["org"] != team["org"]:
        raise FailedPrecondition(
            f"{where}: user {row['user']} is not in org {team['org']}, which team {row['team']} belongs to"
        )
    role = row["role"]
    if role in TEAM_ROLES:
        return
    custom = lookup.get("custom_role", (role,))
    if custom is None:
        raise InvalidArgument(
            f"role {clip(role)} is neither a team role ({', '.join(TEAM_ROLES)}) nor a custom role of org "
            f"{team['org']}",
            path=field_path(where, "role"),
        )
    if custom["org"] != team["org"]:
        raise FailedPrecondition(f"{field_path(where, 'role')}: custom role {role} belongs to org {custom['org']}")


def _custom_role_rule(lookup: Lookup, row: Row, where: str) -> None:
    for i, action in enumerate(row["permissions"]):
        if action not in CUSTOM_ROLE_ACTIONS:
            hint = get_close_matches(action, CUSTOM_ROLE_ACTIONS, n=1)
            reason = (
                "stays with org and system admins (T7-T9)"
                if action in ("team.manage_privacy", "team.configure_storage", "team.delete")
                else "is not a team-scope action"
            )
            raise InvalidArgument(
                f"{clip(action)} {reason}" + (f"; did you mean {hint[0]!r}?" if hint else ""),
                path=f"{field_path(where, 'permissions')}[{i}]",
            )


def _project_member_rule(lookup: Lookup, row: Row, where: str) -> None:
    project = lookup.get("project", (row["project"],))
    assert project is not None
    if project["visibility"] != "restricted":
        raise FailedPrecondition(
            f"{where}: project {row['project']} is {project['visibility']}, not restricted; only "
            "restricted projects have added members"
        )


def _registry_rule(lookup: Lookup, row: Row, where: str) -> None:
    if not row["restrict_types"] and row["accepted_types"]:
        raise InvalidArgument(
            "accepted_types is set but restrict_types is false (false means all types)",
            path=field_path(where, "accepted_types"),
        )


def _collection_rule(lookup: Lookup, row: Row, where: str) -> None:
    if row["team"]:
        registry = lookup.get("registry", (row["registry"],))
        team = lookup.get("team", (row["team"],))
        assert registry is not None
        assert team is not None
        if registry["org"] != team["org"]:
            raise FailedPrecondition(f"{field_path(where, 'team')}: team {row['team']} is not in org {registry['org']}")


_RULES = {
    "membership": _membership_rule,
    "custom_role": _custom_role_rule,
    "project_member": _project_member_rule,
    "registry": _registry_rule,
    "collection": _collection_rule,
}


def check_update(kind: str, old: Row, new: Row, where: str) -> None:
    """Rules about how a row may change (G-R7, T8, legacy registry states)."""
    if kind == "registry":
        # G-R7: accepted artifact types, once saved, can never be removed.
        if old["restrict_types"] and new["restrict_types"]:
            removed = [t for t in old["accepted_types"] if t not in new["accepted_types"]]
            if removed:
                raise FailedPrecondition(
                    f"{field_path(where, 'accepted_types')}: accepted artifact types cannot be removed once saved "
                    f"(G-R7); {', '.join(removed)} would be removed"
                )
        elif not old["restrict_types"] and new["restrict_types"]:
            raise FailedPrecondition(
                f"{field_path(where, 'accepted_types')}: registry accepts all types; restricting it to a list would "
                "remove accepted types (G-R7)"
            )
    if kind == "team" and old["storage_bucket"] != new["storage_bucket"] and old["storage_bucket"]:
        raise FailedPrecondition(
            f"{field_path(where, 'storage_bucket')}: team {old['id']} already uses bucket "
            f"{clip(old['storage_bucket'])}; "
            "a storage bucket can be set once and cannot be migrated (T8)"
        )
    if kind == "model_registry" and STATE_ORDER[new["state"]] < STATE_ORDER[old["state"]]:
        raise FailedPrecondition(
            f"{field_path(where, 'state')}: a legacy registry goes active -> migrating -> migrated; it cannot go from "
            f"{old['state']} back to {new['state']}"
        )


def creator_admin(row: Row) -> Row | None:
    """The creator of a restricted registry becomes its admin (PERMISSIONS.md 4.8)."""
    if row["visibility"] == "restricted" and row["creator"]:
        return {"registry": row["id"], "member": f"user:{row['creator']}", "role": "admin"}
    return None


def stronger_registry_role(a: str, b: str) -> str:
    return a if REGISTRY_ROLES.index(a) >= REGISTRY_ROLES.index(b) else b


# ---- reads --------------------------------------------------------------------------------


def _key_clause(spec: Spec, key: Key) -> Any:
    return and_(*(spec.table.c[name] == value for name, value in zip(spec.key, key, strict=True)))


def get_row(session: Session, kind: str, key: Key) -> Row | None:
    spec = SPECS[kind]
    found = session.execute(select(spec.table).where(_key_clause(spec, key))).mappings().first()
    return dict(found) if found is not None else None


def require_row(session: Session, kind: str, key: Key) -> Row:
    row = get_row(session, kind, key)
    if row is None:
        raise NotFound(f"{SPECS[kind].describe(key)} does not exist")
    return row


def iter_rows(session: Session, kind: str, *, after: Key | None = None, limit: int | None = None) -> Iterator[Row]:
    """Rows of ``kind`` in key order, optionally after ``after`` (keyset pagination)."""
    spec = SPECS[kind]
    columns = [spec.table.c[name] for name in spec.key]
    query = select(spec.table).order_by(*columns)
    if after is not None:
        from sqlalchemy import tuple_

        query = query.where(tuple_(*columns) > tuple_(*after))
    if limit is not None:
        query = query.limit(limit)
    for found in session.execute(query.execution_options(yield_per=2000)).mappings():
        yield dict(found)


# ---- writes -------------------------------------------------------------------------------


def insert_rows(session: Session, kind: str, rows: list[Row]) -> list[Change]:
    if rows:
        session.execute(insert(SPECS[kind].table), rows)
    return [Change("upsert", kind, row) for row in rows]


def create(session: Session, kind: str, values: dict[str, Any]) -> list[Change]:
    """Create one entity: ALREADY_EXISTS for a taken key, NOT_FOUND for a missing reference."""
    spec = spec_of(kind)
    row = normalize(kind, values)
    key = spec.key_of(row)
    if get_row(session, kind, key) is not None:
        raise AlreadyExists(f"{spec.describe(key)} already exists")
    check_row(SessionLookup(session), kind, row)
    changes = insert_rows(session, kind, [row])
    if kind == "registry" and (admin := creator_admin(row)) is not None:
        changes += insert_rows(session, "registry_member", [admin])
    return changes


def update(session: Session, kind: str, values: dict[str, Any]) -> list[Change]:
    """Replace the mutable fields of an entity; other fields must be left empty or unchanged."""
    spec = spec_of(kind)
    key = tuple(str(values.get(name, "")) for name in spec.key)
    for name, value in zip(spec.key, key, strict=True):
        check_id(value, f"{kind}.{name}")
    old = require_row(session, kind, key)
    where = spec.describe(key)
    new = dict(old)
    for name, value in values.items():
        if name in spec.key:
            continue
        if name in spec.mutable:
            new[name] = value
        elif name in old and value not in (None, "", [], 0, False) and value != old[name]:
            raise FailedPrecondition(f"{where}.{name} cannot be changed (from {clip(old[name])} to {clip(value)})")
    new = normalize(kind, new)
    return _apply_update(session, kind, old, new)


def set_fields(session: Session, kind: str, key: Key, **fields: Any) -> list[Change]:
    """Change named fields of one entity (MoveRun, SetStorageBucket, SetModelRegistryState)."""
    old = require_row(session, kind, key)
    new = normalize(kind, {**old, **fields})
    return _apply_update(session, kind, old, new)


def _apply_update(session: Session, kind: str, old: Row, new: Row) -> list[Change]:
    if new == old:
        return []
    spec = SPECS[kind]
    where = spec.describe(spec.key_of(old))
    check_update(kind, old, new, where)
    check_row(SessionLookup(session), kind, new, where)
    session.execute(update_statement(spec.table).where(_key_clause(spec, spec.key_of(old))).values(new))
    return [Change("upsert", kind, new)]


def remove(session: Session, kind: str, key: Key) -> list[Change]:
    """Delete an entity, cascading to link rows; refused while content still refers to it."""
    spec = spec_of(kind)
    for name, value in zip(spec.key, key, strict=True):
        if not value:
            raise InvalidArgument("must not be empty", path=f"{kind}.{name}")
    row = require_row(session, kind, key)
    return _remove(session, kind, row)


def _dependents(kind: str) -> Iterable[tuple[Spec, Ref]]:
    for spec in SPECS.values():
        for ref in spec.refs:
            if kind in ref.kinds and ref.on_delete != "keep":
                yield spec, ref


def _remove(session: Session, kind: str, row: Row) -> list[Change]:
    spec = SPECS[kind]
    key = spec.key_of(row)
    changes: list[Change] = []
    for dep_spec, ref in _dependents(kind):
        value = f"{kind}:{key[0]}" if ref.prefixed else key[0]
        query = select(dep_spec.table).where(dep_spec.table.c[ref.field] == value)
        found = [dict(r) for r in session.execute(query).mappings()]
        if not found:
            continue
        if ref.on_delete == "restrict":
            names = ", ".join(dep_spec.describe(dep_spec.key_of(r)).split(" ", 1)[1] for r in found[:5])
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise FailedPrecondition(
                f"{spec.describe(key)} still has {len(found)} {dep_spec.kind.replace('_', ' ')}(s) "
                f"({names}{more}); delete them first"
            )
        for dependent in found:
            changes += _remove(session, dep_spec.kind, dependent)
    session.execute(delete(spec.table).where(_key_clause(spec, key)))
    changes.append(Change("delete", kind, row))
    return changes


def wipe(session: Session) -> list[Change]:
    """Delete every entity (a world replacing the store's content); one ``reset`` change."""
    for kind in reversed(tuple(SPECS)):
        session.execute(delete(SPECS[kind].table))
    return [Change("reset", "", {})]
