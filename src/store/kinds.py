"""The vocabulary both services share, as plain data: entity kinds and their keys, roles,
visibilities, the kinds of resources and subjects, and the syntax of ids and actions.

Pure data, importing nothing of either service (no SQLAlchemy, no gRPC): the store's entity
table (:mod:`store.entities`) and the decision service (its replica, resolver and request
validation) both read it, so a kind or a role is named in one place.
"""

from __future__ import annotations

import re
from typing import Any

Row = dict[str, Any]
Key = tuple[str, ...]

# Entity kinds of the store, in an order where every reference points to an earlier kind.
KINDS = (
    "org", "user", "custom_role", "team", "membership", "service_account", "project", "project_member",
    "run", "sweep", "report", "artifact", "model_registry", "model_registry_admin", "registered_model",
    "model_version", "registry", "registry_member", "collection", "collection_version",
)  # fmt: skip

# Key fields of each kind whose key is not its "id".
KEYS: dict[str, tuple[str, ...]] = {
    "membership": ("team", "user"),
    "project_member": ("project", "member"),
    "model_registry": ("team",),
    "model_registry_admin": ("team", "user"),
    "registry_member": ("registry", "member"),
}

# What lives inside a project: most of a large world, and everything P0's gate covers.
CONTENT_KINDS = ("run", "sweep", "report", "artifact")

# Kinds of a decision's resource (`kind:id`) and subject.
RESOURCE_KINDS = (
    "org", "system", "team", "user", "project", *CONTENT_KINDS, "model_registry", "registered_model",
    "registry", "collection", "version",
)  # fmt: skip
SUBJECT_KINDS = ("user", "service_account", "anonymous")

ORG_ROLES = ("admin", "member", "viewer")
TEAM_ROLES = ("view_only", "member", "admin")  # weakest first
CUSTOM_ROLE_BASES = ("view_only", "member")
VISIBILITIES = ("team", "restricted", "public", "open")
LEGACY_STATES = ("active", "migrating", "migrated")
REGISTRY_VISIBILITIES = ("restricted", "organization")
REGISTRY_ROLES = ("restricted_viewer", "viewer", "member", "admin")  # weakest first

# Actions a custom role may add to its base role: the team-scope actions of PERMISSIONS.md
# sections 4.2-4.6, except T7-T9 (privacy, storage, deletion stay with org and system admins).
CUSTOM_ROLE_ACTIONS = frozenset(
    {
        "team.view", "team.view_profile", "team.add_member", "team.invite_member",
        "team.remove_member", "team.change_role", "team.manage_settings",
        "project.view", "project.create", "project.edit", "project.set_visibility",
        "project.add_member", "project.delete",
        "run.view", "run.edit_workspace", "run.create", "run.delete", "run.stop", "run.attribute",
        "sweep.view", "sweep.create", "sweep.delete", "sweep.stop",
        "report.view", "report.create", "report.edit", "report.delete", "report.comment",
        "report.follow",
        "artifact.view", "artifact.create", "artifact.delete", "artifact.edit_metadata",
        "artifact.edit_alias", "artifact.delete_alias", "artifact.download",
    }
)  # fmt: skip

# An id: letters, digits and . _ @ + -, starting with a letter or digit; up to MAX_ID characters.
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]*\Z")
MAX_ID = 256
# An action: "<resource kind>.<verb>".
ACTION = re.compile(r"[a-z_]+\.[a-z_]+\Z")


def key_of(kind: str, row: Row) -> Key:
    """The key of ``row``, a row of ``kind`` (its key fields' values, in order)."""
    return tuple(row[name] for name in KEYS.get(kind, ("id",)))
