"""What the commands share: addresses, option decorators (TLS, policies, engine, tokens, database)
and the helpers that turn flags and failures into click's usage errors and one-line errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc

from authz.security import DEFAULT_TOKEN_FILE as DEFAULT_DECISION_TOKEN_FILE
from authz.security import TOKEN_ENV as DECISION_TOKEN_ENV
from store.token import DEFAULT_TOKEN_FILE, TOKEN_ENV, read_token

DEFAULT_STORE = "127.0.0.1:50052"
DEFAULT_SERVER = "127.0.0.1:50051"
DEMO_WORLD = Path("examples/demo-world.yaml")

__all__ = [
    "DECISION_TOKEN_ENV", "DEFAULT_DECISION_TOKEN_FILE", "DEFAULT_SERVER", "DEFAULT_STORE", "DEFAULT_TOKEN_FILE",
    "DEMO_WORLD", "TOKEN_ENV", "check_client_tls", "check_listen_flags", "context_option", "database_url_option",
    "decision_token_file_option", "engine_option", "fail_rpc", "observability_options", "observe", "parse_context",
    "policies_option", "read_policies_option", "start_error", "store_token", "tls_client_options",
    "tls_server_options", "token_file_option", "wait_for_signal",
]  # fmt: skip

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
decision_token_file_option = click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"File holding the decision-call token when ${DECISION_TOKEN_ENV} is unset "
    f"(default {DEFAULT_DECISION_TOKEN_FILE}; sent only when one is found).",
)
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
# The same option for commands that read the policy once and exit: no promise of live reload.
read_policies_option = click.option(
    "--policies",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("policies"),
    show_default=True,
    help="Policy directory (model.conf and *.csv), read once at start.",
)
context_option = click.option(
    "-c", "--context", "context", multiple=True, metavar="KEY=VALUE", help="A context value (repeatable)."
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


def _metrics_address(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from servicekit.metrics import parse_address

    if value is not None:
        try:
            parse_address(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def observability_options(function: _F) -> _F:
    """--log-format, --metrics HOST:PORT (and the older --metrics-port) and --otel, for a command that
    runs a server; :func:`observe` applies them."""
    for option in reversed((
        click.option(
            "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
            envvar="AUTHZ_LOG_FORMAT",
            help="Log lines as text, or as JSON objects, one per line (time, level, logger, message and the "
            "request's method, peer, code, duration_ms). Also $AUTHZ_LOG_FORMAT.",
        ),
        click.option(
            "--metrics", metavar="HOST:PORT", default=None, callback=_metrics_address,
            help="Serve Prometheus metrics on http://HOST:PORT/metrics, any interface (0.0.0.0:9100 for all).",
        ),
        click.option(
            "--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
            help="Deprecated: --metrics 127.0.0.1:PORT.",
        ),
        click.option(
            "--otel", is_flag=True,
            help="Export OpenTelemetry spans of every call over OTLP ($OTEL_EXPORTER_OTLP_ENDPOINT, default "
            "localhost:4317); on whenever that variable is set.",
        ),
    )):  # fmt: skip
        function = option(function)
    return function


def observe(log_format: str, metrics: str | None, metrics_port: int | None) -> str | None:
    """Log in ``log_format`` from now on (``-v`` still gives DEBUG); the metrics address of --metrics
    or --metrics-port, or None."""
    from servicekit import logs

    if metrics is not None and metrics_port is not None:
        raise click.UsageError("--metrics-port is the older form of --metrics: give one of them")
    verbose = bool(click.get_current_context().find_root().params.get("verbose"))
    logs.configure(log_format, verbose)
    return f"127.0.0.1:{metrics_port}" if metrics_port is not None else metrics


def store_token(token_file: Path | None) -> str:
    token = read_token(token_file)
    if not token:
        raise click.UsageError(f"no store token: set {TOKEN_ENV} or write one to {token_file or DEFAULT_TOKEN_FILE}")
    return token


def fail_rpc(exc: grpc.RpcError) -> click.ClickException:
    code = exc.code()
    return click.ClickException(f"{code.name}: {exc.details()}")


def start_error(what: str, exc: BaseException) -> click.ClickException:
    """The one line a server that cannot start prints (a taken address, an audit log it cannot open, ...)."""
    return click.ClickException(f"{what} did not start: {exc}")


def wait_for_signal(on_hangup: Callable[[], object] | None = None) -> None:
    """Serve until SIGINT or SIGTERM (see :func:`authz.workers.wait_for_signal`); SIGHUP calls
    ``on_hangup`` (reopen the audit log), or, for a server without a log file, is logged and ignored."""
    from authz import workers

    workers.wait_for_signal(on_hangup or _no_log_file)


def _no_log_file() -> None:
    logging.getLogger("authz.cli").info("SIGHUP: no log file to reopen; still serving")


def check_listen_flags(listen: str, tls_cert: Path | None, tls_key: Path | None, tls_client_ca: Path | None,
                  insecure: bool) -> None:  # fmt: skip
    """A usage error, before anything starts, for TLS flags that do not fit or plain text off loopback."""
    from servicekit.tls import check_listen

    try:
        check_listen(listen, cert=tls_cert, key=tls_key, client_ca=tls_client_ca, insecure=insecure)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def check_client_tls(cert: Path | None, key: Path | None, prefix: str = "") -> None:
    if (cert is None) != (key is None):
        raise click.UsageError(f"--{prefix}cert and --{prefix}key go together")


def parse_context(items: tuple[str, ...]) -> dict[str, str]:
    """-c KEY=VALUE options as a mapping; a usage error naming -c/--context for anything else."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-c/--context")
        values[key] = value
    return values
