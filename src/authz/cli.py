"""The `authz` command line. Each command parses flags and calls a factory; no logic lives here."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
import grpc

from authz.security import DEFAULT_TOKEN_FILE as DEFAULT_DECISION_TOKEN_FILE
from authz.security import TOKEN_ENV as DECISION_TOKEN_ENV
from store.server import DEFAULT_TOKEN_FILE, TOKEN_ENV, read_token

DEFAULT_STORE = "127.0.0.1:50052"
DEMO_WORLD = Path("examples/demo-world.yaml")


def _setup_logging(verbose: bool) -> None:
    from servicekit.text import EscapingFormatter

    handler = logging.StreamHandler(sys.stderr)
    # Callers' text (ids, world names, error messages) reaches log lines: keep each record on one line.
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


def _store_token(token_file: Path | None) -> str:
    token = read_token(token_file)
    if not token:
        raise click.UsageError(f"no store token: set {TOKEN_ENV} or write one to {token_file or DEFAULT_TOKEN_FILE}")
    return token


def _fail_rpc(exc: grpc.RpcError) -> click.ClickException:
    code = exc.code()
    return click.ClickException(f"{code.name}: {exc.details()}")


def _wait_for_signal(on_hangup: Callable[[], object] | None = None, done: Callable[[], bool] | None = None) -> None:
    """Block until SIGINT or SIGTERM, or until ``done()`` (asked every half second) is true.

    SIGHUP never stops a server (its default action would kill it): it is how logrotate asks a
    daemon to reopen its logs, so it calls ``on_hangup`` (reopen the audit log) or is ignored.
    The handlers only note the signal; the work runs here, in the main thread, between waits.
    """
    received: list[int] = []
    wake = threading.Event()

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        wake.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, note)
    while True:
        wake.wait(None if done is None else 0.5)
        wake.clear()
        while received:
            if received.pop(0) != signal.SIGHUP:
                return
            if on_hangup is not None:
                on_hangup()
            else:
                logging.getLogger("authz.cli").info("SIGHUP: no log file to reopen; still serving")
        if done is not None and done():
            return


def _start_error(what: str, exc: BaseException) -> click.ClickException:
    """The one line a server that cannot start prints (a taken address, an audit log it cannot open, ...)."""
    return click.ClickException(f"{what} did not start: {exc}")


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
_PEM = click.Path(exists=True, dir_okay=False, path_type=Path)
_F = TypeVar("_F", bound=Callable[..., Any])


def tls_server_options(function: _F) -> _F:
    """--tls-cert, --tls-key, --tls-client-ca and --insecure, for a command that listens."""
    for option in reversed((
        click.option("--tls-cert", type=_PEM, metavar="FILE", help="Serve TLS with this certificate (PEM chain)."),
        click.option("--tls-key", type=_PEM, metavar="FILE", help="The private key of --tls-cert (PEM)."),
        click.option(
            "--tls-client-ca", type=_PEM, metavar="FILE",
            help="Mutual TLS: clients must present a certificate signed by this CA (PEM).",
        ),
        click.option(
            "--insecure", is_flag=True,
            help="Allow plain text on an address other than loopback (logged as a WARNING). Without TLS only "
            "loopback addresses are allowed.",
        ),
    )):  # fmt: skip
        function = option(function)
    return function


def tls_client_options(prefix: str, what: str) -> Callable[[_F], _F]:
    """--{prefix}ca, --{prefix}cert, --{prefix}key and --{prefix}tls, for a command that calls ``what``.

    The parameters are named {prefix}ca_file, {prefix}cert_file, {prefix}key_file and {prefix}tls
    (with - as _).
    """
    name = prefix.replace("-", "_")

    def decorate(function: _F) -> _F:
        for option in reversed((
            click.option(f"--{prefix}ca", f"{name}ca_file", type=_PEM, metavar="FILE",
                         help=f"Connect to the {what} over TLS, trusting this root CA (PEM)."),
            click.option(f"--{prefix}cert", f"{name}cert_file", type=_PEM, metavar="FILE",
                         help=f"Client certificate for the {what} (mutual TLS; with --{prefix}key)."),
            click.option(f"--{prefix}key", f"{name}key_file", type=_PEM, metavar="FILE",
                         help=f"The private key of --{prefix}cert."),
            click.option(f"--{prefix}tls", f"{name}tls", is_flag=True,
                         help=f"Connect to the {what} over TLS with the system's root CAs."),
        )):  # fmt: skip
            function = option(function)
        return function

    return decorate


def _check_listen(listen: str, tls_cert: Path | None, tls_key: Path | None, tls_client_ca: Path | None,
                  insecure: bool) -> None:  # fmt: skip
    """A usage error, before anything starts, for TLS flags that do not fit or plain text off loopback."""
    from authz.security import check_listen

    try:
        check_listen(listen, cert=tls_cert, key=tls_key, client_ca=tls_client_ca, insecure=insecure)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _check_client_tls(cert: Path | None, key: Path | None, prefix: str = "") -> None:
    if (cert is None) != (key is None):
        raise click.UsageError(f"--{prefix}cert and --{prefix}key go together")


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
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics (write rates, revision) on http://127.0.0.1:PORT/metrics.",
)
def store_serve(
    listen: str, database_url: str | None, token_file: Path | None, allow_test_reset: bool, tls_cert: Path | None,
    tls_key: Path | None, tls_client_ca: Path | None, insecure: bool, metrics_port: int | None,
) -> None:  # fmt: skip
    """Run the store service (migrates the schema first). A token is generated if none is set.

    Listens on loopback in plain text by default; any other address needs --tls-cert and --tls-key
    (or --insecure).
    """
    from store.server import StoreConfig, create_server, ensure_token

    _check_listen(listen, tls_cert, tls_key, tls_client_ca, insecure)
    token = ensure_token(token_file or DEFAULT_TOKEN_FILE)
    try:
        server = create_server(
            StoreConfig(
                listen=listen, database_url=database_url, token=token, allow_test_reset=allow_test_reset,
                tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca, insecure=insecure,
                metrics_port=metrics_port,
            )
        )  # fmt: skip
    except (ValueError, OSError, RuntimeError) as exc:
        raise _start_error("the store", exc) from None
    click.echo(f"store listening on {listen.rsplit(':', 1)[0]}:{server.port}", err=True)
    _wait_for_signal()  # SIGHUP: the store writes no log file of its own; it keeps serving
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


# ---- decision service -------------------------------------------------------------------------

DEFAULT_SERVER = "127.0.0.1:50051"
engine_option = click.option(
    "--engine",
    type=click.Choice(["compiled", "casbin"]),
    default="compiled",
    show_default=True,
    help="compiled: the fast path; casbin: pycasbin's Enforcer, the reference semantics.",
)
policies_option = click.option(
    "--policies",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("policies"),
    show_default=True,
    help="Policy directory (model.conf and *.csv); edits are picked up live.",
)


@main.command("serve")
@click.option("--listen", default=DEFAULT_SERVER, show_default=True, help="Address to listen on.")
@click.option("--store", "store_address", default=DEFAULT_STORE, show_default=True, help="Store address.")
@policies_option
@token_file_option
@click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path), help="Append decisions as JSON lines.")
@engine_option
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes sharing the port (SO_REUSEPORT), each with its own replica; use one per core.",
)
@tls_server_options
@click.option(
    "--require-token",
    is_flag=True,
    help=f"Decision calls need 'authorization: Bearer <token>' even on loopback (always required elsewhere); "
    f"the token is ${DECISION_TOKEN_ENV}, else --authz-token-file, generated there when missing.",
)
@click.option(
    "--authz-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"File holding the decision-call token when ${DECISION_TOKEN_ENV} is unset "
    f"(default {DEFAULT_DECISION_TOKEN_FILE}).",
)
@tls_client_options("store-", "store")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics (with --workers, PORT, PORT+1, ...).",
)
def serve(
    listen: str, store_address: str, policies: Path, token_file: Path | None, audit_log: Path | None, engine: str,
    workers: int, tls_cert: Path | None, tls_key: Path | None, tls_client_ca: Path | None, insecure: bool,
    require_token: bool, authz_token_file: Path | None, store_ca_file: Path | None, store_cert_file: Path | None,
    store_key_file: Path | None, store_tls: bool, metrics_port: int | None,
) -> None:  # fmt: skip
    """Run the decision service: follow the store, answer Check, BatchCheck and the list calls.

    Listens on loopback in plain text by default; any other address needs --tls-cert and --tls-key
    (or --insecure), and then decision calls need a bearer token.
    """
    from authz import security
    from authz.errors import PolicyError
    from authz.policy import load_policy
    from authz.server import ServerConfig

    _check_listen(listen, tls_cert, tls_key, tls_client_ca, insecure)
    _check_client_tls(store_cert_file, store_key_file, "store-")
    tokens = security.tokens_required(listen, True if require_token else None)
    config = ServerConfig(
        listen=listen, store=store_address, store_token=_store_token(token_file), policies=policies,
        audit_log=audit_log, engine=engine, tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
        insecure=insecure, require_token=tokens, token=security.ensure_token(authz_token_file) if tokens else "",
        store_ca=store_ca_file, store_cert=store_cert_file, store_key=store_key_file, store_tls=store_tls,
        metrics_port=metrics_port,
    )  # fmt: skip
    try:
        load_policy(policies)
    except PolicyError as exc:
        raise click.ClickException(f"the policy does not load: {exc}") from None
    if workers == 1:
        _serve_worker(config)
        return
    if listen.endswith(":0"):
        raise click.BadParameter("several workers need a fixed port", param_hint="--listen")
    import dataclasses
    import multiprocessing

    from authz.audit import AuditLog

    # What would stop every worker is refused here, as one line, before any starts: an address
    # another server holds (the workers share theirs with each other only), an audit log that
    # cannot be opened.
    try:
        security.check_free(listen)
        if audit_log is not None:
            AuditLog(audit_log).close()
    except OSError as exc:
        raise _start_error("the decision service", exc) from None
    context = multiprocessing.get_context("spawn")
    shared = dataclasses.replace(config, reuse_port=True)  # the workers share the port, with each other only
    children = [
        context.Process(
            target=_serve_child,
            args=(dataclasses.replace(shared, metrics_port=None if metrics_port is None else metrics_port + n),),
            name=f"authz-{n}",
        )
        for n in range(workers)
    ]
    for child in children:
        child.start()
    click.echo(f"decision service: {workers} workers on {listen}", err=True)

    def hangup() -> None:  # each worker reopens its own audit log
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGHUP)

    try:
        # A worker that stops (it could not start, it crashed) stops the whole service, so that a
        # supervisor sees it, instead of serving on with fewer workers.
        _wait_for_signal(hangup, done=lambda: any(child.exitcode is not None for child in children))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(10)
    failed = [child for child in children if child.exitcode not in (0, -signal.SIGTERM, None)]
    if failed:
        raise click.ClickException(
            f"worker {failed[0].name} stopped with exit code {failed[0].exitcode}; the service stopped"
        )


def _serve_worker(config: Any) -> None:
    """One decision-service process: serve until SIGINT or SIGTERM; SIGHUP reopens the audit log."""
    from authz.server import create_server

    if not logging.getLogger().handlers:
        _setup_logging(False)
    try:
        server = create_server(config)
    except (ValueError, OSError, RuntimeError) as exc:
        raise _start_error("the decision service", exc) from None
    click.echo(f"decision service listening on {config.listen.rsplit(':', 1)[0]}:{server.port}", err=True)
    _wait_for_signal(server.reopen_audit_log)
    server.stop(grace=2)


def _serve_child(config: Any) -> None:
    """A worker process of `serve --workers N`: a start error is one line and exit code 1."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until _serve_worker handles it: never die of it
    try:
        _serve_worker(config)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


@main.command("up")
@click.option("--port", default=50051, show_default=True, help="Port of the decision service (loopback).")
@click.option("--store-port", default=50052, show_default=True, help="Port of the store service (loopback).")
@database_url_option
@click.option(
    "--world",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEMO_WORLD,
    show_default=True,
    help="World to load at start (skipped when the file does not exist).",
)
@policies_option
@click.option("--allow-test-reset", is_flag=True, help="Let ImportWorld replace the whole content.")
@click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path), help="Append decisions as JSON lines.")
@engine_option
@click.option(
    "--require-token",
    is_flag=True,
    help=f"Decision calls need a bearer token: ${DECISION_TOKEN_ENV}, else {DEFAULT_DECISION_TOKEN_FILE} "
    "(generated when missing; `authz check` reads it).",
)
def up(
    port: int,
    store_port: int,
    database_url: str | None,
    world: Path,
    policies: Path,
    allow_test_reset: bool,
    audit_log: Path | None,
    engine: str,
    require_token: bool,
) -> None:
    """Start the store (SQLite by default) and the decision service, load the demo world, print examples.

    Both listen on loopback in plain text; --require-token makes decision calls need a token.
    """
    from authz import security
    from authz.errors import PolicyError
    from authz.server import ServerConfig
    from authz.server import create_server as create_decision_server
    from store.client import StoreClient
    from store.server import StoreConfig, create_server, ensure_token

    token = ensure_token(DEFAULT_TOKEN_FILE)
    decision_token = security.ensure_token(DEFAULT_DECISION_TOKEN_FILE) if require_token else ""
    try:
        store_server = create_server(
            StoreConfig(
                listen=f"127.0.0.1:{store_port}",
                database_url=database_url,
                token=token,
                allow_test_reset=allow_test_reset,
            )
        )
    except (ValueError, OSError, RuntimeError) as exc:
        raise _start_error("the store", exc) from None
    store_address = f"127.0.0.1:{store_server.port}"
    decision_server = None
    try:
        revision = 0
        if world.is_file():
            with StoreClient(store_address, token) as client:
                result = client.import_world(world.read_bytes(), name=str(world))
            revision = result.revision
            click.echo(f"loaded {world}: {result.created} created, {result.unchanged} unchanged, "
                       f"revision {result.revision}")  # fmt: skip
        try:
            decision_server = create_decision_server(
                ServerConfig(
                    listen=f"127.0.0.1:{port}", store=store_address, store_token=token, policies=policies,
                    audit_log=audit_log, engine=engine, require_token=require_token, token=decision_token,
                )
            )  # fmt: skip
        except PolicyError:
            raise
        except (ValueError, OSError, RuntimeError) as exc:
            raise _start_error("the decision service", exc) from None
        decision_server.replica.wait_for(revision, 60)
        address = f"127.0.0.1:{decision_server.port}"
        click.echo(_examples(address, store_address, tokens=require_token))
        _wait_for_signal(decision_server.reopen_audit_log)
    except PolicyError as exc:
        raise click.ClickException(f"the policy does not load: {exc}") from None
    except grpc.RpcError as exc:
        raise _fail_rpc(exc) from None
    finally:
        if decision_server is not None:
            decision_server.stop(grace=1)
        store_server.stop(grace=1)


def _examples(address: str, store_address: str, *, tokens: bool = False) -> str:
    check = f".venv/bin/authz check --server {address}"
    header = ""
    tokens_note = ""
    if tokens:
        header = f'-H "authorization: Bearer $(cat {DEFAULT_DECISION_TOKEN_FILE})" '
        tokens_note = f"\nDecision calls need the token in ${DECISION_TOKEN_ENV} or {DEFAULT_DECISION_TOKEN_FILE}."
    return f"""
Ready: authz.v1.Authorizer on {address}, store.v1.Store on {store_address} (token in {DEFAULT_TOKEN_FILE}).{tokens_note}
Try, in another shell:

  {check} user:carol report.edit report:rep-weekly-vision --explain   # allowed: her own report (RP3)
  {check} user:dave report.edit report:rep-weekly-vision              # denied: not his (RP3)
  {check} user:dave run.delete run:run-seg-moved                      # denied: moved run (E4a)
  {check} service_account:vision-ci run.attribute project:vision-detection -c username=carol   # E9
  {check} user:dave model_registry.add_alias model_registry:vision -c alias=production        # M1a
  {check} anonymous report.view report:rep-benchmarks --json          # public project (RP1)
  grpcurl -plaintext {header}-d '{{"subject": {{"kind": "user", "id": "trent"}}, "action": "run.create",
      "resource": {{"kind": "project", "id": "platform-playground"}}}}' {address} authz.v1.Authorizer/Check

Edit a file in policies/ and the service reloads it. Press Ctrl-C to stop."""


@main.command("check")
@click.argument("subject")
@click.argument("action")
@click.argument("resource")
@click.option("-c", "--context", "context", multiple=True, metavar="KEY=VALUE", help="A context value (repeatable).")
@click.option("--explain", is_flag=True, help="Show the facts and every rule considered.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.option("--server", default=DEFAULT_SERVER, show_default=True, help="Decision service address.")
@click.option("--min-revision", type=int, default=0, help="Wait until the service has this store revision.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"File holding the decision-call token when ${DECISION_TOKEN_ENV} is unset "
    f"(default {DEFAULT_DECISION_TOKEN_FILE}; sent only when one is found).",
)
@tls_client_options("", "decision service")
def check(
    subject: str, action: str, resource: str, context: tuple[str, ...], explain: bool, as_json: bool, server: str,
    min_revision: int, token_file: Path | None, ca_file: Path | None, cert_file: Path | None,
    key_file: Path | None, tls: bool,
) -> None:  # fmt: skip
    """Ask whether SUBJECT (user:bob, service_account:ci, anonymous) may do ACTION on RESOURCE (kind:id).

    Exits 0 when allowed, 3 when denied.
    """
    import json

    from authz.client import Client
    from authz.security import read_token

    _check_client_tls(cert_file, key_file)

    values: dict[str, str] = {}
    for item in context:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-c/--context")
        values[key] = value
    try:
        with Client(server, token=read_token(token_file), ca=ca_file, cert=cert_file, key=key_file, tls=tls) as client:
            decision = client.check(subject, action, resource, values, min_revision=min_revision, explain=explain)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except grpc.RpcError as exc:
        raise _fail_rpc(exc) from None
    if as_json:
        click.echo(json.dumps({
            "allowed": decision.allowed, "reason": decision.reason, "rules": list(decision.rules),
            "policy_lines": list(decision.policy_lines), "revision": decision.revision,
            "policy_version": decision.policy_version, **({"explanation": decision.explanation} if explain else {}),
        }, indent=2))  # fmt: skip
    else:
        verdict = (
            click.style("ALLOWED", fg="green", bold=True)
            if decision.allowed
            else click.style("DENIED", fg="red", bold=True)
        )
        click.echo(f"{verdict}  {subject} {action} {resource}")
        click.echo(f"  reason:   {decision.reason}")
        click.echo(f"  rules:    {', '.join(decision.rules) or '-'}")
        click.echo(f"  policy:   {', '.join(decision.policy_lines) or '-'}")
        click.echo(f"  at:       store revision {decision.revision}, policy version {decision.policy_version}")
        if explain and decision.explanation:
            click.echo("  explanation:")
            for line in decision.explanation.splitlines():
                click.echo(f"    {line}")
    sys.exit(0 if decision.allowed else 3)


@main.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--server", default=None, help="Run end to end against this decision service (needs --store).")
@click.option("--store", "store_address", default=None, help="Store to load each world into (with --server).")
@click.option("--json", "as_json", is_flag=True, help="Print every result as JSON.")
@policies_option
@token_file_option
@engine_option
def test(
    paths: tuple[Path, ...], server: str | None, store_address: str | None, as_json: bool, policies: Path,
    token_file: Path | None, engine: str,
) -> None:  # fmt: skip
    """Run decision test files (a world and expected decisions) and report failures.

    In-process by default, each file with a fresh world. With --server and --store, each file's
    world replaces the store's content (the store needs --allow-test-reset) and the cases go
    over gRPC. Exits 1 if any case fails.
    """
    import json

    from authz import harness
    from authz.policy import load_policy

    if (server is None) != (store_address is None):
        raise click.UsageError("--server and --store go together")
    files = harness.collect(paths)
    results: list[harness.Result] = []
    broken: list[str] = []
    remote = None
    if server is not None and store_address is not None:
        from authz.client import Client
        from store.client import StoreClient

        remote = (StoreClient(store_address, _store_token(token_file)), Client(server))
        policy = None
    else:
        try:
            policy = load_policy(policies)
        except Exception as exc:  # noqa: BLE001 - report any policy problem as a usage error
            raise click.ClickException(f"the policy does not load: {exc}") from None
    try:
        for path in files:
            try:
                loaded = harness.load_file(path)
                run = harness.run_remote(loaded, *remote) if remote else harness.run_in_process(loaded, policy, engine)
                results.extend(run)
            except harness.CaseFileError as exc:
                broken.append(str(exc))
    finally:
        if remote is not None:
            remote[0].close()
            remote[1].close()
    failed = [r for r in results if not r.passed]
    passed = len(results) - len(failed)
    if as_json:
        click.echo(json.dumps({
            "passed": passed, "failed": len(failed) + len(broken), "file_errors": broken,
            "results": [{
                "file": r.case.file, "case": r.case.index, "subject": r.case.subject, "action": r.case.action,
                "resource": r.case.resource, "context": r.case.context, "expected": "allow" if r.case.allow else "deny",
                "rule": r.case.rule, "got": r.got, "passed": r.passed,
                "rules": list(r.decision.rules) if r.decision else [],
                "reason": r.decision.reason if r.decision else r.error,
            } for r in results],
        }, indent=2))  # fmt: skip
    else:
        _print_failures(failed, broken)
        click.echo(f"{passed} passed, {len(failed) + len(broken)} failed")
    sys.exit(1 if failed or broken else 0)


def _print_failures(failed: list[Any], broken: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False, width=200)
    for message in broken:
        console.print(f"[red]file error[/red] {message}", markup=True, highlight=False)
    if not failed:
        return
    table = Table("file", "case", "subject", "action", "resource", "expected", "got", "reason", title="failures")
    for r in failed:
        expected = ("allow" if r.case.allow else "deny") + (f" ({r.case.rule})" if r.case.rule else "")
        got = r.got + (f" ({', '.join(r.decision.rules)})" if r.decision and r.decision.rules else "")
        reason = r.decision.reason if r.decision else r.error
        table.add_row(Path(r.case.file).name, str(r.case.index), r.case.subject, r.case.action, r.case.resource,
                      expected, got, reason)  # fmt: skip
    console.print(table)


@main.group()
def policy() -> None:
    """Policies: lint them offline, render the permission matrix."""


@policy.command("matrix")
@click.option("--format", "fmt", type=click.Choice(["markdown", "html"]), default="markdown", show_default=True)
@policies_option
def policy_matrix(fmt: str, policies: Path) -> None:
    """Print role x action tables per resource family, each cell a decision of the engine."""
    from authz import matrix
    from authz.errors import PolicyError
    from authz.policy import load_policy

    try:
        loaded = load_policy(policies)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    tables = matrix.compute(loaded)
    render = matrix.markdown if fmt == "markdown" else matrix.to_html
    click.echo(render(tables, loaded.version), nl=False)


@policy.command("lint")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("policies"), required=False)
def policy_lint(directory: Path) -> None:
    """Check the policy in DIRECTORY (default policies/) as the service would before loading it."""
    from authz.engine import CasbinEngine
    from authz.errors import PolicyError
    from authz.policy import load_policy

    try:
        loaded = load_policy(directory)
        CasbinEngine(loaded)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    rules = sorted({line.rule for line in loaded.p_lines})
    click.echo(f"{directory}: ok, version {loaded.version}: {len(loaded.p_lines)} rules lines for "
               f"{len(loaded.actions)} actions, {len(rules)} rule ids")  # fmt: skip


@main.group()
def registry() -> None:
    """Registries: migrate a team's legacy model registry into the org's model registry (MG1-MG4)."""


@registry.command("migrate")
@click.argument("team")
@click.option("--dry-run", is_flag=True, help="Plan and prove only; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan, the proof and the outcome as JSON.")
@click.option("--force", is_flag=True, help="Migrate even when the proof finds decisions that would change.")
@click.option("--store", "store_address", default=DEFAULT_STORE, show_default=True, help="Store address.")
@policies_option
@engine_option
@token_file_option
def registry_migrate(
    team: str, dry_run: bool, as_json: bool, force: bool, store_address: str, policies: Path, engine: str,
    token_file: Path | None,
) -> None:  # fmt: skip
    """Migrate TEAM's legacy model registry into model-<org>, after proving that no decision changes.

    Takes a snapshot, asks the store for the plan (a dry run), and compares, for every user of the
    org except org admins and every model, view, download, link and adding an alias before and
    after (MG2). Without --dry-run it then migrates, only if nothing differs (or with --force).
    Exits 1 when a decision would change and nothing was forced.
    """
    import json

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from authz import migration_proof
    from authz.policy import load_policy
    from store.client import StoreClient
    from store.v1 import store_pb2

    try:
        policy = load_policy(policies)
    except Exception as exc:  # noqa: BLE001 - report any policy problem as a usage error
        raise click.ClickException(f"the policy does not load: {exc}") from None
    err = Console(stderr=True)
    with StoreClient(store_address, _store_token(token_file)) as client:
        try:
            before, plan = migration_proof.snapshot_and_plan(client, team)
            changes = migration_proof.changes_from_messages(plan.changes)
            with Progress(
                TextColumn("[bold]proving MG2"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=err, transient=True, disable=not err.is_terminal,
            ) as progress:  # fmt: skip
                task = progress.add_task("decisions", total=migration_proof.count_work(before, team))
                proof = migration_proof.prove(
                    before, changes, team, policy=policy, engine=engine, progress=lambda n: progress.advance(task, n)
                )
            done = None
            if not dry_run and (proof.holds or force):
                request = store_pb2.MigrateLegacyRegistryRequest(team=team)
                done = client.call("MigrateLegacyRegistry", request, timeout=None)
        except grpc.RpcError as exc:
            raise _fail_rpc(exc) from None
        except migration_proof.ProofError as exc:
            raise click.ClickException(str(exc)) from None
    # The proof covers the plan; a write between the plan and the migration can change what is done.
    matches = done is None or list(done.changes) == list(plan.changes)
    counts = ("registry_created", "models", "versions", "collections_created", "versions_created",
              "collections_unchanged", "versions_unchanged")  # fmt: skip
    if as_json:
        click.echo(json.dumps({
            "team": team, "registry": plan.registry, "revision": plan.revision, "dry_run": dry_run,
            "state_before": plan.state_before, "plan": {**{name: getattr(plan, name) for name in counts},
                                                        "changes": len(plan.changes)},
            "proof": proof.summary(),
            "migrated": None if done is None else {"revision": done.revision, "matches_plan": matches,
                                                   **{name: getattr(done, name) for name in counts}},
        }, indent=2))  # fmt: skip
    else:
        out = Console(width=200)
        table = Table(show_header=False, title=f"team {team}: legacy model registry -> {plan.registry}")
        for label, value in (
            ("legacy state", plan.state_before), ("plan at revision", plan.revision),
            ("registry", "created" if plan.registry_created else "exists"), ("models", plan.models),
            ("versions", plan.versions),
            ("collections created / unchanged", f"{plan.collections_created} / {plan.collections_unchanged}"),
            ("versions created / unchanged", f"{plan.versions_created} / {plan.versions_unchanged}"),
            ("users compared (org admins excluded)", f"{proof.users} ({proof.org_admins_excluded})"),
            ("decisions compared", proof.decisions), ("differences", len(proof.differences)),
        ):  # fmt: skip
            table.add_row(label, str(value))
        out.print(table)
        if proof.differences:
            shown = proof.differences[:50]
            diffs = Table("user", "model", "check", "before", "after", title="decisions that would change")
            for d in shown:
                diffs.add_row(d.user, d.model, d.check,
                              f"{d.before_action} {d.before_resource}: {'allow' if d.before else 'deny'}",
                              f"{d.after_action} {d.after_resource}: {'allow' if d.after else 'deny'}")  # fmt: skip
            out.print(diffs)
            if len(proof.differences) > len(shown):
                click.echo(f"... and {len(proof.differences) - len(shown)} more (--json lists them all)")
        if dry_run:
            click.echo("dry run: nothing changed")
        elif done is None:
            click.echo("not migrated: the proof found decisions that would change (--force migrates anyway)")
        elif not done.changes:
            click.echo(f"already migrated: nothing changed (revision {done.revision})")
        else:
            click.echo(f"migrated at revision {done.revision}: {done.collections_created} collections, "
                       f"{done.versions_created} versions created")  # fmt: skip
    if not matches:
        click.echo("warning: the store changed between the plan and the migration; what was committed differs "
                   "from the proved plan: run again with --dry-run to prove the result", err=True)  # fmt: skip
    if not proof.holds and done is None:
        sys.exit(1)


def run() -> None:  # pragma: no cover - console entry for `python -m authz.cli`
    main(prog_name=os.path.basename(sys.argv[0]) or "authz")


if __name__ == "__main__":  # pragma: no cover
    run()
