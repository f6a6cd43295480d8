"""The `authz` command line. Each command parses flags and calls a factory; no logic lives here."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click
import grpc

from store.server import DEFAULT_TOKEN_FILE, TOKEN_ENV, read_token

DEFAULT_STORE = "127.0.0.1:50052"
DEMO_WORLD = Path("examples/demo-world.yaml")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _store_token(token_file: Path | None) -> str:
    token = read_token(token_file)
    if not token:
        raise click.UsageError(f"no store token: set {TOKEN_ENV} or write one to {token_file or DEFAULT_TOKEN_FILE}")
    return token


def _fail_rpc(exc: grpc.RpcError) -> click.ClickException:
    code = exc.code()
    return click.ClickException(f"{code.name}: {exc.details()}")


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Authorization for an ML platform: a store of its data and a decision service over Casbin policies."""
    _setup_logging(verbose)


# ---- store ------------------------------------------------------------------------------------


@main.group()
def store() -> None:
    """The store service: orgs, teams, projects, runs, registries; revisions and a change feed."""


database_url_option = click.option(
    "--database-url",
    envvar="AUTHZ_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL (default: $AUTHZ_DATABASE_URL, else sqlite:///var/store.db). "
    "PostgreSQL: postgresql+psycopg://user@host/db.",
)
token_file_option = click.option(
    "--token-file",
    type=click.Path(path_type=Path),
    default=None,
    help=f"File holding the store token when ${TOKEN_ENV} is unset (default {DEFAULT_TOKEN_FILE}).",
)


@store.command("serve")
@click.option("--listen", default=DEFAULT_STORE, show_default=True, help="Address to listen on.")
@database_url_option
@token_file_option
@click.option(
    "--allow-test-reset",
    is_flag=True,
    help="Let ImportWorld replace the whole content (test stacks only; needs the token).",
)
def store_serve(listen: str, database_url: str | None, token_file: Path | None, allow_test_reset: bool) -> None:
    """Run the store service (migrates the schema first). A token is generated if none is set."""
    from store.server import StoreConfig, create_server, ensure_token

    token = ensure_token(token_file or DEFAULT_TOKEN_FILE)
    server = create_server(
        StoreConfig(listen=listen, database_url=database_url, token=token, allow_test_reset=allow_test_reset)
    )
    click.echo(f"store listening on {listen.rsplit(':', 1)[0]}:{server.port}", err=True)
    _wait_for_signal()
    server.stop(grace=2)


@store.command("migrate")
@database_url_option
def store_migrate(database_url: str | None) -> None:
    """Create or upgrade the store's schema (Alembic) to the latest revision."""
    from store.database import open_database
    from store.schema import current_schema, head_schema, migrate

    db = open_database(database_url)
    try:
        before = current_schema(db)
        migrate(db)
        click.echo(f"schema at {head_schema()} (was {before or 'empty'})")
    finally:
        db.dispose()


@store.command("compact")
@database_url_option
@click.option("--keep", type=int, default=100_000, show_default=True, help="Revisions of history to keep.")
def store_compact(database_url: str | None, keep: int) -> None:
    """Forget change-log history older than the last KEEP revisions (Watch then needs a Snapshot)."""
    from store.changes import compact, current
    from store.database import open_database

    db = open_database(database_url)
    try:
        with db.writing() as session:
            last, _ = current(session)
            deleted = compact(session, last - keep)
        click.echo(f"deleted {deleted} change rows; history kept after revision {max(last - keep, 0)}")
    finally:
        db.dispose()


# ---- world ------------------------------------------------------------------------------------


@main.group()
def world() -> None:
    """Worlds: the platform's data in the decision-test YAML format."""


@world.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--store", "store_address", default=DEFAULT_STORE, show_default=True, help="Store address.")
@click.option("--replace", is_flag=True, help="Replace the store's whole content (store needs --allow-test-reset).")
@token_file_option
def world_load(file: Path, store_address: str, replace: bool, token_file: Path | None) -> None:
    """Load the world of FILE into a running store. Loading the same file again changes nothing."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from store.client import StoreClient

    document = file.read_bytes()
    with (
        StoreClient(store_address, _store_token(token_file)) as client,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            transient=True,
            disable=len(document) < (4 << 20) or not sys.stderr.isatty(),
        ) as progress,
    ):
        task = progress.add_task(f"sending {file.name}", total=len(document))
        try:
            result = client.import_world(
                document, name=str(file), replace=replace, progress=lambda n: progress.advance(task, n)
            )
        except grpc.RpcError as exc:
            raise _fail_rpc(exc) from None
    click.echo(f"{file}: {result.created} created, {result.unchanged} unchanged, at revision {result.revision}")


# ---- up ---------------------------------------------------------------------------------------


@main.command("up")
@click.option("--store-port", default=50052, show_default=True, help="Port of the store service (loopback).")
@database_url_option
@click.option(
    "--world",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEMO_WORLD,
    show_default=True,
    help="World to load at start (skipped when the file does not exist).",
)
@click.option("--allow-test-reset", is_flag=True, help="Let ImportWorld replace the whole content.")
def up(store_port: int, database_url: str | None, world: Path, allow_test_reset: bool) -> None:
    """Start the store (SQLite by default) with the demo world loaded, and print example calls."""
    from store.client import StoreClient
    from store.server import StoreConfig, create_server, ensure_token

    token = ensure_token(DEFAULT_TOKEN_FILE)
    server = create_server(
        StoreConfig(
            listen=f"127.0.0.1:{store_port}",
            database_url=database_url,
            token=token,
            allow_test_reset=allow_test_reset,
        )
    )
    address = f"127.0.0.1:{server.port}"
    try:
        if world.is_file():
            with StoreClient(address, token) as client:
                result = client.import_world(world.read_bytes(), name=str(world))
            click.echo(f"loaded {world}: {result.created} created, {result.unchanged} unchanged, "
                       f"revision {result.revision}")  # fmt: skip
        click.echo(_examples(address))
        _wait_for_signal()
    except grpc.RpcError as exc:
        raise _fail_rpc(exc) from None
    finally:
        server.stop(grace=1)


def _examples(store_address: str) -> str:
    return f"""
store.v1.Store is serving on {store_address} (token in {DEFAULT_TOKEN_FILE}). Try, in another shell:

  .venv/bin/authz world load {DEMO_WORLD} --store {store_address}      # idempotent: 0 created
  grpcurl -plaintext -H "authorization: Bearer $(cat {DEFAULT_TOKEN_FILE})" \\
      -d '{{"kind": "team"}}' {store_address} store.v1.Store/List

Press Ctrl-C to stop."""


def run() -> None:  # pragma: no cover - console entry for `python -m authz.cli`
    main(prog_name=os.path.basename(sys.argv[0]) or "authz")


if __name__ == "__main__":  # pragma: no cover
    run()
