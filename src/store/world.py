"""The world format of DECISION_TESTS.md: parse a document into store rows, each with its path.

``parse_world`` checks the shape of the document (types, required keys, unknown keys, enums,
duplicate ids) and names the path of every problem (``world.teams[0].members.dave``). It knows
nothing of the database; :mod:`store.importer` checks references and writes the rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import yaml

from servicekit.text import clip
from store.entities import SPECS
from store.errors import InvalidArgument
from store.kinds import REGISTRY_ROLES, Row
from store.repository import normalize, stronger_registry_role

try:  # the C loader is many times faster for large worlds
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


@dataclass(frozen=True)
class WorldRow:
    kind: str
    row: Row
    path: str


def load_document(text: str | bytes, name: str = "world") -> dict[str, Any]:
    """Parse YAML (or JSON) text into a mapping; errors name the file and the line."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        stripped = text.lstrip()
        document = json.loads(text) if stripped.startswith("{") else yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{name}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidArgument(f"{name}: the document must be a mapping with a 'world' key")
    return document


def world_of(document: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The world mapping of a decision-test document (``world:``) or of a bare world."""
    if "world" in document:
        world = document["world"]
        if not isinstance(world, dict):
            raise InvalidArgument("must be a mapping", path="world")
        return world, "world"
    return document, "world"


class _Parser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.rows: dict[str, dict[tuple[str, ...], WorldRow]] = {kind: {} for kind in SPECS}
        self.user_org: dict[str, str] = {}

    # -- helpers --

    def mapping(
        self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InvalidArgument(f"must be a mapping, not {type(value).__name__}", path=path)
        for key in value:
            if key not in allowed:
                hint = get_close_matches(str(key), allowed, n=1)
                raise InvalidArgument(
                    f"unknown key {clip(key)}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" (allowed: {', '.join(allowed)})",
                    path=path,
                )
        for key in required:
            if value.get(key) in (None, ""):
                raise InvalidArgument("is required", path=f"{path}.{key}")
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidArgument(f"must be a list, not {type(value).__name__}", path=path)
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InvalidArgument(f"must be a string, not {clip(value)}", path=path)
        return str(value)

    def strings(self, value: Any, path: str) -> list[str]:
        return [self.string(v, f"{path}[{i}]") for i, v in enumerate(self.sequence(value, path))]

    def subject(self, value: Any, path: str) -> str:
        """A user written bare (``bob``) or any subject written ``kind:id``."""
        text = self.string(value, path)
        return text if ":" in text else f"user:{text}"

    def add(self, kind: str, values: dict[str, Any], path: str) -> Row:
        row = normalize(kind, values, path)
        key = SPECS[kind].key_of(row)
        previous = self.rows[kind].get(key)
        if previous is not None:
            raise InvalidArgument(
                f"duplicate {SPECS[kind].describe(key)} (first defined at {previous.path})", path=path
            )
        self.rows[kind][key] = WorldRow(kind, row, path)
        return row

    # -- sections --

    def parse(self, world: dict[str, Any]) -> list[WorldRow]:
        base = self.base
        self.mapping(
            world, base,
            ("orgs", "system_admins", "custom_roles", "teams", "projects", "runs", "sweeps", "reports",
             "artifacts", "model_registries", "registries"),
        )  # fmt: skip
        for i, org in enumerate(self.sequence(world.get("orgs"), f"{base}.orgs")):
            self.org(org, f"{base}.orgs[{i}]")
        for i, name in enumerate(self.sequence(world.get("system_admins"), f"{base}.system_admins")):
            self.system_admin(self.string(name, f"{base}.system_admins[{i}]"), f"{base}.system_admins[{i}]")
        for i, role in enumerate(self.sequence(world.get("custom_roles"), f"{base}.custom_roles")):
            path = f"{base}.custom_roles[{i}]"
            role = self.mapping(role, path, ("id", "org", "base", "permissions"), ("id", "org", "base"))
            self.add(
                "custom_role",
                {**role, "permissions": self.strings(role.get("permissions"), f"{path}.permissions")},
                path,
            )
        for i, team in enumerate(self.sequence(world.get("teams"), f"{base}.teams")):
            self.team(team, f"{base}.teams[{i}]")
        for i, project in enumerate(self.sequence(world.get("projects"), f"{base}.projects")):
            self.project(project, f"{base}.projects[{i}]")
        for section, kind in (
            ("runs", "run"),
            ("sweeps", "sweep"),
            ("reports", "report"),
            ("artifacts", "artifact"),
        ):
            for i, item in enumerate(self.sequence(world.get(section), f"{base}.{section}")):
                self.content(kind, item, f"{base}.{section}[{i}]")
        for i, registry in enumerate(self.sequence(world.get("model_registries"), f"{base}.model_registries")):
            self.model_registry(registry, f"{base}.model_registries[{i}]")
        for i, registry in enumerate(self.sequence(world.get("registries"), f"{base}.registries")):
            self.registry(registry, f"{base}.registries[{i}]")
        return [row for kind in SPECS for row in self.rows[kind].values()]

    def org(self, org: Any, path: str) -> None:
        org = self.mapping(org, path, ("id", "users"), ("id",))
        org_id = self.string(org["id"], f"{path}.id")
        self.add("org", {"id": org_id}, path)
        for j, user in enumerate(self.sequence(org.get("users"), f"{path}.users")):
            user_path = f"{path}.users[{j}]"
            if isinstance(user, str):
                user = {"id": user}
            user = self.mapping(user, user_path, ("id", "role"), ("id",))
            self.add("user", {"id": self.string(user["id"], f"{user_path}.id"), "org": org_id,
                              "role": user.get("role") or "member"}, user_path)  # fmt: skip

    def system_admin(self, name: str, path: str) -> None:
        existing = self.rows["user"].get((name,))
        if existing is not None:
            existing.row["system_admin"] = True
        else:
            self.add("user", {"id": name, "role": "member", "system_admin": True}, path)

    def team(self, team: Any, path: str) -> None:
        team = self.mapping(
            team,
            path,
            ("id", "org", "members", "service_accounts", "settings", "storage_bucket"),
            ("id", "org"),
        )
        settings = self.mapping(
            team.get("settings") or {}, f"{path}.settings", ("members_can_invite", "public_projects_disabled")
        )
        team_id = self.string(team["id"], f"{path}.id")
        org_id = self.string(team["org"], f"{path}.org")
        self.add(
            "team",
            {"id": team_id, "org": org_id, **settings, "storage_bucket": team.get("storage_bucket") or ""},
            path,
        )
        members = team.get("members") or {}
        if not isinstance(members, dict):
            raise InvalidArgument("must be a mapping of user id to role", path=f"{path}.members")
        for user, role in members.items():
            member_path = f"{path}.members.{user}"
            user_id = self.string(user, member_path)
            if role is None:
                raise InvalidArgument("needs a role (view_only, member, admin or a custom role id)", path=member_path)
            if (user_id,) not in self.rows["user"]:
                # Team members absent from the org's users are created as org members.
                self.add("user", {"id": user_id, "org": org_id, "role": "member"}, member_path)
            self.add(
                "membership",
                {"team": team_id, "user": user_id, "role": self.string(role, member_path)},
                member_path,
            )
        for j, account in enumerate(self.sequence(team.get("service_accounts"), f"{path}.service_accounts")):
            account_path = f"{path}.service_accounts[{j}]"
            name = self.string(account, account_path).removeprefix("service_account:")
            self.add("service_account", {"id": name, "team": team_id}, account_path)

    def project(self, project: Any, path: str) -> None:
        project = self.mapping(project, path, ("id", "owner", "visibility", "creator", "members"), ("id", "owner"))
        owner = self.string(project["owner"], f"{path}.owner")
        row = self.add(
            "project",
            {"id": project["id"], "owner": owner, "visibility": project.get("visibility") or "team",
             "creator": self.subject(project["creator"], f"{path}.creator") if project.get("creator") else ""},
            path,
        )  # fmt: skip
        for j, member in enumerate(self.sequence(project.get("members"), f"{path}.members")):
            member_path = f"{path}.members[{j}]"
            self.add(
                "project_member",
                {"project": row["id"], "member": self.subject(member, member_path)},
                member_path,
            )

    def content(self, kind: str, item: Any, path: str) -> None:
        fields = {"run": ("attributed_to",), "artifact": ("type", "aliases")}.get(kind, ())
        item = self.mapping(item, path, ("id", "project", "creator", *fields), ("id", "project", "creator"))
        values = {**item, "creator": self.subject(item["creator"], f"{path}.creator")}
        if kind == "run" and item.get("attributed_to"):
            values["attributed_to"] = self.string(item["attributed_to"], f"{path}.attributed_to").removeprefix("user:")
        if kind == "artifact":
            values["aliases"] = self.strings(item.get("aliases"), f"{path}.aliases")
        self.add(kind, values, path)

    def model_registry(self, registry: Any, path: str) -> None:
        registry = self.mapping(registry, path, ("team", "admins", "protected_aliases", "state", "models"), ("team",))
        team = self.string(registry["team"], f"{path}.team")
        self.add(
            "model_registry",
            {"team": team, "state": registry.get("state") or "active",
             "protected_aliases": self.strings(registry.get("protected_aliases"), f"{path}.protected_aliases")},
            path,
        )  # fmt: skip
        for j, admin in enumerate(self.strings(registry.get("admins"), f"{path}.admins")):
            self.add(
                "model_registry_admin",
                {"team": team, "user": admin.removeprefix("user:")},
                f"{path}.admins[{j}]",
            )
        for j, model in enumerate(self.sequence(registry.get("models"), f"{path}.models")):
            model_path = f"{path}.models[{j}]"
            model = self.mapping(model, model_path, ("id", "versions", "created_at", "lineage"), ("id",))
            self.add("registered_model", {"id": model["id"], "team": team, **_provenance(model)}, model_path)
            for k, version in enumerate(self.sequence(model.get("versions"), f"{model_path}.versions")):
                version_path = f"{model_path}.versions[{k}]"
                version = self.mapping(version, version_path, ("id", "aliases", "created_at", "lineage"), ("id",))
                self.add(
                    "model_version",
                    {"id": version["id"], "model": model["id"], **_provenance(version),
                     "aliases": self.strings(version.get("aliases"), f"{version_path}.aliases")},
                    version_path,
                )  # fmt: skip

    def registry(self, registry: Any, path: str) -> None:
        registry = self.mapping(
            registry, path, ("id", "org", "visibility", "accepted_types", "creator", "members", "collections"),
            ("id", "org"),
        )  # fmt: skip
        accepted = registry.get("accepted_types")
        row = self.add(
            "registry",
            {"id": registry["id"], "org": registry["org"], "visibility": registry.get("visibility") or "restricted",
             "restrict_types": accepted is not None,
             "accepted_types": self.strings(accepted, f"{path}.accepted_types"),
             "creator": self.string(registry["creator"], f"{path}.creator").removeprefix("user:")
             if registry.get("creator") else ""},
            path,
        )  # fmt: skip
        members = registry.get("members") or {}
        if not isinstance(members, dict):
            raise InvalidArgument("must be a mapping of user:<id> or team:<id> to a role", path=f"{path}.members")
        roles: dict[str, tuple[str, str]] = {}
        for member, role in members.items():
            member_path = f"{path}.members.{member}"
            name = self.string(member, member_path)
            if ":" not in name:
                name = f"user:{name}"
            roles[name] = (self.string(role, member_path) if role is not None else "viewer", member_path)
        if row["visibility"] == "restricted" and row["creator"]:
            # The creator of a restricted registry becomes its admin automatically.
            creator = f"user:{row['creator']}"
            role, member_path = roles.get(creator, ("admin", f"{path}.creator"))
            roles[creator] = (stronger_registry_role("admin", role) if role in REGISTRY_ROLES else role, member_path)
        for name, (role, member_path) in roles.items():
            self.add("registry_member", {"registry": row["id"], "member": name, "role": role}, member_path)
        for j, collection in enumerate(self.sequence(registry.get("collections"), f"{path}.collections")):
            collection_path = f"{path}.collections[{j}]"
            collection = self.mapping(
                collection, collection_path, ("id", "team", "protected_aliases", "versions", "created_at", "lineage"),
                ("id",),
            )  # fmt: skip
            self.add(
                "collection",
                {"id": collection["id"], "registry": row["id"], "team": collection.get("team") or "",
                 **_provenance(collection),
                 "protected_aliases": self.strings(
                     collection.get("protected_aliases"), f"{collection_path}.protected_aliases"
                 )},
                collection_path,
            )  # fmt: skip
            for k, version in enumerate(self.sequence(collection.get("versions"), f"{collection_path}.versions")):
                version_path = f"{collection_path}.versions[{k}]"
                version = self.mapping(
                    version, version_path, ("id", "type", "aliases", "created_at", "lineage"), ("id",)
                )
                self.add(
                    "collection_version",
                    {"id": version["id"], "collection": collection["id"], "type": version.get("type") or "",
                     **_provenance(version),
                     "aliases": self.strings(version.get("aliases"), f"{version_path}.aliases")},
                    version_path,
                )  # fmt: skip


def _provenance(item: dict[str, Any]) -> dict[str, Any]:
    """created_at (unix ms) and lineage (any JSON value, kept as JSON text) when given."""
    values: dict[str, Any] = {}
    if item.get("created_at") is not None:
        values["created_at"] = item["created_at"]
    if item.get("lineage") is not None:
        lineage = item["lineage"]
        values["lineage"] = lineage if isinstance(lineage, str) else json.dumps(lineage, sort_keys=True)
    return values


def parse_world(document: dict[str, Any]) -> list[WorldRow]:
    """Rows of every entity the document's world describes, in dependency order."""
    world, base = world_of(document)
    return _Parser(base).parse(world)


def iter_kinds(rows: list[WorldRow]) -> Iterator[tuple[str, list[WorldRow]]]:
    """Group rows by kind, keeping the dependency order of kinds."""
    grouped: dict[str, list[WorldRow]] = {kind: [] for kind in SPECS}
    for row in rows:
        grouped[row.kind].append(row)
    for kind, items in grouped.items():
        if items:
            yield kind, items
