"""`authz store serve|migrate|compact` (the store service and its database) and `authz world load`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import grpc

from authz.cli.options import (
    DEFAULT_STORE,
    DEFAULT_TOKEN_FILE,
    check_listen_flags,
    database_url_option,
    fail_rpc,
    observability_options,
    observe,
    start_error,
    store_token,
    tls_server_options,
    token_file_option,
    wait_for_signal,
)


@click.group()
def store() -> None:
    """The store service: orgs, teams, projects, runs, registries; revisions and a change feed."""


@store.command("serve")
@click.option("--listen", default=DEFAULT_STORE, show_default=True, help="Address to listen on.")
@database_url_option
@token_file_option
@click.option(
    "--allow-test-reset",
    is_flag=True,
    help="Let ImportWorld replace the whole content (test stacks only; needs the token).",
)
@tls_server_options
@observability_options
@click.option(
    "--notify/--no-notify",
    default=True,
    show_default=True,
    help="PostgreSQL: NOTIFY other store instances of each commit and LISTEN for theirs, so Watch streams "
    "wake at once; without, they poll (every 0.25 s). Ignored on SQLite.",
)
def store_serve(
    listen: str, database_url: str | None, token_file: Path | None, allow_test_reset: bool, tls_cert: Path | None,
    tls_key: Path | None, tls_client_ca: Path | None, insecure: bool, log_format: str, metrics: str | None,
    metrics_port: int | None, otel: bool, notify: bool,
) -> None:  # fmt: skip
    """Run the store service (migrates the schema first). A token is generated if none is set.

    Listens on loopback in plain text by default; any other address needs --tls-cert and --tls-key
    (or --insecure).
    """
    from servicekit.logs import say
    from store.server import StoreConfig, create_server, ensure_token

    metrics = observe(log_format, metrics, metrics_port)
    check_listen_flags(listen, tls_cert, tls_key, tls_client_ca, insecure)
    token = ensure_token(token_file or DEFAULT_TOKEN_FILE)
    try:
        server = create_server(
            StoreConfig(
                listen=listen, database_url=database_url, token=token, allow_test_reset=allow_test_reset,
                tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca, insecure=insecure,
                metrics=metrics, tracing=otel, notify=notify,
            )
        )  # fmt: skip
    except (ValueError, OSError, RuntimeError) as exc:
        raise start_error("the store", exc) from None
    say("authz.cli", f"store listening on {listen.rsplit(':', 1)[0]}:{server.port}")  # JSON too with --log-format json
    wait_for_signal()  # SIGHUP: the store writes no log file of its own; it keeps serving
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


@click.group()
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
        StoreClient(store_address, store_token(token_file)) as client,
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
            raise fail_rpc(exc) from None
    click.echo(f"{file}: {result.created} created, {result.unchanged} unchanged, at revision {result.revision}")
