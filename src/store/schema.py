"""Schema migrations with Alembic: `authz store migrate` and the start of `authz store serve`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select

from store.database import Database
from store.models import StoreState

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(db: Database, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` and make sure the revision counter row exists."""
    config = alembic_config()
    with db.write_engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
    with db.writing() as session:
        if session.scalar(select(StoreState.id).where(StoreState.id == 1)) is None:
            session.execute(insert(StoreState).values(id=1, revision=0, oldest_retained=0))


def current_schema(db: Database) -> str | None:
    """The Alembic revision the database is at, or None when it was never migrated."""
    with db.read_engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_schema() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
