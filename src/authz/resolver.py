"""Facts: what the policy needs to know about a subject and a resource, read from the replica.

The resolver knows the shape of relations (a run lives in a project, a project in a team or a
user's account, a version in a collection in a registry; who belongs to which team and holds
which grant), never who may do what. Its output is plain data: the subject's role tokens in the
scopes the resource lives in, and the resource's attributes. Unknown ids give None.

Role tokens (their meaning is in policies/roles.csv):
  user | service_account | anonymous   the subject's kind
  self                                  the resource is the subject's own user
  system:admin                          an installation-wide admin
  org:<role>                            the user's role in the resource's org
  team:<role>[@viewer]                  the user's role in the resource's team; @viewer for an
  team:custom:<id>[@viewer]               org viewer's seat (G8)
  team:service                          a service account of the resource's team
  project:owner                         the owner of a personal project
  mra                                   a model-registry admin of the team's legacy registry
  registry:<role>                       a grant on the resource's registry, to the user or to a
                                          team they are in (a service account: its parent team)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from authz.state import WorldState
from store.kinds import CONTENT_KINDS, RESOURCE_KINDS, SUBJECT_KINDS, Row

__all__ = [
    "CONTENT_KINDS",
    "RESOURCE_KINDS",
    "SUBJECT_KINDS",
    "Resource",
    "Scope",
    "resource",
    "resources",
    "subject",
    "subject_exists",
]


class Scope(NamedTuple):
    """Where a resource lives: the scopes whose roles count for it (a tuple: hashed on every batch item)."""

    org: str = ""
    team: str = ""
    project: str = ""
    project_owner: str = ""  # "user:<id>" of a personal project
    legacy_team: str = ""  # team whose model-registry admins count
    registry: str = ""  # registry whose grants count ("" inside a team-restricted collection)


@dataclass(frozen=True)
class Resource:
    facts: dict[str, Any]
    scope: Scope
    project: str = ""  # the project it lives in, for P0's gate


def subject_exists(state: WorldState, kind: str, ident: str) -> bool:
    if kind == "anonymous":
        return True
    return state.get("user" if kind == "user" else "service_account", ident) is not None


def resource(state: WorldState, kind: str, ident: str) -> Resource | None:
    """Facts about ``kind:ident`` and the scopes it lives in, or None when it does not exist."""
    base: dict[str, Any] = {"kind": kind, "id": ident, "ref": f"{kind}:{ident}"}
    if kind == "system":
        return Resource(base, Scope()) if ident == "main" else None
    if kind == "org":
        return Resource({**base, "org": ident}, Scope(org=ident)) if state.get("org", ident) else None
    if kind == "user":
        user = state.get("user", ident)
        return None if user is None else Resource({**base, "org": user["org"]}, Scope(org=user["org"]))
    if kind == "team":
        team = state.get("team", ident)
        return None if team is None else Resource({**base, **_team_facts(team)}, Scope(org=team["org"], team=ident))
    if kind == "project":
        project = state.get("project", ident)
        part = None if project is None else _part(state, ident)
        return None if project is None or part is None else _with_row(state, base, part, project)
    if kind in CONTENT_KINDS:
        row = state.get(kind, ident)
        part = None if row is None else _part(state, row["project"])
        return None if row is None or part is None else _with_row(state, base, part, row)
    if kind in ("model_registry", "registered_model"):
        team_id = ident
        if kind == "registered_model":
            model = state.get("registered_model", ident)
            if model is None:
                return None
            team_id = model["team"]
        registry = state.rows["model_registry"].get((team_id,))
        team = state.get("team", team_id)
        if registry is None or team is None:
            return None
        facts = {**base, **_team_facts(team), "state": registry["state"],
                 "protected_aliases": frozenset(registry["protected_aliases"])}  # fmt: skip
        return Resource(facts, Scope(org=team["org"], team=team_id, legacy_team=team_id))
    if kind in ("registry", "collection", "version"):
        return _in_registry(state, base, kind, ident)
    return None


def _team_facts(team: Row) -> dict[str, Any]:
    return {
        "org": team["org"],
        "team": team["id"],
        "members_can_invite": team["members_can_invite"],
        "public_projects_disabled": team["public_projects_disabled"],
        "storage_bucket": team["storage_bucket"],
    }


@dataclass(frozen=True)
class _ProjectPart:
    """What every resource of one project shares: the project's facts and scope."""

    head: dict[str, Any]  # the facts before a row's creator (the order the explanation shows)
    facts: dict[str, Any]  # those after it
    scope: Scope
    owner_kind: str
    owner_id: str


def _part(state: WorldState, project_id: str) -> _ProjectPart | None:
    """The shared part of ``project_id``'s resources (None when it or its team is missing): derived once
    and kept in the state, which drops it when a row it was derived from changes."""
    parts = state.project_parts
    if project_id in parts:
        return parts[project_id]  # type: ignore[no-any-return]
    project = state.get("project", project_id)
    part = parts[project_id] = None if project is None else _project_part(state, project)
    return part


def _project_part(state: WorldState, project: Row) -> _ProjectPart | None:
    owner_kind, _, owner_id = project["owner"].partition(":")
    head = {
        "project": project["id"],
        "visibility": project["visibility"],
        "personal": owner_kind == "user",
        "owner": project["owner"],
    }
    facts: dict[str, Any] = {
        "org": "", "team": "", "members_can_invite": False, "public_projects_disabled": False,
        "storage_bucket": "", "team_members": frozenset(),
    }  # fmt: skip
    if owner_kind == "team":
        team = state.get("team", owner_id)
        if team is None:
            return None
        facts.update(_team_facts(team))
        facts["team_members"] = frozenset(state.team_members.get(owner_id, {}))
        scope = Scope(org=team["org"], team=owner_id, project=project["id"])
    else:
        user = state.get("user", owner_id)
        facts["org"] = user["org"] if user else ""
        scope = Scope(org=facts["org"], project=project["id"], project_owner=project["owner"])
    return _ProjectPart(head, facts, scope, owner_kind, owner_id)


def _with_row(state: WorldState, base: dict[str, Any], part: _ProjectPart, row: Row) -> Resource:
    creator = row.get("creator", "")
    creator_in_team = False
    if part.owner_kind == "team":
        creator_kind, _, creator_id = creator.partition(":")
        if creator_kind == "user":
            creator_in_team = creator_id in part.facts["team_members"]
        elif creator_kind == "service_account":
            account = state.get("service_account", creator_id)
            creator_in_team = account is not None and account["team"] == part.owner_id
    facts = {
        **base,
        **part.head,
        "creator": creator,
        "attributed_to": f"user:{row['attributed_to']}" if row.get("attributed_to") else "",
        **part.facts,
        "creator_in_team": creator_in_team,
    }
    return Resource(facts, part.scope, project=part.head["project"])


def resources(state: WorldState, kind: str) -> Iterator[tuple[str, Resource]]:
    """Every resource of ``kind`` that exists, as :func:`resource` gives each, in id order; the
    resources of one project share the work of reading it (for walks over a whole world)."""
    if kind == "system":
        yield "main", Resource({"kind": kind, "id": "main", "ref": f"{kind}:main"}, Scope())
        return
    table = "collection_version" if kind == "version" else kind
    idents = sorted(key[0] for key in state.rows[table])
    if kind not in CONTENT_KINDS:
        for ident in idents:
            found = resource(state, kind, ident)
            if found is not None:
                yield ident, found
        return
    for ident in idents:
        row = state.rows[kind][(ident,)]
        part = _part(state, row["project"])
        if part is not None:
            yield ident, _with_row(state, {"kind": kind, "id": ident, "ref": f"{kind}:{ident}"}, part, row)


def _in_registry(state: WorldState, base: dict[str, Any], kind: str, ident: str) -> Resource | None:
    collection: Row | None = None
    version: Row | None = None
    if kind == "version":
        version = state.get("collection_version", ident)
        if version is None:
            return None
        collection = state.get("collection", version["collection"])
        if collection is None:
            return None
    elif kind == "collection":
        collection = state.get("collection", ident)
        if collection is None:
            return None
    registry_id = collection["registry"] if collection is not None else ident
    registry = state.get("registry", registry_id)
    if registry is None:
        return None
    restricted_to = collection["team"] if collection is not None else ""
    facts = {
        **base,
        "org": registry["org"],
        "registry": registry_id,
        "registry_visibility": registry["visibility"],
        "restrict_types": registry["restrict_types"],
        "accepted_types": frozenset(registry["accepted_types"]),
        "collection": collection["id"] if collection is not None else "",
        "collection_team": restricted_to,
        "protected_aliases": frozenset(collection["protected_aliases"]) if collection is not None else frozenset(),
        "type": version["type"] if version is not None else "",
    }
    if restricted_to:
        # MG2: a collection restricted to a team lives in that team, not in the registry's reach.
        scope = Scope(org=registry["org"], team=restricted_to, legacy_team=restricted_to)
    else:
        scope = Scope(org=registry["org"], registry=registry_id)
    return Resource(facts, scope)


def subject(state: WorldState, kind: str, ident: str, target: Resource) -> dict[str, Any]:
    """Facts about an existing subject relative to ``target``'s scopes."""
    scope = target.scope
    roles = {kind}
    facts: dict[str, Any] = {
        "kind": kind,
        "id": ident,
        "ref": "anonymous" if kind == "anonymous" else f"{kind}:{ident}",
    }
    added = False
    teams: frozenset[str] = frozenset()
    org_role = ""
    if kind == "user":
        user = state.get("user", ident)
        assert user is not None
        org_role = user["role"] if user["org"] else ""
        teams = frozenset(state.user_teams.get(ident, ()))
        if target.facts["kind"] == "user" and target.facts["id"] == ident:
            roles.add("self")
        if user["system_admin"]:
            roles.add("system:admin")
        if scope.org and user["org"] == scope.org:
            roles.add(f"org:{user['role']}")
        if scope.team:
            team_role = state.team_members.get(scope.team, {}).get(ident)
            if team_role is not None:
                name = team_role if team_role in ("view_only", "member", "admin") else f"custom:{team_role}"
                roles.add(f"team:{name}@viewer" if org_role == "viewer" else f"team:{name}")
        if scope.project_owner and scope.project_owner == facts["ref"]:
            roles.add("project:owner")
        # G4: a model-registry admin counts only while in the team; G8: not on a viewer's seat.
        if (
            org_role != "viewer"
            and scope.legacy_team
            and ident in state.model_admins.get(scope.legacy_team, ())
            and ident in state.team_members.get(scope.legacy_team, {})
        ):
            roles.add("mra")
        if scope.registry:
            grants = state.registry_grants.get(scope.registry, {})
            direct = grants.get(facts["ref"])
            if direct:
                roles.add(f"registry:{direct}")
            for team in teams:  # G4: only teams the user is in now
                via_team = grants.get(f"team:{team}")
                if via_team:
                    roles.add(f"registry:{via_team}")
    elif kind == "service_account":
        account = state.get("service_account", ident)
        assert account is not None
        if scope.team and account["team"] == scope.team:
            roles.add("team:service")
        if scope.registry:
            via_team = state.registry_grants.get(scope.registry, {}).get(f"team:{account['team']}")
            if via_team:
                roles.add(f"registry:{via_team}")
    if scope.project:
        added = facts["ref"] in state.project_members.get(scope.project, ())
    facts.update(roles=frozenset(roles), added=added, teams=teams, org_role=org_role)
    return facts
