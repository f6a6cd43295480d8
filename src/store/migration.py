"""Migration of a team's legacy model registry into the org's model registry (MG1-MG4), and M7.

:func:`migrate` moves every registered model of team T's legacy registry into the org's
``model`` registry (``model-<org id>``, created if missing: visibility ``organization``, all
types accepted) as a collection restricted to T, keeping ids, aliases, the protected-alias
list, creation times and lineage (MG1). The team restriction is all MG2 needs from the store:
the policy maps T's roles to registry roles inside such a collection.

Like the repository, these functions take a session first and never commit. The service runs
:func:`migrate` in one write transaction whose changes become one revision, in this order:
legacy state -> ``migrating``, the registry if it is new, each collection followed by its
versions, legacy state -> ``migrated``. A failure anywhere rolls all of it back (MG4). Rows
that already exist with the same content are left alone, so a second run changes nothing.
Once the legacy registry is ``migrated``, aliases and protected aliases edited in the new
registry since are kept as they are; a row missing there (say, a collection deleted since) is
created again, since the legacy registry is what migration copies.

The legacy registry is read-only from the moment migration starts (M7, MG3). The policy
denies those writes; :func:`check_writable` makes the store refuse them too (ImportWorld,
which loads worlds in any state, does not call it). Both take the legacy registry's row lock
first (``FOR UPDATE`` / ``FOR SHARE`` on PostgreSQL; SQLite has one writer at a time), so a
write to the legacy registry is either committed before a migration reads it, or refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from servicekit.text import clip
from store.entities import SPECS
from store.errors import AlreadyExists, FailedPrecondition, NotFound
from store.kinds import Key, Row
from store.repository import Change, check_id, create, get_row, insert_rows, normalize, set_fields

MODEL_TYPE = "model"
IN_BATCH = 500  # ids per IN (...) query

# What each legacy kind's writes stand for in M7's terms (its rule ids in PERMISSIONS.md 4.7).
_WRITES = {
    "registered_model": "its registered models (M2)",
    "model_version": "its model versions and their aliases (M1, M2)",
    "model_registry_admin": "its model-registry admins (M5)",
    "model_registry": "its protected aliases (M6)",
}
LEGACY_KINDS = tuple(_WRITES)


def registry_id(org: str) -> str:
    """The id of the org's model registry, where migrated collections go (MG1)."""
    return f"model-{org}"


@dataclass
class Migration:
    """What one migration did (or, in a dry run, would do)."""

    team: str
    org: str
    registry: str
    state_before: str
    registry_created: bool = False
    models: int = 0
    versions: int = 0
    collections_created: int = 0
    versions_created: int = 0
    collections_unchanged: int = 0
    versions_unchanged: int = 0
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class _Target:
    """The migration's fixed inputs: where collections go and what is already there."""

    team: str
    registry: str
    protected_aliases: list[str]
    lenient: bool  # already migrated: mutable fields may have been edited in the new registry since
    collections: dict[str, Row]  # existing collections with the ids of the team's models
    versions: dict[str, Row]  # existing collection versions with the ids of the team's versions


def migrate(session: Session, team: str) -> Migration:
    """Migrate team ``team``'s legacy registry; its changes, in order, are ``Migration.changes``.

    Raises NotFound (no such team, or no legacy registry), AlreadyExists (a collection or version
    with a migrated id exists with other content, or ``model-<org>`` belongs to another org) and
    FailedPrecondition (``model-<org>`` does not accept model versions, G-R6).
    """
    check_id(team, "team")
    team_row = get_row(session, "team", (team,))
    if team_row is None:
        raise NotFound(f"team {team} does not exist")
    legacy = _legacy_registry(session, team, exclusive=True)
    if legacy is None:
        raise NotFound(f"team {team} has no legacy model registry to migrate")
    org = team_row["org"]
    _lock_org(session, org)
    result = Migration(team=team, org=org, registry=registry_id(org), state_before=legacy["state"])
    changes = result.changes
    if legacy["state"] == "active":
        # M7: read-only from the moment migration starts (the first change of the revision).
        changes += set_fields(session, "model_registry", (team,), state="migrating")
    changes += _ensure_registry(session, result)
    models = _rows_where(session, "registered_model", "team", [team])
    versions_of: dict[str, list[Row]] = defaultdict(list)
    for version in _rows_where(session, "model_version", "model", [m["id"] for m in models]):
        versions_of[version["model"]].append(version)
    version_ids = [v["id"] for versions in versions_of.values() for v in versions]
    target = _Target(
        team=team,
        registry=result.registry,
        protected_aliases=list(legacy["protected_aliases"]),
        lenient=legacy["state"] == "migrated",
        collections={r["id"]: r for r in _rows_where(session, "collection", "id", [m["id"] for m in models])},
        versions={r["id"]: r for r in _rows_where(session, "collection_version", "id", version_ids)},
    )
    for model in models:
        changes += _migrate_model(session, target, model, versions_of[model["id"]], result)
    result.models = len(models)
    result.versions = sum(len(v) for v in versions_of.values())
    if legacy["state"] != "migrated":
        changes += set_fields(session, "model_registry", (team,), state="migrated")
    return result


def _legacy_registry(session: Session, team: str, *, exclusive: bool) -> Row | None:
    """The legacy registry's row, locked against concurrent migrations (exclusive) or writes (shared)."""
    table = SPECS["model_registry"].table
    query = select(table).where(table.c.team == team).with_for_update(read=not exclusive)
    found = session.execute(query).mappings().first()
    return dict(found) if found is not None else None


def _lock_org(session: Session, org: str) -> None:
    """Serialize the migrations of one org's teams, which may both create ``model-<org>``.

    ``FOR NO KEY UPDATE`` on PostgreSQL: other writes that merely reference the org (new teams,
    users, registries) take ``FOR KEY SHARE`` and are not held up.
    """
    table = SPECS["org"].table
    session.execute(select(table.c.id).where(table.c.id == org).with_for_update(key_share=True))


def _rows_where(session: Session, kind: str, column: str, values: Sequence[str]) -> list[Row]:
    """Rows of ``kind`` whose ``column`` is one of ``values``, in key order."""
    spec = SPECS[kind]
    table = spec.table
    rows: list[Row] = []
    for start in range(0, len(values), IN_BATCH):
        chunk = values[start : start + IN_BATCH]
        query = select(table).where(table.c[column].in_(chunk))
        rows += [dict(r) for r in session.execute(query).mappings()]
    return sorted(rows, key=spec.key_of)


def _ensure_registry(session: Session, result: Migration) -> list[Change]:
    """The org's model registry, created if missing (MG1); refused if it cannot take the collections."""
    existing = get_row(session, "registry", (result.registry,))
    if existing is None:
        result.registry_created = True
        return create(session, "registry", {"id": result.registry, "org": result.org, "visibility": "organization"})
    if existing["org"] != result.org:
        raise AlreadyExists(
            f"registry {result.registry} already exists in org {existing['org']}, not in org {result.org}: "
            f"the migration of team {result.team} needs that id for org {result.org}'s model registry"
        )
    if existing["restrict_types"] and MODEL_TYPE not in existing["accepted_types"]:
        raise FailedPrecondition(
            f"registry {result.registry} accepts only {', '.join(existing['accepted_types'])}; migrated versions "
            f"are of type {MODEL_TYPE} and could not be linked (G-R6). Add {MODEL_TYPE} to its accepted types first"
        )
    return []


def _migrate_model(
    session: Session, target: _Target, model: Row, versions: list[Row], result: Migration
) -> list[Change]:
    """One registered model -> one collection restricted to the team, with its versions (MG1, MG2)."""
    collection = normalize(
        "collection",
        {"id": model["id"], "registry": target.registry, "team": target.team,
         "protected_aliases": target.protected_aliases, "created_at": model["created_at"],
         "lineage": model["lineage"]},
    )  # fmt: skip
    changes: list[Change] = []
    if _matches("collection", target.collections.get(collection["id"]), collection, ("protected_aliases",), target):
        result.collections_unchanged += 1
    else:
        changes += insert_rows(session, "collection", [collection])
        result.collections_created += 1
    new_versions = []
    for version in versions:
        row = normalize(
            "collection_version",
            {"id": version["id"], "collection": collection["id"], "type": MODEL_TYPE, "aliases": version["aliases"],
             "created_at": version["created_at"], "lineage": version["lineage"]},
        )  # fmt: skip
        if _matches("collection_version", target.versions.get(row["id"]), row, ("aliases",), target):
            result.versions_unchanged += 1
        else:
            new_versions.append(row)
    changes += insert_rows(session, "collection_version", new_versions)
    result.versions_created += len(new_versions)
    return changes


def _matches(kind: str, existing: Row | None, wanted: Row, mutable: Iterable[str], target: _Target) -> bool:
    """True when ``existing`` is the row the migration would write; AlreadyExists when it is another one.

    Once the legacy registry is ``migrated``, its collections live in the new registry, where
    their aliases and protected aliases may have been edited since: those fields then need not
    match for the row to count as already migrated.
    """
    if existing is None:
        return False
    ignored = set(mutable) if target.lenient else set()
    diff = [name for name in wanted if name not in ignored and existing[name] != wanted[name]]
    if not diff:
        return True
    described = "; ".join(
        f"{name} is {clip(existing[name])}, the migration needs {clip(wanted[name])}" for name in diff
    )
    raise AlreadyExists(
        f"{SPECS[kind].describe((wanted['id'],))} already exists with other content ({described}); the migration of "
        f"team {target.team}'s legacy registry keeps its ids (MG1), so that id must be freed first"
    )


# ---- M7: the legacy registry is read-only once migration starts -----------------------------


def check_writable(session: Session, op: str, kind: str, values: dict[str, Any]) -> None:
    """Refuse a write (``op`` create, update or delete) to a legacy registry that is not active (M7).

    ``values`` are the request's fields (the key fields for a delete). References that do not
    resolve are left for the repository to report.
    """
    if kind not in LEGACY_KINDS:
        return
    team = _legacy_team(session, op, kind, values)
    if not team:
        return
    legacy = _legacy_registry(session, team, exclusive=False)
    if legacy is None or legacy["state"] == "active":
        return
    if kind == "model_registry":
        # Moving the state forward stays possible; only the protected-alias list is frozen (M6).
        wanted = list(dict.fromkeys(values.get("protected_aliases") or []))
        if op != "update" or wanted == legacy["protected_aliases"]:
            return
    team_row = get_row(session, "team", (team,))
    where = f"registry {registry_id(team_row['org'])}" if team_row else "the org's model registry"
    raise FailedPrecondition(
        f"the legacy model registry of team {team} is {legacy['state']}: it is read-only from the moment migration "
        f"starts, so {_WRITES[kind]} cannot change (M7). It stays readable; make changes in the collections of "
        f"{where} instead"
    )


def _legacy_team(session: Session, op: str, kind: str, values: dict[str, Any]) -> str:
    """The team whose legacy registry a write to ``kind`` changes, or "" when it cannot be found."""
    if kind in ("model_registry", "model_registry_admin"):
        return str(values.get("team") or "")
    if kind == "registered_model":
        if op == "create":
            return str(values.get("team") or "")
        model = _get(session, "registered_model", values.get("id"))
        return str(model["team"]) if model else ""
    # model_version: a create names its model; an update or delete names the version.
    model_id = values.get("model") if op == "create" else None
    if model_id is None:
        version = _get(session, "model_version", values.get("id"))
        model_id = version["model"] if version else None
    model = _get(session, "registered_model", model_id)
    return str(model["team"]) if model else ""


def _get(session: Session, kind: str, ident: object) -> Row | None:
    if not isinstance(ident, str) or not ident:
        return None
    key: Key = (ident,)
    return get_row(session, kind, key)
