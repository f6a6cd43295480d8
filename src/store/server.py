"""Build and run the store's gRPC server: Store, health and reflection on one port."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from authz import security
from servicekit.guard import DecodeGuard
from store import tokens
from store.changes import Notifier
from store.database import Database, open_database
from store.metrics import StoreMetrics
from store.schema import migrate
from store.service import Credentials, StoreServicer
from store.v1 import store_pb2, store_pb2_grpc

log = logging.getLogger("store.server")

TOKEN_ENV = "AUTHZ_STORE_TOKEN"  # noqa: S105 - the variable name, not a secret
DEFAULT_TOKEN_FILE = Path("var/store.token")
SERVICE_NAME = store_pb2.DESCRIPTOR.services_by_name["Store"].full_name


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
    metrics_port: int | None = None  # serve Prometheus metrics on 127.0.0.1:PORT (0: any free port)


@dataclass
class StoreServer:
    server: grpc.Server
    port: int
    servicer: StoreServicer
    db: Database
    executor: futures.ThreadPoolExecutor
    metrics_http: Any = None
    metrics_port: int = 0

    def stop(self, grace: float | None = None) -> None:
        """Stop serving, let handler threads finish (streams notice within 0.25 s), close the database."""
        self.server.stop(grace).wait()
        self.executor.shutdown(wait=True)
        self.db.dispose()
        if self.metrics_http is not None:
            self.metrics_http.shutdown()
            self.metrics_http.server_close()


def read_token(token_file: Path | None = None) -> str:
    """$AUTHZ_STORE_TOKEN, else the token file (default var/store.token), else empty."""
    return tokens.read_token(TOKEN_ENV, token_file or DEFAULT_TOKEN_FILE)


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
        interceptors=[DecodeGuard()],
        options=[
            *security.server_options(),  # the port is this store's alone: no second store beside it
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ],
    )
    db: Database | None = None
    try:  # refuse an insecure or broken listen address before touching the database
        port = security.bind(
            server, config.listen, cert=config.tls_cert, key=config.tls_key, client_ca=config.tls_client_ca,
            insecure=config.insecure, service="store",
        )  # fmt: skip
        db = open_database(config.database_url)
        if config.migrate:
            migrate(db)
    except BaseException:
        server.stop(None)
        executor.shutdown(wait=False)
        if db is not None:
            db.dispose()
        raise
    metrics = StoreMetrics.create()
    servicer = StoreServicer(
        db, Credentials(config.token), Notifier(), allow_test_reset=config.allow_test_reset, metrics=metrics
    )
    store_pb2_grpc.add_StoreServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    transport = "plain text" if config.tls_cert is None else "mutual TLS" if config.tls_client_ca else "TLS"
    log.info("store serving on %s (%s, database %s)", _with_port(config.listen, port), transport, _safe_url(db.url))
    running = StoreServer(server, port, servicer, db, executor)
    if config.metrics_port is not None:
        http, _ = start_http_server(config.metrics_port, addr="127.0.0.1", registry=metrics.registry)
        running.metrics_http, running.metrics_port = http, int(http.server_port)
    return running


def _with_port(listen: str, port: int) -> str:
    host = listen.rsplit(":", 1)[0]
    return f"{host}:{port}"


def _safe_url(url: str) -> str:
    """The database URL without a password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
