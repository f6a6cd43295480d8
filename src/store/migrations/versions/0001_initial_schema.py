"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 19:42:30.614239
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("committed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("revision", "seq"),
    )
    op.create_table("orgs", sa.Column("id", sa.String(length=256), nullable=False), sa.PrimaryKeyConstraint("id"))
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("owner", sa.String(length=256), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("creator", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_projects_owner"), ["owner"], unique=False)

    op.create_table(
        "store_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("oldest_retained", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("org", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("system_admin", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_org"), ["org"], unique=False)

    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("project", sa.String(length=256), nullable=False),
        sa.Column("creator", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=256), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"],
            ["projects.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_creator"), ["creator"], unique=False)
        batch_op.create_index(batch_op.f("ix_artifacts_project"), ["project"], unique=False)

    op.create_table(
        "custom_roles",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("org", sa.String(length=256), nullable=False),
        sa.Column("base", sa.String(length=16), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org"],
            ["orgs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "project_members",
        sa.Column("project", sa.String(length=256), nullable=False),
        sa.Column("member", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"],
            ["projects.id"],
        ),
        sa.PrimaryKeyConstraint("project", "member"),
    )
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_members_member"), ["member"], unique=False)

    op.create_table(
        "registries",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("org", sa.String(length=256), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("restrict_types", sa.Boolean(), nullable=False),
        sa.Column("accepted_types", sa.JSON(), nullable=False),
        sa.Column("creator", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["org"],
            ["orgs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("registries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registries_org"), ["org"], unique=False)

    op.create_table(
        "reports",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("project", sa.String(length=256), nullable=False),
        sa.Column("creator", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"],
            ["projects.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reports_creator"), ["creator"], unique=False)
        batch_op.create_index(batch_op.f("ix_reports_project"), ["project"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("project", sa.String(length=256), nullable=False),
        sa.Column("creator", sa.String(length=256), nullable=False),
        sa.Column("attributed_to", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"],
            ["projects.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_creator"), ["creator"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_project"), ["project"], unique=False)

    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("project", sa.String(length=256), nullable=False),
        sa.Column("creator", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"],
            ["projects.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sweeps_creator"), ["creator"], unique=False)
        batch_op.create_index(batch_op.f("ix_sweeps_project"), ["project"], unique=False)

    op.create_table(
        "teams",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("org", sa.String(length=256), nullable=False),
        sa.Column("members_can_invite", sa.Boolean(), nullable=False),
        sa.Column("public_projects_disabled", sa.Boolean(), nullable=False),
        sa.Column("storage_bucket", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["org"],
            ["orgs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_teams_org"), ["org"], unique=False)

    op.create_table(
        "collections",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("registry", sa.String(length=256), nullable=False),
        sa.Column("team", sa.String(length=256), nullable=False),
        sa.Column("protected_aliases", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("lineage", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry"],
            ["registries.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_collections_registry"), ["registry"], unique=False)

    op.create_table(
        "memberships",
        sa.Column("team", sa.String(length=256), nullable=False),
        sa.Column("user", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["team"],
            ["teams.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("team", "user"),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memberships_user"), ["user"], unique=False)

    op.create_table(
        "model_registries",
        sa.Column("team", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("protected_aliases", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team"],
            ["teams.id"],
        ),
        sa.PrimaryKeyConstraint("team"),
    )
    op.create_table(
        "registry_members",
        sa.Column("registry", sa.String(length=256), nullable=False),
        sa.Column("member", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["registry"],
            ["registries.id"],
        ),
        sa.PrimaryKeyConstraint("registry", "member"),
    )
    with op.batch_alter_table("registry_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registry_members_member"), ["member"], unique=False)

    op.create_table(
        "service_accounts",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("team", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["team"],
            ["teams.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("service_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_accounts_team"), ["team"], unique=False)

    op.create_table(
        "collection_versions",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("collection", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=256), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("lineage", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection"],
            ["collections.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("collection_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_collection_versions_collection"), ["collection"], unique=False)

    op.create_table(
        "model_registry_admins",
        sa.Column("team", sa.String(length=256), nullable=False),
        sa.Column("user", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["team"],
            ["model_registries.team"],
        ),
        sa.ForeignKeyConstraint(
            ["user"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("team", "user"),
    )
    op.create_table(
        "registered_models",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("team", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("lineage", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team"],
            ["model_registries.team"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("registered_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registered_models_team"), ["team"], unique=False)

    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("lineage", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model"],
            ["registered_models.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_versions_model"), ["model"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_versions_model"))

    op.drop_table("model_versions")
    with op.batch_alter_table("registered_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registered_models_team"))

    op.drop_table("registered_models")
    op.drop_table("model_registry_admins")
    with op.batch_alter_table("collection_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collection_versions_collection"))

    op.drop_table("collection_versions")
    with op.batch_alter_table("service_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_accounts_team"))

    op.drop_table("service_accounts")
    with op.batch_alter_table("registry_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_members_member"))

    op.drop_table("registry_members")
    op.drop_table("model_registries")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memberships_user"))

    op.drop_table("memberships")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collections_registry"))

    op.drop_table("collections")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teams_org"))

    op.drop_table("teams")
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sweeps_project"))
        batch_op.drop_index(batch_op.f("ix_sweeps_creator"))

    op.drop_table("sweeps")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_project"))
        batch_op.drop_index(batch_op.f("ix_runs_creator"))

    op.drop_table("runs")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reports_project"))
        batch_op.drop_index(batch_op.f("ix_reports_creator"))

    op.drop_table("reports")
    with op.batch_alter_table("registries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registries_org"))

    op.drop_table("registries")
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_members_member"))

    op.drop_table("project_members")
    op.drop_table("custom_roles")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_project"))
        batch_op.drop_index(batch_op.f("ix_artifacts_creator"))

    op.drop_table("artifacts")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_org"))

    op.drop_table("users")
    op.drop_table("store_state")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_owner"))

    op.drop_table("projects")
    op.drop_table("orgs")
    op.drop_table("changes")
