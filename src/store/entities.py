"""The entity kinds of the store, described as data: keys, references, mutable fields, enums.

One table drives the repository (create/update/delete with reference checks and cascades),
the world importer, the change feed and the gRPC mapping, so a new kind is one entry here,
its name (and key, if not ``id``) in :mod:`store.kinds`, one mapped class in ``models.py`` and
one message in ``store.proto``. The roles, visibilities and states the enums allow are named in
:mod:`store.kinds`, the vocabulary both services read. Module-level constants only: nothing here
changes after import, so threads share it freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Table

from store import models

# Re-exported for src/authz/testing.py until it imports it from store.kinds, where it now lives.
from store.kinds import CUSTOM_ROLE_ACTIONS as CUSTOM_ROLE_ACTIONS  # noqa: PLC0414 - explicit re-export
from store.kinds import (
    CUSTOM_ROLE_BASES,
    LEGACY_STATES,
    ORG_ROLES,
    REGISTRY_ROLES,
    REGISTRY_VISIBILITIES,
    VISIBILITIES,
    Key,
    Row,
)


@dataclass(frozen=True)
class Ref:
    """A field that names another entity.

    ``kinds`` are the kinds it may name; when ``prefixed`` the value is ``kind:id``. The target
    must exist when the row is written. ``on_delete`` says what deleting the target does:
    ``restrict`` refuses while this row exists, ``cascade`` deletes this row too (link rows such
    as memberships), ``keep`` leaves it, still naming the target (creators stay recorded, G5).
    """

    field: str
    kinds: tuple[str, ...]
    prefixed: bool = False
    optional: bool = False
    on_delete: str = "restrict"


@dataclass(frozen=True)
class Spec:
    kind: str
    model: type[models.Base]
    key: tuple[str, ...] = ("id",)
    refs: tuple[Ref, ...] = ()
    mutable: tuple[str, ...] = ()
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lists: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.columns)

    @property
    def table(self) -> Table:
        return self.model.__table__  # type: ignore[return-value]

    def key_of(self, row: Row) -> Key:
        return tuple(str(row[k]) for k in self.key)

    def describe(self, key: Key) -> str:
        """``team vision`` or ``membership (vision, bob)``: how messages name an entity."""
        return f"{self.kind} {key[0]}" if len(key) == 1 else f"{self.kind} ({', '.join(key)})"


SUBJECT = ("user", "service_account")

SPECS: dict[str, Spec] = {
    s.kind: s
    for s in (
        Spec("org", models.Org),
        Spec(
            "user", models.User,
            refs=(Ref("org", ("org",), optional=True),),
            mutable=("role", "system_admin"),
            enums={"role": ORG_ROLES},
        ),
        Spec(
            "custom_role", models.CustomRole,
            refs=(Ref("org", ("org",)),),
            mutable=("base", "permissions"),
            enums={"base": CUSTOM_ROLE_BASES},
            lists=("permissions",),
        ),
        Spec(
            "team", models.Team,
            refs=(Ref("org", ("org",)),),
            mutable=("members_can_invite", "public_projects_disabled"),
        ),
        Spec(
            "membership", models.Membership, key=("team", "user"),
            refs=(Ref("team", ("team",), on_delete="cascade"), Ref("user", ("user",), on_delete="cascade")),
            mutable=("role",),
        ),
        Spec("service_account", models.ServiceAccount, refs=(Ref("team", ("team",)),)),
        Spec(
            "project", models.Project,
            refs=(
                Ref("owner", ("team", "user"), prefixed=True),
                Ref("creator", SUBJECT, prefixed=True, optional=True, on_delete="keep"),
            ),
            mutable=("visibility",),
            enums={"visibility": VISIBILITIES},
        ),
        Spec(
            "project_member", models.ProjectMember, key=("project", "member"),
            refs=(
                Ref("project", ("project",), on_delete="cascade"),
                Ref("member", SUBJECT, prefixed=True, on_delete="cascade"),
            ),
        ),
        Spec(
            "run", models.Run,
            refs=(
                Ref("project", ("project",)),
                Ref("creator", SUBJECT, prefixed=True, on_delete="keep"),
                Ref("attributed_to", ("user",), optional=True, on_delete="keep"),
            ),
            mutable=("project", "attributed_to"),
        ),
        Spec(
            "sweep", models.Sweep,
            refs=(Ref("project", ("project",)), Ref("creator", SUBJECT, prefixed=True, on_delete="keep")),
        ),
        Spec(
            "report", models.Report,
            refs=(Ref("project", ("project",)), Ref("creator", SUBJECT, prefixed=True, on_delete="keep")),
        ),
        Spec(
            "artifact", models.Artifact,
            refs=(Ref("project", ("project",)), Ref("creator", SUBJECT, prefixed=True, on_delete="keep")),
            mutable=("type", "aliases"),
            lists=("aliases",),
        ),
        Spec(
            "model_registry", models.ModelRegistry, key=("team",),
            refs=(Ref("team", ("team",)),),
            mutable=("state", "protected_aliases"),
            enums={"state": LEGACY_STATES},
            lists=("protected_aliases",),
        ),
        Spec(
            "model_registry_admin", models.ModelRegistryAdmin, key=("team", "user"),
            refs=(Ref("team", ("model_registry",), on_delete="cascade"), Ref("user", ("user",), on_delete="cascade")),
        ),
        Spec(
            "registered_model", models.RegisteredModel,
            refs=(Ref("team", ("model_registry",)),),
        ),
        Spec(
            "model_version", models.ModelVersion,
            refs=(Ref("model", ("registered_model",)),),
            mutable=("aliases",),
            lists=("aliases",),
        ),
        Spec(
            "registry", models.Registry,
            refs=(Ref("org", ("org",)), Ref("creator", ("user",), optional=True, on_delete="keep")),
            mutable=("visibility", "restrict_types", "accepted_types"),
            enums={"visibility": REGISTRY_VISIBILITIES},
            lists=("accepted_types",),
        ),
        Spec(
            "registry_member", models.RegistryMember, key=("registry", "member"),
            refs=(
                Ref("registry", ("registry",), on_delete="cascade"),
                Ref("member", ("user", "team"), prefixed=True, on_delete="cascade"),
            ),
            mutable=("role",),
            enums={"role": REGISTRY_ROLES},
        ),
        Spec(
            "collection", models.Collection,
            refs=(Ref("registry", ("registry",)), Ref("team", ("team",), optional=True)),
            mutable=("protected_aliases",),
            lists=("protected_aliases",),
        ),
        Spec(
            "collection_version", models.CollectionVersion,
            refs=(Ref("collection", ("collection",)),),
            mutable=("aliases",),
            lists=("aliases",),
        ),
    )
}  # fmt: skip

# Kinds in an order where every reference points to an earlier kind: inserts go forwards,
# a full wipe goes backwards.
ORDER: tuple[str, ...] = tuple(SPECS)


def split_subject(value: str) -> tuple[str, str]:
    """``user:bob`` -> ("user", "bob"). Raises ValueError when there is no kind prefix."""
    kind, sep, ident = value.partition(":")
    if not sep or not kind or not ident:
        raise ValueError(value)
    return kind, ident
