"""Helpers for tests and tools: build a replica from a world document, in memory, no store needed.

The world is checked exactly as the store's ImportWorld checks it (same parser, same reference
and domain rules), then applied to a fresh WorldState.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from authz.decider import Decider
from authz.decision import Request
from authz.engines import engine_factory
from authz.engines.holder import EngineHolder
from authz.policy import Policy, load_policy
from authz.state import FixedState, WorldState
from store.kinds import key_of
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
    return Decider(FixedState(state), EngineHolder(policy or load_policy(DEFAULT_POLICIES), engine_factory(engine)))


# ---- random worlds and requests (differential and property tests) ---------------------------

CONTEXT_VALUES: dict[str, tuple[str, ...]] = {
    "role": ("view_only", "member", "admin", "owner"),
    "visibility": ("team", "restricted", "public", "open"),
    "alias": ("latest", "staging", "production", "best"),
    "artifact_type": ("model", "dataset", "code"),
}


def random_world(rng: random.Random, size: int = 8) -> dict[str, Any]:
    """A consistent random world document of about ``size`` people, in the DECISION_TESTS format.

    It mixes every feature the policy reads: org roles incl. viewer seats, system admins, custom
    roles on both bases, team settings and buckets, service accounts, projects of every
    visibility (team and personal) with added members who may have left the team, content created
    by people who left, legacy registries in every state, registries with user and team grants and
    team-restricted collections with protected aliases.
    """
    from store.entities import CUSTOM_ROLE_ACTIONS

    pick = rng.choice
    users = [f"u{i}" for i in range(size)]
    org_users = [{"id": u, "role": rng.choices(["admin", "member", "viewer"], [1, 6, 2])[0]} for u in users]
    custom = [
        {"id": f"cr{i}", "org": "o", "base": pick(["view_only", "member"]),
         "permissions": rng.sample(sorted(CUSTOM_ROLE_ACTIONS), rng.randint(0, 3))}
        for i in range(rng.randint(0, 2))
    ]  # fmt: skip
    team_roles = ["view_only", "member", "admin", *(c["id"] for c in custom)]
    teams: list[dict[str, Any]] = []
    members_of: dict[str, list[str]] = {}
    accounts_of: dict[str, list[str]] = {}
    for t in range(rng.randint(1, 3)):
        team = f"t{t}"
        chosen = rng.sample(users, rng.randint(1, max(1, size - 2)))
        members_of[team] = chosen
        accounts_of[team] = [f"sa{t}-{i}" for i in range(rng.randint(0, 2))]
        teams.append(
            {"id": team, "org": "o", "members": {u: pick(team_roles) for u in chosen},
             "service_accounts": accounts_of[team],
             "settings": {"members_can_invite": rng.random() < 0.5, "public_projects_disabled": rng.random() < 0.3},
             "storage_bucket": pick([None, f"bucket-{t}"])}
        )  # fmt: skip
    all_accounts = [a for accounts in accounts_of.values() for a in accounts]
    subjects = users + [f"service_account:{a}" for a in all_accounts]
    projects: list[dict[str, Any]] = []
    content: dict[str, list[dict[str, Any]]] = {"runs": [], "sweeps": [], "reports": [], "artifacts": []}
    for p in range(rng.randint(1, 5)):
        personal = rng.random() < 0.2
        owner = f"user:{pick(users)}" if personal else f"team:{pick(teams)['id']}"
        visibility = pick(["team", "restricted", "public", "open"])
        project: dict[str, Any] = {"id": f"p{p}", "owner": owner, "visibility": visibility, "creator": pick(subjects)}
        if visibility == "restricted":
            project["members"] = rng.sample(subjects, rng.randint(0, min(3, len(subjects))))
        projects.append(project)
        for section, prefix in (("runs", "r"), ("sweeps", "s"), ("reports", "rep"), ("artifacts", "a")):
            for i in range(rng.randint(0, 2)):
                item: dict[str, Any] = {"id": f"{prefix}{p}-{i}", "project": f"p{p}", "creator": pick(subjects)}
                if section == "runs" and rng.random() < 0.3:
                    item["attributed_to"] = pick(users)
                if section == "artifacts":
                    item.update(
                        type=pick(["model", "dataset"]), aliases=rng.sample(["latest", "best"], rng.randint(0, 2))
                    )
                content[section].append(item)
    legacy = [
        {"team": team["id"], "state": pick(["active", "active", "migrating", "migrated"]),
         "admins": rng.sample(users, rng.randint(0, 2)),
         "protected_aliases": rng.sample(["production", "best"], rng.randint(0, 2)),
         "models": [{"id": f"m-{team['id']}", "versions": [{"id": f"mv-{team['id']}", "aliases": ["latest"]}]}]}
        for team in teams if rng.random() < 0.7
    ]  # fmt: skip
    registries = []
    for g in range(rng.randint(1, 2)):
        grants = {f"user:{u}": pick(["restricted_viewer", "viewer", "member", "admin", None])
                  for u in rng.sample(users, rng.randint(0, 3))}  # fmt: skip
        grants.update({f"team:{t['id']}": pick(["restricted_viewer", "viewer", "member", "admin"])
                       for t in rng.sample(teams, rng.randint(0, len(teams)))})  # fmt: skip
        registry: dict[str, Any] = {
            "id": f"g{g}", "org": "o", "visibility": pick(["restricted", "organization"]),
            "creator": pick([None, *users]), "members": grants,
            "collections": [
                {"id": f"c{g}-{c}", "team": pick([None, pick(teams)["id"]]),
                 "protected_aliases": rng.sample(["production", "staging"], rng.randint(0, 1)),
                 "versions": [{"id": f"v{g}-{c}", "type": pick(["model", "dataset"]), "aliases": ["latest"]}]}
                for c in range(rng.randint(1, 2))
            ],
        }  # fmt: skip
        if rng.random() < 0.5:
            registry["accepted_types"] = rng.sample(["model", "dataset", "code"], rng.randint(1, 2))
        registries.append(registry)
    return {
        "world": {
            "orgs": [{"id": "o", "users": org_users}],
            "system_admins": rng.sample(users, rng.randint(0, 1)),
            "custom_roles": custom,
            "teams": teams,
            "projects": projects,
            **content,
            "model_registries": legacy,
            "registries": registries,
        }
    }


def resource_ids(state: WorldState) -> dict[str, list[str]]:
    """Every resource of the world by kind, as requests name them."""
    ids: dict[str, list[str]] = {
        kind: [key[0] for key in state.rows[kind]]
        for kind in ("org", "team", "user", "project", "run", "sweep", "report", "artifact", "registered_model",
                     "registry", "collection")
    }  # fmt: skip
    ids["model_registry"] = [key[0] for key in state.rows["model_registry"]]
    ids["version"] = [key[0] for key in state.rows["collection_version"]]
    ids["system"] = ["main"]
    return ids


def random_requests(rng: random.Random, state: WorldState, policy: Policy, count: int) -> list[Request]:
    """Requests over the world's subjects and resources: mostly well-aimed, some unknown or mis-aimed."""
    actions = sorted(policy.actions)
    applies: dict[str, list[str]] = {}
    for line in policy.grouping("g2"):
        applies.setdefault(line.values[0], []).append(line.values[1])
    ids = resource_ids(state)
    users = [key[0] for key in state.rows["user"]]
    accounts = [key[0] for key in state.rows["service_account"]]
    teams = [key[0] for key in state.rows["team"]]
    requests = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.75 and users:
            subject = ("user", rng.choice(users))
        elif roll < 0.9 and accounts:
            subject = ("service_account", rng.choice(accounts))
        elif roll < 0.97:
            subject = ("anonymous", "")
        else:
            subject = ("user", "ghost")
        action = rng.choice(actions)
        kind = rng.choice(applies[action]) if rng.random() < 0.95 else rng.choice(list(ids))
        resource = rng.choice(ids[kind]) if ids[kind] and rng.random() < 0.97 else "missing"
        context = {}
        for key, values in CONTEXT_VALUES.items():
            if rng.random() < 0.7:
                context[key] = rng.choice(values)
        if rng.random() < 0.7:
            context["username"] = rng.choice([*users, "ghost"]) if users else "ghost"
        if rng.random() < 0.7:
            context["entity"] = rng.choice([*users, *teams, "elsewhere"])
        requests.append(Request(subject[0], subject[1], action, kind, resource, context))
    return requests
