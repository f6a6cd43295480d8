"""Shared fixtures: databases (SQLite file and PostgreSQL schema), running store servers."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from authz.client import Client
from authz.server import DecisionServer, ServerConfig
from authz.server import create_server as create_decision_server
from store.client import StoreClient
from store.database import Database, open_database
from store.schema import migrate
from store.server import StoreConfig, StoreServer, create_server

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token-0123456789"
PG_ENV = "AUTHZ_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    """The PostgreSQL server tests use: $AUTHZ_TEST_POSTGRES_URL. In CI it must be set."""
    url = os.environ.get(PG_ENV)
    if not url and os.environ.get("CI"):
        raise RuntimeError(f"CI must set {PG_ENV}: the PostgreSQL tests may not be skipped there")
    return url


def _pg_schema_url(base: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = postgres_url()
    if not base:
        pytest.skip(f"set {PG_ENV} to run the PostgreSQL variant")
    yield from _pg_schema_url(base)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated database."""
    database = open_database(database_url)
    migrate(database)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def store_server(database_url: str) -> Iterator[StoreServer]:
    """A store server on a free loopback port over a fresh database, allowing test resets."""
    server = create_server(
        StoreConfig(listen="127.0.0.1:0", database_url=database_url, token=TOKEN, allow_test_reset=True)
    )
    try:
        yield server
    finally:
        server.stop(grace=0)


@pytest.fixture
def store_client(store_server: StoreServer) -> Iterator[StoreClient]:
    with StoreClient(f"127.0.0.1:{store_server.port}", TOKEN) as client:
        yield client


POLICIES = ROOT / "policies"
DEMO_WORLD = ROOT / "examples" / "demo-world.yaml"


@dataclass
class Stack:
    """A store and a decision service, both real, on free loopback ports."""

    store: StoreServer
    decision: DecisionServer
    store_client: StoreClient
    client: Client
    policies: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.decision.port}"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Both services over a SQLite store holding the demo world, with a private copy of policies/."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    store = create_server(
        StoreConfig(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'store.db'}", token=TOKEN,
                    allow_test_reset=True)
    )  # fmt: skip
    store_client = StoreClient(f"127.0.0.1:{store.port}", TOKEN)
    revision = store_client.import_world(DEMO_WORLD.read_bytes()).revision
    decision = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{store.port}", store_token=TOKEN, policies=policies,
                     reload_interval=0.1)
    )  # fmt: skip
    assert decision.replica.wait_for(revision, 30)
    client = Client(f"127.0.0.1:{decision.port}")
    try:
        yield Stack(store, decision, store_client, client, policies)
    finally:
        client.close()
        store_client.close()
        decision.stop(0)
        store.stop(0)
