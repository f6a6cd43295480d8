"""A deterministic generator of large, consistent worlds in the DECISION_TESTS.md format.

``generate_world(runs, seed)`` returns a document (``{"name": ..., "world": {...}}``) whose
entity counts are proportional to ``runs``. At 1,000,000 runs it holds 5 orgs, 10,000 users,
500 teams with about 20 members each, 1,000 service accounts, 20,000 projects, 20,000 sweeps,
100,000 reports, 200,000 artifacts, legacy model registries for a fifth of the teams and a few
registries per org. Small values (``runs=1000``, even ``runs=1``) still give a small world with
every kind of entity.

Every reference is valid under the store's rules (``store.repository.check_row``): team members
are users of the team's org, custom roles used by a team belong to its org, only restricted
projects have added members (members of the owning team or its service accounts), creators
exist and belong to the owning team (or are the owning user), collections restricted to a team
name a team of the registry's org. The same ``(runs, seed)`` always gives the same document.

The module is pure (no I/O) so tests can import it.
"""

from __future__ import annotations

import random
from typing import Any

# Entities per 1,000,000 runs.
PER_MILLION_RUNS: dict[str, int] = {
    "orgs": 5,
    "users": 10_000,
    "teams": 500,
    "service_accounts": 1_000,
    "projects": 20_000,
    "sweeps": 20_000,
    "reports": 100_000,
    "artifacts": 200_000,
}
# Lower bounds, so that a tiny world still has every kind of entity and a few of each.
MINIMUM: dict[str, int] = {
    "orgs": 2,
    "users": 8,
    "teams": 2,
    "service_accounts": 2,
    "projects": 8,
    "sweeps": 2,
    "reports": 4,
    "artifacts": 4,
}
TEAM_SIZE = 20
ORG_ROLES = (("member", 0.85), ("admin", 0.10), ("viewer", 0.05))
TEAM_ROLES = (("member", 0.70), ("admin", 0.15), ("view_only", 0.10), ("custom", 0.05))
VISIBILITIES = (("team", 0.50), ("restricted", 0.20), ("public", 0.20), ("open", 0.10))
USER_OWNED_PROJECTS = 0.10
CUSTOM_ROLE_PERMISSIONS = (
    ("team.add_member",),
    ("project.create", "project.edit"),
    ("run.delete", "run.stop", "artifact.edit_alias"),
)
ARTIFACT_ALIASES = ((), ("latest",), ("latest", "best"), ("v0",))


def counts(runs: int) -> dict[str, int]:
    """How many entities of each top-level kind a world of ``runs`` runs has."""
    if runs < 0:
        raise ValueError("runs must be 0 or more")
    scaled = {name: max(MINIMUM[name], round(per * runs / 1_000_000)) for name, per in PER_MILLION_RUNS.items()}
    # Every team needs a few users of its org to be members; every org needs a team.
    scaled["orgs"] = min(scaled["orgs"], scaled["teams"])
    scaled["users"] = max(scaled["users"], 4 * scaled["orgs"])
    scaled["runs"] = runs
    return scaled


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for value, weight in weighted:
        x -= weight
        if x < 0:
            return value
    return weighted[-1][0]


class _Team:
    __slots__ = ("accounts", "admins", "id", "members", "org", "public_disabled", "writers")

    def __init__(self, team_id: str, org: str, public_disabled: bool) -> None:
        self.id = team_id
        self.org = org
        self.public_disabled = public_disabled
        self.members: dict[str, str] = {}
        self.accounts: list[str] = []
        self.admins: list[str] = []
        # Subjects that may create content in the team's projects, as the world writes them.
        self.writers: list[str] = []


def generate_world(runs: int, seed: int = 0) -> dict[str, Any]:
    """A world document with ``runs`` runs and proportional other entities (see the module doc)."""
    rng = random.Random(seed)
    n = counts(runs)

    # -- orgs, users, custom roles, system admins --
    org_ids = [f"org{i}" for i in range(n["orgs"])]
    org_users: dict[str, list[str]] = {org: [] for org in org_ids}
    orgs: list[dict[str, Any]] = []
    for org in org_ids:
        orgs.append({"id": org, "users": []})
    for i in range(n["users"]):
        org_index = i % len(org_ids)
        user = f"u{i}"
        org_users[org_ids[org_index]].append(user)
        role = _pick(rng, ORG_ROLES)
        # The first user of every org is its admin, so each org has one.
        if i < len(org_ids):
            role = "admin"
        orgs[org_index]["users"].append({"id": user} if role == "member" else {"id": user, "role": role})
    system_admins = [org_users[org_ids[0]][0]]

    custom_roles: list[dict[str, Any]] = []
    org_custom: dict[str, list[str]] = {}
    for org in org_ids:
        names = []
        for j, permissions in enumerate(CUSTOM_ROLE_PERMISSIONS):
            role_id = f"{org}-role{j}"
            names.append(role_id)
            base = "view_only" if j == 0 else "member"
            custom_roles.append({"id": role_id, "org": org, "base": base, "permissions": list(permissions)})
        org_custom[org] = names

    # -- teams, memberships, service accounts --
    teams: list[_Team] = []
    team_docs: list[dict[str, Any]] = []
    for i in range(n["teams"]):
        org = org_ids[i % len(org_ids)]
        team = _Team(f"t{i}", org, public_disabled=rng.random() < 0.1)
        pool = org_users[org]
        chosen = rng.sample(pool, min(TEAM_SIZE, len(pool)))
        for k, user in enumerate(chosen):
            role = "admin" if k == 0 else _pick(rng, TEAM_ROLES)
            if role == "custom":
                role = rng.choice(org_custom[org])
            team.members[user] = role
            if role == "admin":
                team.admins.append(user)
            if role != "view_only":
                team.writers.append(user)
        teams.append(team)
    for i in range(n["service_accounts"]):
        team = teams[i % len(teams)]
        account = f"sa{i}"
        team.accounts.append(account)
        team.writers.append(f"service_account:{account}")
    for team in teams:
        doc: dict[str, Any] = {"id": team.id, "org": team.org, "members": team.members}
        if team.accounts:
            doc["service_accounts"] = team.accounts
        settings = {}
        if team.public_disabled:
            settings["public_projects_disabled"] = True
        if rng.random() < 0.2:
            settings["members_can_invite"] = True
        if settings:
            doc["settings"] = settings
        if rng.random() < 0.1:
            doc["storage_bucket"] = f"bucket-{team.id}"
        team_docs.append(doc)

    # -- projects --
    # Per project: the subjects that may create content in it, and whether it is restricted.
    project_writers: list[list[str]] = []
    projects: list[dict[str, Any]] = []
    all_users = [user for org in org_ids for user in org_users[org]]
    for i in range(n["projects"]):
        project_id = f"p{i}"
        # The first projects are team-owned, one per team while there are teams, so every team has one.
        if i >= len(teams) and rng.random() < USER_OWNED_PROJECTS:
            owner_user = rng.choice(all_users)
            visibility = rng.choice(("team", "public", "open"))
            projects.append({"id": project_id, "owner": f"user:{owner_user}", "visibility": visibility,
                             "creator": owner_user})  # fmt: skip
            project_writers.append([owner_user])
            continue
        team = teams[i % len(teams)] if i < len(teams) else rng.choice(teams)
        visibility = _pick(rng, VISIBILITIES)
        if team.public_disabled and visibility in ("public", "open"):
            visibility = "team"
        doc = {"id": project_id, "owner": f"team:{team.id}", "visibility": visibility,
               "creator": rng.choice(team.writers)}  # fmt: skip
        writers = team.writers
        if visibility == "restricted":
            pool = [*team.members, *(f"service_account:{a}" for a in team.accounts)]
            members = rng.sample(pool, min(len(pool), rng.randint(1, 4)))
            doc["members"] = members
            # In a restricted project, content comes from its added members who may write.
            writers = [m for m in members if m in team.writers] or team.writers
        projects.append(doc)
        project_writers.append(writers)

    # -- runs, sweeps, reports, artifacts --
    run_docs: list[dict[str, Any]] = []
    project_count = len(projects)
    random_ = rng.random
    for i in range(runs):
        p = int(random_() * project_count)
        writers = project_writers[p]
        creator = writers[int(random_() * len(writers))]
        run: dict[str, Any] = {"id": f"r{i}", "project": projects[p]["id"], "creator": creator}
        if creator.startswith("service_account:") and random_() < 0.5:
            humans = [w for w in writers if ":" not in w]
            if humans:
                run["attributed_to"] = humans[int(random_() * len(humans))]
        run_docs.append(run)

    def content(prefix: str, count: int) -> list[dict[str, Any]]:
        items = []
        for i in range(count):
            p = int(random_() * project_count)
            writers = project_writers[p]
            items.append(
                {"id": f"{prefix}{i}", "project": projects[p]["id"], "creator": writers[int(random_() * len(writers))]}
            )
        return items

    sweeps = content("s", n["sweeps"])
    reports = content("rep", n["reports"])
    artifacts = content("a", n["artifacts"])
    for artifact in artifacts:
        artifact["type"] = "model" if random_() < 0.6 else "dataset"
        aliases = ARTIFACT_ALIASES[int(random_() * len(ARTIFACT_ALIASES))]
        if aliases:
            artifact["aliases"] = list(aliases)

    # -- legacy model registries (a fifth of the teams, at least one) --
    model_registries: list[dict[str, Any]] = []
    model_number = version_number = 0
    for index, team in enumerate(teams):
        if index % 5:
            continue
        models = []
        for _ in range(rng.randint(1, 4)):
            model_id = f"m{model_number}"
            model_number += 1
            versions = []
            count = rng.randint(1, 3)
            for v in range(count):
                version: dict[str, Any] = {"id": f"mv{version_number}"}
                version_number += 1
                if v == count - 1:
                    version["aliases"] = ["latest"]
                versions.append(version)
            models.append({"id": model_id, "versions": versions})
        state = _pick(rng, (("active", 0.8), ("migrating", 0.1), ("migrated", 0.1)))
        model_registries.append(
            {"team": team.id, "admins": team.admins[:2], "protected_aliases": ["production"], "state": state,
             "models": models}
        )  # fmt: skip

    # -- registries: per org, the org's model registry and a restricted one --
    registries: list[dict[str, Any]] = []
    collection_number = cversion_number = 0
    org_teams: dict[str, list[_Team]] = {org: [] for org in org_ids}
    for team in teams:
        org_teams[team.org].append(team)

    def collections(org: str, count: int, team_scoped: bool, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        nonlocal collection_number, cversion_number
        result = []
        for _ in range(count):
            collection: dict[str, Any] = {"id": f"c{collection_number}"}
            collection_number += 1
            if team_scoped and org_teams[org] and rng.random() < 0.5:
                collection["team"] = rng.choice(org_teams[org]).id
                collection["protected_aliases"] = ["production"]
            kind = rng.choice(kinds)
            versions: list[dict[str, Any]] = []
            for v in range(rng.randint(1, 3)):
                version: dict[str, Any] = {"id": f"cv{cversion_number}", "type": kind}
                cversion_number += 1
                if v == 0:
                    version["aliases"] = ["staging"]
                versions.append(version)
            collection["versions"] = versions
            result.append(collection)
        return result

    registry_collections = max(2, n["teams"] // len(org_ids) // 5)
    for org in org_ids:
        registries.append(
            {"id": f"model-{org}", "org": org, "visibility": "organization",
             "collections": collections(org, registry_collections, True, ("model",))}
        )  # fmt: skip
        users = org_users[org]
        registry_members: dict[str, str | None] = {}
        for user in rng.sample(users[1:], min(len(users) - 1, 5)):
            registry_members[f"user:{user}"] = rng.choice(("restricted_viewer", "viewer", "member", None))
        for team in org_teams[org][:3]:
            registry_members[f"team:{team.id}"] = rng.choice(("viewer", "member"))
        registries.append(
            {"id": f"fine-tuned-{org}", "org": org, "visibility": "restricted", "accepted_types": ["model", "dataset"],
             "creator": users[0], "members": registry_members,
             "collections": collections(org, registry_collections, False, ("model", "dataset"))}
        )  # fmt: skip

    return {
        "name": f"generated world: {runs} runs, seed {seed}",
        "world": {
            "orgs": orgs,
            "system_admins": system_admins,
            "custom_roles": custom_roles,
            "teams": team_docs,
            "projects": projects,
            "runs": run_docs,
            "sweeps": sweeps,
            "reports": reports,
            "artifacts": artifacts,
            "model_registries": model_registries,
            "registries": registries,
        },
    }
