"""The facts a policy can read: what the resolver gives a condition about a subject and a resource.

This is the schema `authz policy lint` checks conditions and the matcher against (every
``r.sub.X``, ``r.obj.X`` and ``r.ctx.X`` must name one of these, for every kind the action
applies to) and docs/facts.md describes; a test checks that the resolver gives exactly these
facts for every kind, so the schema cannot drift from what decisions see. It also lists the role
tokens the resolver gives, which lint uses to tell a defined role from a typo.

Types: ``str``, ``bool`` and ``set`` (a frozenset of strings).
"""

from __future__ import annotations

from store.kinds import CONTENT_KINDS, ORG_ROLES, REGISTRY_ROLES, RESOURCE_KINDS, TEAM_ROLES

Facts = dict[str, str]  # fact name -> type

SUBJECT: Facts = {
    "kind": "str",  # user | service_account | anonymous
    "id": "str",  # empty for anonymous
    "ref": "str",  # user:bob, service_account:ci, anonymous
    "roles": "set",  # role tokens held in the scopes the resource lives in (ROLE_TOKENS)
    "added": "bool",  # listed as a member of the resource's project
    "teams": "set",  # ids of the teams a user belongs to
    "org_role": "str",  # the user's own org seat: admin | member | viewer ("" for others)
}

_BASE: Facts = {"kind": "str", "id": "str", "ref": "str"}
_TEAM: Facts = {
    "org": "str", "team": "str", "members_can_invite": "bool", "public_projects_disabled": "bool",
    "storage_bucket": "str",
}  # fmt: skip
_PROJECT: Facts = {
    **_TEAM,
    "project": "str",  # the project's id (the resource's own for a project)
    "visibility": "str",  # team | restricted | public | open
    "personal": "bool",  # owned by a user rather than a team
    "owner": "str",  # team:<id> or user:<id>
    "creator": "str",  # user:<id> or service_account:<id>, "" when not recorded
    "attributed_to": "str",  # user:<id> a run is attributed to (E9), else ""
    "team_members": "set",  # users of the owning team
    "creator_in_team": "bool",  # the creator is (still) in the owning team
}
_LEGACY: Facts = {**_TEAM, "state": "str", "protected_aliases": "set"}
_REGISTRY: Facts = {
    "org": "str", "registry": "str", "registry_visibility": "str", "restrict_types": "bool",
    "accepted_types": "set", "collection": "str", "collection_team": "str", "protected_aliases": "set",
    "type": "str",
}  # fmt: skip

RESOURCE: dict[str, Facts] = {
    "system": dict(_BASE),
    "org": {**_BASE, "org": "str"},
    "user": {**_BASE, "org": "str"},
    "team": {**_BASE, **_TEAM},
    "project": {**_BASE, **_PROJECT},
    **{kind: {**_BASE, **_PROJECT} for kind in CONTENT_KINDS},
    "model_registry": {**_BASE, **_LEGACY},
    "registered_model": {**_BASE, **_LEGACY},
    "registry": {**_BASE, **_REGISTRY},
    "collection": {**_BASE, **_REGISTRY},
    "version": {**_BASE, **_REGISTRY},
}
assert set(RESOURCE) == set(RESOURCE_KINDS)

# Context values a caller may give (G7, G9): bare names.
CONTEXT = ("role", "visibility", "username", "alias", "artifact_type", "entity")

# Role tokens the resolver gives a subject (authz/resolver.py); custom roles give
# team:custom:<id>[@viewer], which only the store's custom-role lines name.
ROLE_TOKENS: frozenset[str] = frozenset(
    {
        "user", "service_account", "anonymous", "self", "system:admin", "team:service", "project:owner", "mra",
        *(f"org:{role}" for role in ORG_ROLES),
        *(f"team:{role}" for role in TEAM_ROLES),
        *(f"team:{role}@viewer" for role in TEAM_ROLES),
        *(f"registry:{role}" for role in REGISTRY_ROLES),
    }
)  # fmt: skip
GENERATED_ROLE_PREFIX = "team:custom:"


def resource_fact(kinds: tuple[str, ...], name: str) -> tuple[str, ...]:
    """The kinds among ``kinds`` that have no fact ``name``."""
    return tuple(kind for kind in kinds if name not in RESOURCE.get(kind, {}))
