"""`authz serve` (the decision service, one process or N workers) and `authz up` (both services)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import grpc

from authz.cli.options import (
    DECISION_TOKEN_ENV,
    DEFAULT_DECISION_TOKEN_FILE,
    DEFAULT_SERVER,
    DEFAULT_STORE,
    DEFAULT_TOKEN_FILE,
    DEMO_WORLD,
    check_client_tls,
    check_listen_flags,
    database_url_option,
    engine_option,
    fail_rpc,
    observability_options,
    observe,
    policies_option,
    start_error,
    store_token,
    tls_client_options,
    tls_server_options,
    token_file_option,
    wait_for_signal,
)

TESTS_DIR = Path("tests/decisions")


def policy_tests_option(default_help: str) -> Callable[[Any], Any]:
    return click.option(
        "--policy-tests",
        type=click.Path(exists=True, path_type=Path),
        multiple=True,
        help="Decision-test files or directories every policy change must pass before it serves (repeatable); "
        f"a change that fails one is refused and the last good version serves on. {default_help}",
    )


@click.command("serve")
@click.option("--listen", default=DEFAULT_SERVER, show_default=True, help="Address to listen on.")
@click.option(
    "--store",
    "store_address",
    default=DEFAULT_STORE,
    show_default=True,
    help="Store address; or several instances on one database, comma-separated (A,B,...): the replica follows "
    "the first reachable and fails over to the next.",
)
@policies_option
@token_file_option
@click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path), help="Append decisions as JSON lines.")
@click.option(
    "--audit-redact-context",
    is_flag=True,
    help="Write context keys but not their values to the audit log (then `authz policy replay` can only "
    "replay requests without context).",
)
@engine_option
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes sharing the port (SO_REUSEPORT), each with its own replica; use one per core.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    default=32,
    show_default=True,
    help="Threads answering gRPC calls in each process. Fewer spend less CPU per call under load (less "
    "contention for the interpreter); a call waiting for its min_revision holds one until answered.",
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
@observability_options  # with --workers N, worker n serves its metrics on PORT+n
@click.option(
    "--http",
    "http_listen",
    metavar="HOST:PORT",
    default=None,
    help="Also serve AuthZEN 1.0 over HTTP here: the same decisions, TLS files, loopback rule and token rule "
    "(judged for this address) as gRPC.",
)
@click.option(
    "--playground",
    is_flag=True,
    help="Also serve the policy playground at /playground on the --http server: edit the policy and a world in "
    "the browser, then check, test, diff, lint and see the matrix on a scratch engine (never the store or "
    "the policy files). Its API needs the token wherever decision calls do.",
)
@click.option(
    "--playground-world",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEMO_WORLD,
    show_default=True,
    help="World file (decision-test YAML) the playground offers to load (a small example when missing).",
)
@policy_tests_option("None by default.")
@click.option(
    "--decision-cache",
    type=click.IntRange(0, 10_000_000),
    default=10_000,
    show_default=True,
    help="Decisions kept per store revision and policy, answered again for the same request until either "
    "changes; 0: off.",
)
def serve(
    listen: str, store_address: str, policies: Path, token_file: Path | None, audit_log: Path | None,
    audit_redact_context: bool, engine: str, workers: int, threads: int, tls_cert: Path | None, tls_key: Path | None,
    tls_client_ca: Path | None, insecure: bool,
    require_token: bool, authz_token_file: Path | None, store_ca_file: Path | None, store_cert_file: Path | None,
    store_key_file: Path | None, store_tls: bool, log_format: str, metrics: str | None, metrics_port: int | None,
    otel: bool, http_listen: str | None, playground: bool, playground_world: Path, policy_tests: tuple[Path, ...],
    decision_cache: int,
) -> None:  # fmt: skip
    """Run the decision service: follow the store, answer Check, BatchCheck and the list calls.

    Listens on loopback in plain text by default; any other address needs --tls-cert and --tls-key
    (or --insecure), and then decision calls need a bearer token. --http adds AuthZEN over HTTP, and
    --playground the policy playground on it (off unless asked).
    """
    from authz import security
    from authz import workers as processes
    from authz.cli import setup_worker_logging
    from authz.errors import PolicyError
    from authz.policy import load_policy
    from authz.server import ServerConfig, store_addresses

    metrics = observe(log_format, metrics, metrics_port)
    check_listen_flags(listen, tls_cert, tls_key, tls_client_ca, insecure)
    try:
        store_addresses(store_address)
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("store: "), param_hint="--store") from None
    check_client_tls(store_cert_file, store_key_file, "store-")
    if http_listen is not None:
        check_http_flags(http_listen, tls_cert, tls_key, tls_client_ca, insecure)
    elif playground:
        raise click.UsageError("--playground is served over HTTP: give --http HOST:PORT too")
    # Each listener judges its own address (a token off loopback); one token serves both.
    wanted = True if require_token else None
    tokens = security.tokens_required(listen, wanted) or (
        http_listen is not None and security.tokens_required(http_listen, wanted)
    )
    config = ServerConfig(
        listen=listen, store=store_address, store_token=store_token(token_file), policies=policies,
        audit_log=audit_log, audit_redact_context=audit_redact_context, engine=engine, tls_cert=tls_cert,
        tls_key=tls_key, tls_client_ca=tls_client_ca, insecure=insecure, require_token=wanted,
        token=security.ensure_token(authz_token_file) if tokens else "",
        store_ca=store_ca_file, store_cert=store_cert_file, store_key=store_key_file, store_tls=store_tls,
        metrics=metrics, tracing=otel, http=http_listen, policy_tests=policy_tests, playground=playground,
        playground_world=playground_world if playground_world.is_file() else None, decision_cache=decision_cache,
        max_workers=threads,
    )  # fmt: skip
    try:
        load_policy(policies)
    except PolicyError as exc:
        raise click.ClickException(f"the policy does not load: {exc}") from None
    if workers > 1 and listen.endswith(":0"):
        raise click.BadParameter("several workers need a fixed port", param_hint="--listen")
    if workers > 1 and http_listen is not None and http_listen.endswith(":0"):
        raise click.BadParameter("several workers need a fixed port", param_hint="--http")
    try:
        if workers == 1:
            processes.serve_one(config)
        else:
            verbose = bool(click.get_current_context().find_root().params.get("verbose"))
            setup = functools.partial(setup_worker_logging, log_format, verbose)
            processes.run_workers(config, workers, setup_logging=setup)
    except (processes.StartError, processes.WorkerStopped) as exc:
        raise click.ClickException(str(exc)) from None


@click.command("up")
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
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve AuthZEN 1.0 over HTTP on this loopback port (0: any free one); the examples include curl calls.",
)
@click.option(
    "--playground",
    is_flag=True,
    help="Also serve the policy playground at /playground on the HTTP port (any free one without --http-port): "
    "edit the policy and the world in the browser, evaluated on a scratch engine, never the store or files.",
)
@observability_options  # the decision service's metrics on PORT, the store's on PORT+1
@policy_tests_option(f"Default: {TESTS_DIR} when it exists.")
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
    http_port: int | None,
    playground: bool,
    log_format: str,
    metrics: str | None,
    metrics_port: int | None,
    otel: bool,
    policy_tests: tuple[Path, ...],
) -> None:
    """Start the store (SQLite by default) and the decision service, load the demo world, print examples.

    Both listen on loopback in plain text; --require-token makes decision calls need a token.
    --http-port adds AuthZEN over HTTP, and --playground the policy playground on it.
    """
    from authz import security
    from authz.errors import PolicyError
    from authz.server import ServerConfig
    from authz.server import create_server as create_decision_server
    from servicekit.metrics import offset
    from store.client import StoreClient
    from store.server import StoreConfig, create_server, ensure_token

    metrics = observe(log_format, metrics, metrics_port)
    if playground and http_port is None:
        http_port = 0  # the playground is served over HTTP: any free loopback port, printed below
    token = ensure_token(DEFAULT_TOKEN_FILE)
    decision_token = security.ensure_token(DEFAULT_DECISION_TOKEN_FILE) if require_token else ""
    try:
        store_server = create_server(
            StoreConfig(
                listen=f"127.0.0.1:{store_port}",
                database_url=database_url,
                token=token,
                allow_test_reset=allow_test_reset,
                metrics=offset(metrics, 1) if metrics is not None else None,
                tracing=otel,
            )
        )
    except (ValueError, OSError, RuntimeError) as exc:
        raise start_error("the store", exc) from None
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
                    http=f"127.0.0.1:{http_port}" if http_port is not None else None,
                    playground=playground, playground_world=world if world.is_file() else None,
                    metrics=metrics, tracing=otel,
                    policy_tests=policy_tests or ((TESTS_DIR,) if TESTS_DIR.is_dir() else ()),
                )
            )  # fmt: skip
        except PolicyError:
            raise
        except (ValueError, OSError, RuntimeError) as exc:
            raise start_error("the decision service", exc) from None
        decision_server.replica.wait_for(revision, 60)
        address = f"127.0.0.1:{decision_server.port}"
        http = decision_server.http_server.url if decision_server.http_server is not None else None
        click.echo(_examples(address, store_address, tokens=require_token, http=http, playground=playground))
        wait_for_signal(decision_server.reopen_audit_log)
    except PolicyError as exc:
        raise click.ClickException(f"the policy does not load: {exc}") from None
    except grpc.RpcError as exc:
        raise fail_rpc(exc) from None
    finally:
        if decision_server is not None:
            decision_server.stop(grace=1)
        store_server.stop(grace=1)


def check_http_flags(
    http_listen: str, tls_cert: Path | None, tls_key: Path | None, tls_client_ca: Path | None, insecure: bool
) -> None:
    """A usage error naming --http for an address that is not HOST:PORT, or plain text off loopback."""
    from authz.http.server import split_listen

    try:
        split_listen(http_listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--http") from None
    check_listen_flags(http_listen, tls_cert, tls_key, tls_client_ca, insecure)


def _examples(
    address: str, store_address: str, *, tokens: bool = False, http: str | None = None, playground: bool = False
) -> str:
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
{_http_examples(http, tokens) if http else ""}{_playground_note(http, tokens) if http and playground else ""}
Edit a file in policies/ and the service reloads it. Press Ctrl-C to stop."""


def _http_examples(base: str, tokens: bool) -> str:
    """The curl calls `up --http-port` prints: AuthZEN over HTTP on the demo world."""
    auth = f'-H "Authorization: Bearer $(cat {DEFAULT_DECISION_TOKEN_FILE})" ' if tokens else ""
    curl = f"curl -s {auth}-H 'Content-Type: application/json'"
    return f"""
AuthZEN 1.0 over HTTP on {base} (OpenAPI: {base}/openapi.json):

  curl -s {base}/.well-known/authzen-configuration
  {curl} {base}/access/v1/evaluation -d '{{"subject": {{"type": "user", "id": "carol"}},
      "action": {{"name": "report.edit"}}, "resource": {{"type": "report", "id": "rep-weekly-vision"}}}}'   # true (RP3)
  {curl} {base}/access/v1/evaluations -d '{{"subject": {{"type": "user", "id": "dave"}},
      "action": {{"name": "report.edit"}}, "options": {{"evaluations_semantic": "permit_on_first_permit"}},
      "evaluations": [{{"resource": {{"type": "report", "id": "rep-weekly-vision"}}}},
                      {{"resource": {{"type": "report", "id": "rep-seg-notes"}}}},
                      {{"resource": {{"type": "report", "id": "rep-playground"}}}}]}}'   # false, true: stops
  {curl} {base}/access/v1/search/resource -d '{{"subject": {{"type": "user", "id": "dave"}},
      "action": {{"name": "report.view"}}, "resource": {{"type": "report"}}, "page": {{"limit": 2}}}}'
  {curl} {base}/access/v1/search/action -d '{{"subject": {{"type": "user", "id": "dave"}},
      "resource": {{"type": "model_registry", "id": "vision"}}, "context": {{"alias": "production"}}}}'
"""


def _playground_note(base: str, tokens: bool) -> str:
    """Where `up --playground` serves the playground."""
    token = f"\n  (paste the token of {DEFAULT_DECISION_TOKEN_FILE} into its token field)" if tokens else ""
    return f"""
Policy playground (edit the policy and the world, then Check, Tests, Matrix, Diff, Lint; nothing is saved):

  open {base}/playground{token}
"""
