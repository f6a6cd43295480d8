"""Build and run the store's gRPC server: Store, health and reflection on one port.

Every Store call needs the bearer token, checked by servicekit's TokenInterceptor before the call
reaches the servicer; health and reflection stay open (probes and grpcurl need no token).

Several store instances may serve one database. On PostgreSQL each one announces its commits and
listens for the others' (store.notify), so Watch streams on every instance wake at once; with
``notify=False``, or on SQLite, they find other instances' commits by polling.
"""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit import tls, tokens, tracing
from servicekit.guard import DecodeGuard
from servicekit.logs import CallLog
from servicekit.metrics import MetricsEndpoint, serve_metrics_at
from store.changes import Notifier
from store.database import Database, open_database
from store.metrics import StoreMetrics
from store.notify import RevisionChannel
from store.schema import migrate
from store.service import StoreServicer
from store.token import DEFAULT_TOKEN_FILE, TOKEN_ENV
from store.v1 import store_pb2, store_pb2_grpc

log = logging.getLogger("store.server")

TOKEN_HINT = f"${TOKEN_ENV} or a token file"
SERVICE_NAME = store_pb2.DESCRIPTOR.services_by_name["Store"].full_name
STORE_METHODS = f"/{SERVICE_NAME}/"  # the token guards these; health and reflection stay open


@dataclass(frozen=True)
class StoreConfig:
    listen: str = "127.0.0.1:50052"
    database_url: str | None = None
    token: str = field(default="", repr=False)
    allow_test_reset: bool = False
    max_workers: int = 64
    migrate: bool = True
    # Transport: TLS with cert + key, mutual TLS with a client CA too. Without a certificate only a
    # loopback address is allowed, unless insecure (plain text anywhere, logged as a WARNING).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    insecure: bool = False
    # Serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any free port); metrics_port is the
    # older form of metrics="127.0.0.1:PORT".
    metrics: str | None = None
    metrics_port: int | None = None
    # OpenTelemetry spans of every Store call (also on when $OTEL_EXPORTER_OTLP_ENDPOINT is set).
    tracing: bool = False
    # PostgreSQL: NOTIFY other instances of each commit and LISTEN for theirs (ignored on SQLite).
    notify: bool = True


@dataclass
class StoreServer:
    server: grpc.Server
    port: int
    servicer: StoreServicer
    db: Database
    executor: futures.ThreadPoolExecutor
    metrics_endpoint: MetricsEndpoint | None = None
    channel: RevisionChannel | None = None  # LISTEN/NOTIFY between instances (PostgreSQL)

    @property
    def metrics_port(self) -> int:
        return self.metrics_endpoint.port if self.metrics_endpoint is not None else 0

    def stop(self, grace: float | None = None) -> None:
        """Stop serving, let handler threads finish (streams notice within 0.25 s), close the database."""
        self.server.stop(grace).wait()
        if self.channel is not None:
            self.channel.stop()
        self.executor.shutdown(wait=True)
        self.db.dispose()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.stop()


def ensure_token(token_file: Path = DEFAULT_TOKEN_FILE) -> str:
    """The configured store token, or a new random one written to ``token_file`` with mode 0600."""
    return tokens.ensure_token(TOKEN_ENV, token_file, "store")


def create_server(config: StoreConfig) -> StoreServer:
    """A started store server; ``port`` is the one bound (useful with port 0)."""
    if not config.token:
        raise ValueError("the store needs a token: set AUTHZ_STORE_TOKEN or a token file")
    executor = futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="store")
    server = grpc.server(
        executor,
        # As on the decision service: the call log and the span see every call as its caller does; then the
        # token is checked (a refused call's request is never decoded), then a request that does not decode
        # is INVALID_ARGUMENT.
        interceptors=[
            CallLog("store.access"),
            *tracing.server_interceptors(config.tracing, SERVICE_NAME, "authz-store"),
            DecodeGuard(),
            tokens.TokenInterceptor(config.token, STORE_METHODS, hint=TOKEN_HINT),
        ],
        options=[
            *tls.server_options(),  # the port is this store's alone: no second store beside it
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ],
    )
    db: Database | None = None
    try:  # refuse an insecure or broken listen address before touching the database
        port = tls.bind(
            server, config.listen, cert=config.tls_cert, key=config.tls_key, client_ca=config.tls_client_ca,
            insecure=config.insecure, service="store",
        )  # fmt: skip
        db = open_database(config.database_url)
        if config.migrate:
            migrate(db)
        metrics = StoreMetrics.create()
        notifier = Notifier()
        channel = None
        if config.notify and db.dialect == "postgresql":
            channel = RevisionChannel(db, notifier, metrics=metrics)
    except BaseException:
        server.stop(None)
        executor.shutdown(wait=False)
        if db is not None:
            db.dispose()
        raise
    servicer = StoreServicer(
        db, notifier, allow_test_reset=config.allow_test_reset, metrics=metrics,
        announce=channel.announce if channel is not None else None,
    )  # fmt: skip
    store_pb2_grpc.add_StoreServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if channel is not None:
        channel.start()
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    transport = "plain text" if config.tls_cert is None else "mutual TLS" if config.tls_client_ca else "TLS"
    wakes = f"LISTEN/NOTIFY on {channel.channel}" if channel is not None else "polling for other instances' commits"
    log.info("store serving on %s (%s, database %s, %s)", _with_port(config.listen, port), transport,
             _safe_url(db.url), wakes)  # fmt: skip
    running = StoreServer(server, port, servicer, db, executor, channel=channel)
    address = config.metrics if config.metrics_port is None else f"127.0.0.1:{config.metrics_port}"
    if address is not None:
        running.metrics_endpoint = serve_metrics_at(metrics.registry, address)
    return running


def _with_port(listen: str, port: int) -> str:
    host = listen.rsplit(":", 1)[0]
    return f"{host}:{port}"


def _safe_url(url: str) -> str:
    """The database URL without a password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
