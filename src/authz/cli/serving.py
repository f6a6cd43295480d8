"""`authz serve` (the decision service, one process or N workers) and `authz up` (both services)."""

from __future__ import annotations

from pathlib import Path

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
    policies_option,
    start_error,
    store_token,
    tls_client_options,
    tls_server_options,
    token_file_option,
    wait_for_signal,
)


@click.command("serve")
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
    from authz import workers as processes
    from authz.cli import setup_worker_logging
    from authz.errors import PolicyError
    from authz.policy import load_policy
    from authz.server import ServerConfig

    check_listen_flags(listen, tls_cert, tls_key, tls_client_ca, insecure)
    check_client_tls(store_cert_file, store_key_file, "store-")
    tokens = security.tokens_required(listen, True if require_token else None)
    config = ServerConfig(
        listen=listen, store=store_address, store_token=store_token(token_file), policies=policies,
        audit_log=audit_log, engine=engine, tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
        insecure=insecure, require_token=tokens, token=security.ensure_token(authz_token_file) if tokens else "",
        store_ca=store_ca_file, store_cert=store_cert_file, store_key=store_key_file, store_tls=store_tls,
        metrics_port=metrics_port,
    )  # fmt: skip
    try:
        load_policy(policies)
    except PolicyError as exc:
        raise click.ClickException(f"the policy does not load: {exc}") from None
    if workers > 1 and listen.endswith(":0"):
        raise click.BadParameter("several workers need a fixed port", param_hint="--listen")
    try:
        if workers == 1:
            processes.serve_one(config)
        else:
            processes.run_workers(config, workers, setup_logging=setup_worker_logging)
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
                )
            )  # fmt: skip
        except PolicyError:
            raise
        except (ValueError, OSError, RuntimeError) as exc:
            raise start_error("the decision service", exc) from None
        decision_server.replica.wait_for(revision, 60)
        address = f"127.0.0.1:{decision_server.port}"
        click.echo(_examples(address, store_address, tokens=require_token))
        wait_for_signal(decision_server.reopen_audit_log)
    except PolicyError as exc:
        raise click.ClickException(f"the policy does not load: {exc}") from None
    except grpc.RpcError as exc:
        raise fail_rpc(exc) from None
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
