"""`authz policy matrix`: role x action tables per resource family, computed by asking the engine.

Each family gets a small synthetic world with one subject per column; every cell is a real
decision: "X" when the column's subject may do the action, "own" when only on what it created,
blank otherwise. Nothing here reads policy text, so the tables show what the policy does.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from authz.decider import Decider
from authz.decision import Request
from authz.policy import Policy
from authz.testing import decider_for, state_from_document


@dataclass(frozen=True)
class Row:
    rule: str
    action: str
    resource: str  # resource the action is asked on; "{own}" is replaced per column
    context: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Family:
    title: str
    columns: tuple[tuple[str, str], ...]  # (heading, subject)
    rows: tuple[Row, ...]
    world: dict[str, Any]
    note: str = ""


@dataclass(frozen=True)
class Table:
    family: Family
    cells: tuple[tuple[str, ...], ...]  # per row, per column


_TEAM_USERS = [{"id": "vo"}, {"id": "me"}, {"id": "ad"}, {"id": "oa", "role": "admin"}, {"id": "other"}]
_TEAM = {
    "id": "t",
    "org": "o",
    "members": {"vo": "view_only", "me": "member", "ad": "admin", "other": "member"},
    "service_accounts": ["sa"],
}


def _content_world() -> dict[str, Any]:
    runs, reports, artifacts, sweeps = [], [], [], []
    for who in ("vo", "me", "ad", "other"):
        runs.append({"id": f"run-{who}", "project": "p", "creator": who})
        sweeps.append({"id": f"sweep-{who}", "project": "p", "creator": who})
        reports.append({"id": f"report-{who}", "project": "p", "creator": who})
        artifacts.append({"id": f"artifact-{who}", "project": "p", "creator": who, "type": "model"})
    return {
        "orgs": [{"id": "o", "users": _TEAM_USERS}],
        "teams": [_TEAM],
        "projects": [{"id": "p", "owner": "team:t", "visibility": "team", "creator": "other"}],
        "runs": runs,
        "sweeps": sweeps,
        "reports": reports,
        "artifacts": artifacts,
    }


ROLE_COLUMNS = (("view_only", "user:vo"), ("member", "user:me"), ("admin", "user:ad"))


def _content_rows(kind: str, rows: list[tuple[str, str]]) -> tuple[Row, ...]:
    return tuple(
        Row(rule, action, "project:p" if action.endswith(".create") else f"{kind}:{kind}-{{own}}")
        for rule, action in rows
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "4.2 Teams",
        (
            *ROLE_COLUMNS,
            ("org admin", "user:oa"),
            ("service account", "service_account:sa"),
            ("anonymous", "anonymous"),
        ),
        tuple(
            Row(
                rule,
                action,
                "team:t",
                (("role", "member"),) if action in ("team.add_member", "team.invite_member") else (),
            )
            for rule, action in (
                ("T1", "team.view"),
                ("T2", "team.view_profile"),
                ("T3", "team.add_member"),
                ("T3", "team.invite_member"),
                ("T4", "team.remove_member"),
                ("T5", "team.change_role"),
                ("T6", "team.manage_settings"),
                ("T7", "team.manage_privacy"),
                ("T8", "team.configure_storage"),
                ("T9", "team.delete"),
            )
        ),
        {"orgs": [{"id": "o", "users": _TEAM_USERS}], "teams": [_TEAM]},
        "team.add_member / team.invite_member asked with role=member, members_can_invite off (T3a); "
        "team.configure_storage with no bucket set (T8).",
    ),
    Family(
        "4.4 Runs and sweeps",
        ROLE_COLUMNS,
        _content_rows(
            "run",
            [
                ("E1", "run.view"),
                ("E2", "run.edit_workspace"),
                ("E3", "run.create"),
                ("E4", "run.delete"),
                ("E5", "run.stop"),
            ],
        )
        + _content_rows(
            "sweep", [("E10", "sweep.view"), ("E10", "sweep.create"), ("E10", "sweep.delete"), ("E10", "sweep.stop")]
        ),
        _content_world(),
        "In a team project. own = only runs the subject created (or that are attributed to them).",
    ),
    Family(
        "4.5 Reports",
        ROLE_COLUMNS,
        _content_rows(
            "report",
            [
                ("RP1", "report.view"),
                ("RP2", "report.create"),
                ("RP3", "report.edit"),
                ("RP4", "report.delete"),
                ("RP5", "report.comment"),
                ("RP5", "report.follow"),
            ],
        ),
        _content_world(),
        "In a team project. own = only reports the subject created.",
    ),
    Family(
        "4.6 Artifacts",
        (*ROLE_COLUMNS, ("service account", "service_account:sa")),
        tuple(
            Row(rule, action, "project:p" if action == "artifact.create" else "artifact:artifact-other")
            for rule, action in (
                ("A1", "artifact.view"),
                ("A2", "artifact.create"),
                ("A3", "artifact.delete"),
                ("A4", "artifact.edit_metadata"),
                ("A5", "artifact.edit_alias"),
                ("A6", "artifact.delete_alias"),
                ("A7", "artifact.download"),
            )
        ),
        _content_world(),
        "In a team project.",
    ),
    Family(
        "4.7 Legacy model registry",
        (
            ("view_only", "user:vo"),
            ("member", "user:me"),
            ("model-registry admin", "user:mra"),
            ("team admin", "user:ad"),
        ),
        (
            Row("M1", "model_registry.add_alias", "model_registry:t", (("alias", "staging"),)),
            Row("M1a", "model_registry.add_alias", "model_registry:t", (("alias", "production"),)),
            Row("M2", "model_registry.link_model", "model_registry:t"),
            Row("M3", "model_registry.view", "model_registry:t"),
            Row("M4", "model_registry.download", "model_registry:t"),
            Row("M5", "model_registry.manage_admins", "model_registry:t"),
            Row("M6", "model_registry.manage_protected_aliases", "model_registry:t"),
        ),
        {
            "orgs": [{"id": "o", "users": [{"id": "vo"}, {"id": "me"}, {"id": "mra"}, {"id": "ad"}]}],
            "teams": [
                {
                    "id": "t",
                    "org": "o",
                    "members": {"vo": "view_only", "me": "member", "mra": "view_only", "ad": "admin"},
                }
            ],
            "model_registries": [
                {"team": "t", "admins": ["mra"], "protected_aliases": ["production"], "state": "active"}
            ],
        },
        "The model-registry admin here is a view_only team member. M1 asked with alias=staging, "
        "M1a with the protected alias production; registry active (M7 makes it read-only otherwise).",
    ),
    Family(
        "4.8 Registries",
        (("restricted_viewer", "user:rv"), ("viewer", "user:vw"), ("member", "user:mb"), ("admin", "user:ad")),
        tuple(
            Row(rule, action, resource, (("alias", "staging"), ("artifact_type", "model")))
            for rule, action, resource in (
                ("G-R0", "registry.view", "registry:r"),
                ("G-R0", "registry.search", "registry:r"),
                ("G-R0", "collection.view", "collection:c"),
                ("G-R0", "version.view", "version:v"),
                ("G-R1", "registry.view_settings", "registry:r"),
                ("G-R1", "version.use", "version:v"),
                ("G-R1", "version.download", "version:v"),
                ("G-R2", "collection.create", "registry:r"),
                ("G-R2", "registry.create_automation", "registry:r"),
                ("G-R2", "registry.enable_notifications", "registry:r"),
                ("G-R3", "collection.edit", "collection:c"),
                ("G-R3", "collection.tag", "collection:c"),
                ("G-R3", "version.edit_description", "version:v"),
                ("G-R3", "version.edit_alias", "version:v"),
                ("G-R3", "version.link", "collection:c"),
                ("G-R3", "registry.rename", "registry:r"),
                ("G-R4", "collection.delete", "collection:c"),
                ("G-R4", "registry.delete_automation", "registry:r"),
                ("G-R4", "version.unlink", "version:v"),
                ("G-R5", "registry.edit_accepted_types", "registry:r"),
                ("G-R5", "registry.set_visibility", "registry:r"),
                ("G-R5", "registry.add_member", "registry:r"),
                ("G-R5", "registry.remove_member", "registry:r"),
                ("G-R5", "registry.assign_role", "registry:r"),
                ("G-R5", "registry.delete", "registry:r"),
            )
        ),
        {
            "orgs": [{"id": "o", "users": [{"id": "rv"}, {"id": "vw"}, {"id": "mb"}, {"id": "ad"}]}],
            "registries": [
                {
                    "id": "r",
                    "org": "o",
                    "visibility": "restricted",
                    "members": {
                        "user:rv": "restricted_viewer",
                        "user:vw": "viewer",
                        "user:mb": "member",
                        "user:ad": "admin",
                    },
                    "collections": [{"id": "c", "versions": [{"id": "v", "type": "model"}]}],
                }
            ],
        },
        "A restricted registry accepting all types; roles granted directly. version.edit_alias asked "
        "with a non-protected alias, version.link with artifact_type=model.",
    ),
)


def _allowed(decider: Decider, subject: str, row: Row, resource: str) -> bool:
    subject_kind, _, subject_id = subject.partition(":")
    kind, _, ident = resource.partition(":")
    return decider.check(Request(subject_kind, subject_id, row.action, kind, ident, dict(row.context))).allowed


def _cell(decider: Decider, subject: str, row: Row) -> str:
    if "{own}" not in row.resource:
        return "X" if _allowed(decider, subject, row, row.resource) else ""
    own_id = subject.partition(":")[2]
    on_own = _allowed(decider, subject, row, row.resource.replace("{own}", own_id))
    on_other = _allowed(decider, subject, row, row.resource.replace("{own}", "other"))
    return "X" if on_other else ("own" if on_own else "")


def compute(policy: Policy | None = None) -> list[Table]:
    tables = []
    for family in FAMILIES:
        decider = decider_for(state_from_document({"world": family.world}), policy)
        cells = tuple(tuple(_cell(decider, subject, row) for _, subject in family.columns) for row in family.rows)
        tables.append(Table(family, cells))
    return tables


HEADER = (
    "# Permission matrix\n\n"
    "Generated by `authz policy matrix` from the policy in `policies/`, by asking the decision engine "
    "(not by reading policy text). Do not edit by hand; CI checks that it is current.\n\n"
    "X: allowed. own: allowed only on what the subject created. Blank: denied.\n"
)


def markdown(tables: list[Table], version: str) -> str:
    out = [HEADER, f"Policy version `{version}`.\n"]
    for table in tables:
        family = table.family
        out.append(f"## {family.title}\n")
        if family.note:
            out.append(f"{family.note}\n")
        out.append("| rule | action | " + " | ".join(h for h, _ in family.columns) + " |")
        out.append("|---|---|" + "---|" * len(family.columns))
        for row, cells in zip(family.rows, table.cells, strict=True):
            out.append(f"| {row.rule} | `{row.action}` | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def to_html(tables: list[Table], version: str) -> str:
    parts = [
        "<!doctype html><meta charset=utf-8><title>Permission matrix</title>",
        "<style>td,th{border:1px solid #999;padding:2px 8px}table{border-collapse:collapse}</style>",
        f"<h1>Permission matrix</h1><p>Policy version <code>{html.escape(version)}</code>. "
        "X: allowed; own: only on what the subject created.</p>",
    ]
    for table in tables:
        family = table.family
        parts.append(f"<h2>{html.escape(family.title)}</h2><p>{html.escape(family.note)}</p><table><tr>")
        parts.append("".join(f"<th>{html.escape(h)}</th>" for h in ("rule", "action", *(c for c, _ in family.columns))))
        parts.append("</tr>")
        for row, cells in zip(family.rows, table.cells, strict=True):
            values = (row.rule, row.action, *cells)
            parts.append("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in values) + "</tr>")
        parts.append("</table>")
    return "\n".join(parts) + "\n"
