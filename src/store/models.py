"""SQLAlchemy mapped classes: one table per entity kind of the world format, plus the change log.

Ids are the strings a world file uses. Subjects and owners that can be of several kinds are
stored as ``kind:id`` (``user:bob``, ``service_account:ci-bot``, ``team:vision``), so a run keeps
its creator recorded after that user leaves (G5). Lists (aliases, accepted types) are JSON.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(256)


class Base(DeclarativeBase):
    pass


class Org(Base):
    __tablename__ = "orgs"
    id: Mapped[str] = mapped_column(ID, primary_key=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org: Mapped[str] = mapped_column(ID, default="", index=True)
    role: Mapped[str] = mapped_column(String(16), default="member")
    system_admin: Mapped[bool] = mapped_column(Boolean, default=False)


class CustomRole(Base):
    __tablename__ = "custom_roles"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"))
    base: Mapped[str] = mapped_column(String(16))
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), index=True)
    members_can_invite: Mapped[bool] = mapped_column(Boolean, default=False)
    public_projects_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    storage_bucket: Mapped[str] = mapped_column(String(1024), default="")


class Membership(Base):
    __tablename__ = "memberships"
    team: Mapped[str] = mapped_column(ID, ForeignKey("teams.id"), primary_key=True)
    user: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(ID)


class ServiceAccount(Base):
    __tablename__ = "service_accounts"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    team: Mapped[str] = mapped_column(ID, ForeignKey("teams.id"), index=True)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    owner: Mapped[str] = mapped_column(ID, index=True)
    visibility: Mapped[str] = mapped_column(String(16))
    creator: Mapped[str] = mapped_column(ID, default="")


class ProjectMember(Base):
    __tablename__ = "project_members"
    project: Mapped[str] = mapped_column(ID, ForeignKey("projects.id"), primary_key=True)
    member: Mapped[str] = mapped_column(ID, primary_key=True, index=True)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project: Mapped[str] = mapped_column(ID, ForeignKey("projects.id"), index=True)
    creator: Mapped[str] = mapped_column(ID, index=True)
    attributed_to: Mapped[str] = mapped_column(ID, default="")


class Sweep(Base):
    __tablename__ = "sweeps"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project: Mapped[str] = mapped_column(ID, ForeignKey("projects.id"), index=True)
    creator: Mapped[str] = mapped_column(ID, index=True)


class Report(Base):
    __tablename__ = "reports"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project: Mapped[str] = mapped_column(ID, ForeignKey("projects.id"), index=True)
    creator: Mapped[str] = mapped_column(ID, index=True)


class Artifact(Base):
    __tablename__ = "artifacts"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project: Mapped[str] = mapped_column(ID, ForeignKey("projects.id"), index=True)
    creator: Mapped[str] = mapped_column(ID, index=True)
    type: Mapped[str] = mapped_column(ID, default="")
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)


class ModelRegistry(Base):
    """The legacy model registry of one team (M1-M7)."""

    __tablename__ = "model_registries"
    team: Mapped[str] = mapped_column(ID, ForeignKey("teams.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    protected_aliases: Mapped[list[str]] = mapped_column(JSON, default=list)


class ModelRegistryAdmin(Base):
    __tablename__ = "model_registry_admins"
    team: Mapped[str] = mapped_column(ID, ForeignKey("model_registries.team"), primary_key=True)
    user: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), primary_key=True)


class RegisteredModel(Base):
    __tablename__ = "registered_models"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    team: Mapped[str] = mapped_column(ID, ForeignKey("model_registries.team"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=0)
    lineage: Mapped[str] = mapped_column(Text, default="")


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    model: Mapped[str] = mapped_column(ID, ForeignKey("registered_models.id"), index=True)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[int] = mapped_column(BigInteger, default=0)
    lineage: Mapped[str] = mapped_column(Text, default="")


class Registry(Base):
    __tablename__ = "registries"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), index=True)
    visibility: Mapped[str] = mapped_column(String(16))
    restrict_types: Mapped[bool] = mapped_column(Boolean, default=False)
    accepted_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    creator: Mapped[str] = mapped_column(ID, default="")


class RegistryMember(Base):
    __tablename__ = "registry_members"
    # "registry" is reserved on declarative classes; the column keeps the world format's name.
    registry_id: Mapped[str] = mapped_column("registry", ID, ForeignKey("registries.id"), primary_key=True)
    member: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(32), default="viewer")


class Collection(Base):
    __tablename__ = "collections"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    registry_id: Mapped[str] = mapped_column("registry", ID, ForeignKey("registries.id"), index=True)
    team: Mapped[str] = mapped_column(ID, default="")
    protected_aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[int] = mapped_column(BigInteger, default=0)
    lineage: Mapped[str] = mapped_column(Text, default="")


class CollectionVersion(Base):
    __tablename__ = "collection_versions"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    collection: Mapped[str] = mapped_column(ID, ForeignKey("collections.id"), index=True)
    type: Mapped[str] = mapped_column(ID, default="")
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[int] = mapped_column(BigInteger, default=0)
    lineage: Mapped[str] = mapped_column(Text, default="")


class StoreState(Base):
    """One row: the last committed revision and the oldest revision Watch can resume after.

    Writers bump ``revision`` with an UPDATE as the last statement of their transaction; the row
    lock (PostgreSQL) or the database write lock (SQLite) makes revisions follow commit order.
    """

    __tablename__ = "store_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    oldest_retained: Mapped[int] = mapped_column(BigInteger, default=0)


class ChangeRecord(Base):
    """One entity change of one revision, in the order it was made (the change log)."""

    __tablename__ = "changes"
    revision: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    op: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)
    committed_at: Mapped[int] = mapped_column(BigInteger, default=0)  # unix milliseconds
