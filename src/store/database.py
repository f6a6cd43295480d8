"""Engines and sessions for SQLite (default, WAL) and PostgreSQL (psycopg 3).

Writes and reads use separate engines. Write transactions are serialized, on both backends, for
their whole length, so every read-check-write of the domain rules sees the latest committed data
and nothing can change under it before it commits:

* SQLite: the write engine opens every transaction with ``BEGIN IMMEDIATE`` (take the database
  write lock up front, so concurrent writers queue instead of failing to upgrade a read lock),
  and writers in one process also queue on a lock.
* PostgreSQL: the first statement of every write transaction locks the one ``store_state`` row
  (``SELECT ... FOR UPDATE``), the row whose update gives the transaction its revision. Under
  READ COMMITTED every later statement of the transaction then reads what committed before it
  got the lock. This holds across store processes and instances on one database.

The read engine uses plain transactions (deferred on SQLite, which WAL lets run beside a writer).

Errors of the database library are translated into the store's own errors here, once
(:func:`translate`), by SQLSTATE or SQLite error name, never by message text.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, StoreError, Unavailable
from store.models import StoreState

DEFAULT_URL = "sqlite:///var/store.db"
URL_ENV = "AUTHZ_DATABASE_URL"


def resolve_url(url: str | None) -> str:
    """The explicit URL, else $AUTHZ_DATABASE_URL, else the SQLite file var/store.db."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def _sqlite_engine(url: str, *, begin: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a transaction acknowledged to a caller survives power loss, not just a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


@dataclass
class Database:
    """The engines and session factories for one database URL."""

    url: str
    write_engine: Engine
    read_engine: Engine
    _write_lock: threading.Lock | None = field(default=None, repr=False)

    @property
    def dialect(self) -> str:
        return self.write_engine.dialect.name

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in a write transaction, committed when the block ends without error.

        Write transactions run one at a time (see the module docstring); the database's errors
        leave as the store's own (:func:`translate`).
        """
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with sessionmaker(self.write_engine, expire_on_commit=False).begin() as session:
                if self.dialect == "postgresql":
                    session.execute(select(StoreState.id).where(StoreState.id == 1).with_for_update())
                yield session
        except DBAPIError as exc:
            raise translate(exc) from exc
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def reading(self, *, consistent: bool = False) -> Iterator[Session]:
        """A read session; ``consistent`` makes every query see one snapshot (REPEATABLE READ)."""
        engine = self.read_engine
        if consistent and self.dialect == "postgresql":
            engine = engine.execution_options(isolation_level="REPEATABLE READ")
        try:
            with sessionmaker(engine).begin() as session:
                yield session
        except DBAPIError as exc:
            raise translate(exc) from exc

    def dispose(self) -> None:
        self.write_engine.dispose()
        self.read_engine.dispose()


# SQLSTATEs (PostgreSQL) and extended result names (SQLite) of the errors we tell apart.
_UNIQUE = frozenset({"23505", "SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"})
_CONFLICT = frozenset({"40001", "40P01", "55P03", "SQLITE_BUSY", "SQLITE_LOCKED"})


def translate(exc: DBAPIError) -> StoreError:
    """The store error for an error of the database library (its driver error in ``exc.orig``)."""
    orig = exc.orig
    code = str(getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None) or "")
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    if isinstance(exc, IntegrityError):
        if code in _UNIQUE:
            return AlreadyExists(f"already exists: {first}")
        return FailedPrecondition(f"refused by the database: {first}")
    if code in _CONFLICT:
        return Aborted("a concurrent write conflicted with this one; retry")
    if isinstance(exc, DataError):
        return InvalidArgument(f"the database refused a value: {first}")
    if isinstance(exc, OperationalError | InterfaceError):
        return Unavailable("the database is unavailable; retry")
    return StoreError(f"database error ({type(orig).__name__})")


def open_database(url: str | None = None) -> Database:
    """Open (not migrate) the database at ``url`` (see :func:`resolve_url`)."""
    resolved = resolve_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return Database(
            url=resolved,
            write_engine=_sqlite_engine(resolved, begin="BEGIN IMMEDIATE"),
            read_engine=_sqlite_engine(resolved, begin="BEGIN"),
            _write_lock=threading.Lock(),
        )
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg2", "default"):
        # psycopg 3 is the driver we ship with; accept plain postgresql:// URLs.
        parsed = parsed.set(drivername="postgresql+psycopg")
    write = create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
    read = create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
    return Database(url=resolved, write_engine=write, read_engine=read)
