"""Build and run the decision service: Authorizer, health and reflection on one port.

Health: "" and "authz.v1.Authorizer" are SERVING once a policy is loaded and the replica has
its first snapshot; "authz.v1.Authorizer/policy" is NOT_SERVING while the last policy edit was
refused or a line of the serving policy raised while deciding, with the error in the
`policy-error` trailing metadata of its health Check.
"authz.v1.Authorizer/audit" (only with an audit log) is NOT_SERVING while the last audit write
failed, with the path and the errno text in an `audit-error` trailer; decisions keep being answered
(authz/audit.py says what is promised), and it is SERVING again after a successful write.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from authz import security
from authz.audit import AuditLog
from authz.decider import Decider
from authz.engines import engine_factory
from authz.engines.holder import EngineHolder
from authz.errors import PolicyError
from authz.gate import decision_test_gate
from authz.metrics import DecisionMetrics
from authz.policy import load_policy
from authz.reloader import PolicyReloader
from authz.replica import Replica
from authz.service import AuthorizerServicer
from authz.v1 import authorizer_pb2, authorizer_pb2_grpc
from servicekit import tls, tracing
from servicekit.guard import DecodeGuard
from servicekit.logs import CallLog
from servicekit.metrics import MetricsEndpoint, serve_metrics_at
from servicekit.text import escape
from store.client import StoreClient

if TYPE_CHECKING:
    from authz.http.server import HttpServer

log = logging.getLogger("authz.server")

SERVICE_NAME = authorizer_pb2.DESCRIPTOR.services_by_name["Authorizer"].full_name
POLICY_HEALTH = f"{SERVICE_NAME}/policy"
REPLICA_HEALTH = f"{SERVICE_NAME}/replica"
AUDIT_HEALTH = f"{SERVICE_NAME}/audit"


MAX_MESSAGE_BYTES = 4 << 20  # a bigger request is refused by gRPC with RESOURCE_EXHAUSTED


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    # One store address, or several instances on one database, comma-separated ("A,B"): the replica
    # follows the first reachable and fails over to the next (authz/replica.py).
    store: str = "127.0.0.1:50052"
    store_token: str = field(default="", repr=False)
    policies: Path = Path("policies")
    audit_log: Path | None = None
    audit_redact_context: bool = False  # context keys only, no values, in the audit log
    max_workers: int = 32
    # Decisions kept per (store revision, engine) and given again for the same request until either
    # changes (authz/decider.py); 0: every call decides anew.
    decision_cache: int = 10_000
    reload_interval: float = 0.25
    engine: str = "compiled"
    # Decision-test files every policy change must pass before it serves (and the policy at start).
    policy_tests: tuple[Path, ...] = ()
    # Serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any free port); metrics_port is the
    # older form of metrics="127.0.0.1:PORT".
    metrics: str | None = None
    metrics_port: int | None = None
    # OpenTelemetry spans of every Authorizer call (also on when $OTEL_EXPORTER_OTLP_ENDPOINT is set).
    tracing: bool = False
    # AuthZEN 1.0 over HTTP on HOST:PORT too (authz/http/), with the same decider, TLS files, token rule
    # (judged for this address), metrics and audit log; None: gRPC only.
    http: str | None = None
    # The policy playground at /playground on that HTTP server (authz/http/playground/), offering
    # playground_world to load; it evaluates on scratch engines and never writes the store or policies.
    playground: bool = False
    playground_world: Path | None = None
    # Transport: TLS with cert + key, mutual TLS with a client CA too. Without a certificate only a
    # loopback address is allowed, unless insecure (plain text anywhere, logged as a WARNING).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    insecure: bool = False
    # Decision calls need `authorization: Bearer <token>`: None means on unless listening on loopback.
    require_token: bool | None = None
    token: str = field(default="", repr=False)
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # Share the port with other processes (SO_REUSEPORT): only the workers of `serve --workers N`.
    # Otherwise the address is this server's alone and a taken one is refused.
    reuse_port: bool = False
    # The connection to the store: a root CA to trust, and a client certificate for mutual TLS.
    store_ca: Path | None = None
    store_cert: Path | None = None
    store_key: Path | None = None
    store_tls: bool = False  # TLS with the system's roots when no store_ca is given

    @property
    def stores(self) -> tuple[str, ...]:
        return store_addresses(self.store)

    @property
    def metrics_address(self) -> str | None:
        """HOST:PORT of the metrics endpoint, or None for none."""
        return self.metrics if self.metrics_port is None else f"127.0.0.1:{self.metrics_port}"


def store_addresses(text: str) -> tuple[str, ...]:
    """The store addresses of ``--store A,B,...``, in order; ValueError for an empty or repeated one."""
    addresses = tuple(part.strip() for part in text.split(","))
    for address in addresses:
        if not address:
            raise ValueError(f"store: an empty address in {text!r} (give host:port, comma-separated)")
        if addresses.count(address) > 1:
            raise ValueError(f"store: {address} is given twice in {text!r}")
    return addresses


class _Health(health.HealthServicer):  # type: ignore[misc]
    """Standard health, plus the refused policy's error as trailing metadata."""

    def __init__(self) -> None:
        super().__init__()
        self.policy_error = ""
        self.replica_detail = ""
        self.audit_error = ""

    def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> object:
        if request.service == POLICY_HEALTH and self.policy_error:
            context.set_trailing_metadata((("policy-error", _metadata_text(self.policy_error)),))
        if request.service == REPLICA_HEALTH and self.replica_detail:
            context.set_trailing_metadata((("replica", self.replica_detail),))
        if request.service == AUDIT_HEALTH and self.audit_error:
            context.set_trailing_metadata((("audit-error", _metadata_text(self.audit_error)),))
        return super().Check(request, context)


@dataclass
class DecisionServer:
    server: grpc.Server
    port: int
    decider: Decider
    replica: Replica
    reloader: PolicyReloader
    health: _Health
    executor: futures.ThreadPoolExecutor
    audit: AuditLog | None
    store_clients: list[StoreClient]  # one per store address, followed by the replica
    metrics_endpoint: MetricsEndpoint | None = None
    http_server: HttpServer | None = None  # AuthZEN over HTTP, when config.http is set
    # Reading the audit state and setting its health happen together, so that the last caller
    # (whoever saw the last change) leaves the right status, whichever thread it runs on.
    _audit_health_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def metrics_port(self) -> int:
        return self.metrics_endpoint.port if self.metrics_endpoint is not None else 0

    @property
    def http_port(self) -> int:
        return self.http_server.port if self.http_server is not None else 0

    def stop(self, grace: float | None = None) -> None:
        if self.http_server is not None:  # both front ends stop before the replica they share
            self.http_server.stop(grace)
        self.server.stop(grace).wait()
        self.reloader.stop()
        self.replica.stop()
        for client in self.store_clients:
            client.close()
        self.executor.shutdown(wait=True)
        if self.audit is not None:
            self.audit.close()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.stop()

    def reopen_audit_log(self) -> None:
        """Open the audit log's path again (SIGHUP, after logrotate renamed the file)."""
        if self.audit is not None:
            self.audit.reopen()

    def update_audit_health(self) -> None:
        """``authz.v1.Authorizer/audit``: NOT_SERVING, with an ``audit-error`` trailer, while the last
        audit write failed. Called by handler threads when that changes, and with the rest of health."""
        if self.audit is None:
            return  # no audit log, no audit health: the service is unknown (NOT_FOUND)
        with self._audit_health_lock:
            error = self.audit.error
            self.health.audit_error = error
            self.health.set(
                AUDIT_HEALTH,
                health_pb2.HealthCheckResponse.NOT_SERVING if error else health_pb2.HealthCheckResponse.SERVING,
            )

    def update_health(self) -> None:
        serving = self.replica.synced.is_set()
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)
        runtime = self.decider.engines.runtime_error
        raised = f"a line raised while deciding: {runtime}" if runtime else ""
        self.health.policy_error = self.reloader.error or raised
        self.health.set(
            POLICY_HEALTH,
            health_pb2.HealthCheckResponse.NOT_SERVING
            if self.health.policy_error
            else health_pb2.HealthCheckResponse.SERVING,
        )
        self.update_audit_health()
        # Degraded: decisions still flow from the replica while the store is away; this says how
        # stale they are, in seconds and revisions. `connected` means messages (changes or the
        # store's heartbeats) keep coming: a stream merely opened, or gone silent, is not.
        replica = self.replica
        behind = max(0, replica.store_revision - replica.revision)
        staleness = replica.staleness()
        connected = replica.connected and staleness == 0.0
        if connected:
            # Which store instance it follows (`--store A,B`: the first reachable, then the next on failure).
            detail = f"connected to {replica.following}; revision {replica.revision}"
        elif not replica.last_contact:
            detail = (
                f"store unreachable, never reached ({replica.attempts} attempts, trying {replica.following}); "
                f"{replica.last_error}"
            )
        else:
            detail = (
                f"store unreachable for {staleness:.1f}s ({replica.attempts} attempts, trying {replica.following}); "
                f"revision "
                f"{replica.revision} (store last seen at {replica.store_revision}, {behind} behind); "
                f"{replica.last_error}"
            )
        self.health.replica_detail = detail
        self.health.set(
            REPLICA_HEALTH,
            health_pb2.HealthCheckResponse.SERVING
            if connected and serving
            else health_pb2.HealthCheckResponse.NOT_SERVING,
        )


def _metadata_text(text: str) -> str:
    """``text`` as a metadata value: printable ASCII only (a path may hold anything)."""
    return escape(text).encode("ascii", "backslashreplace").decode("ascii")


def create_server(config: ServerConfig) -> DecisionServer:
    """A started decision service; the policy must load (PolicyError otherwise)."""
    stores = config.stores  # a malformed store list is a ValueError before anything starts
    if config.playground and config.http is None:
        raise ValueError("the playground is served over HTTP: it needs an HTTP address (--http)")
    policy = load_policy(config.policies)
    gate = decision_test_gate(config.policy_tests, config.engine) if config.policy_tests else None
    if gate is not None and (failing := gate(policy)):
        raise PolicyError(f"{len(failing)} decision test(s) fail with the policy in {config.policies}:\n" +
                          "\n".join(failing[:10]))  # fmt: skip
    # Outermost first: the call log and the span see every call as its caller does, refusals included.
    interceptors: list[grpc.ServerInterceptor] = [
        CallLog("authz.access"), *tracing.server_interceptors(config.tracing, SERVICE_NAME, "authz"), DecodeGuard(),
    ]  # fmt: skip
    tokens = security.tokens_required(config.listen, config.require_token)
    if tokens:
        if not config.token:
            raise ValueError(
                f"decision calls on {config.listen} need a token: set {security.TOKEN_ENV} or a token file "
                "(tokens are off by default on loopback only)"
            )
        interceptors.append(security.token_interceptor(config.token))
    holder = EngineHolder(policy, engine_factory(config.engine))
    # An audit log that cannot be opened refuses the start (AuditLogError names it), before anything runs.
    audit = AuditLog(config.audit_log, redact_context=config.audit_redact_context) if config.audit_log else None
    executor = futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="authz")
    server = grpc.server(
        executor,
        interceptors=interceptors,
        options=[
            *tls.server_options(reuse_port=config.reuse_port),
            ("grpc.max_receive_message_length", config.max_message_bytes),
        ],
    )
    clients: list[StoreClient] = []
    try:
        port = tls.bind(
            server, config.listen, cert=config.tls_cert, key=config.tls_key, client_ca=config.tls_client_ca,
            insecure=config.insecure, service="decision service", reuse_port=config.reuse_port,
        )  # fmt: skip
        for address in stores:
            clients.append(StoreClient(
                address, config.store_token, ca=config.store_ca, cert=config.store_cert, key=config.store_key,
                tls=config.store_tls,
            ))  # fmt: skip
    except BaseException:
        server.stop(None)
        executor.shutdown(wait=False)
        for client in clients:
            client.close()
        if audit is not None:
            audit.close()
        raise
    replica = Replica(clients)
    decider = Decider(replica, holder, cache=config.decision_cache)
    metrics = DecisionMetrics.create()
    authorizer_pb2_grpc.add_AuthorizerServicer_to_server(
        AuthorizerServicer(decider, audit=audit, metrics=metrics), server
    )
    health_servicer = _Health()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    reloader = PolicyReloader(Path(config.policies), holder, interval=config.reload_interval, gate=gate)
    reloader.metrics = metrics
    metrics.watch("authz_replica_revision", "Store revision the replica has applied.", lambda: replica.revision)
    metrics.watch(
        "authz_replica_lag_revisions", "Revisions the store has that the replica has not applied.",
        lambda: max(0, replica.store_revision - replica.revision),
    )  # fmt: skip
    metrics.watch(
        "authz_replica_staleness_seconds", "Seconds since the replica last heard from the store (0 when connected).",
        lambda: min(replica.staleness(), 1e9),
    )  # fmt: skip
    metrics.watch_each(
        "authz_replica_store_followed", "1 for the store instance the replica follows while connected, else 0.",
        "store", stores, lambda address: float(replica.connected and replica.following == address),
    )  # fmt: skip
    metrics.watch(
        "authz_policy_error", "1 while the last policy edit was refused.", lambda: float(bool(reloader.error))
    )
    metrics.watch(
        "authz_policy_runtime_errors", "Lines of the serving policy that raised while deciding (each a deny).",
        lambda: float(holder.runtime_errors),
    )  # fmt: skip
    running = DecisionServer(server, port, decider, replica, reloader, health_servicer, executor, audit, clients)
    if config.http is not None:
        try:
            running.http_server = _serve_http(config, config.http, decider, audit, metrics)
        except BaseException:
            server.stop(None)
            executor.shutdown(wait=False)
            for client in clients:
                client.close()
            if audit is not None:
                audit.close()
            raise
    if config.metrics_address is not None:
        running.metrics_endpoint = serve_metrics_at(metrics.registry, config.metrics_address)
    reloader._on_change = running.update_health
    if audit is not None:
        audit.on_failure = metrics.audit_failures.inc
        audit.on_change = running.update_audit_health  # at once; the health thread also refreshes it
    running.update_health()
    server.start()
    replica.start()
    reloader.start()
    threading.Thread(target=_health_when_synced, args=(running,), name="health", daemon=True).start()
    log.info("decision service on %s:%d (%s, %s), policy %s, store %s", config.listen.rsplit(":", 1)[0], port,
             _transport(config), "tokens required" if tokens else "no token required", policy.version,
             ", ".join(stores))  # fmt: skip
    return running


def _transport(config: ServerConfig) -> str:
    if config.tls_cert is None:
        return "plain text"
    return "mutual TLS" if config.tls_client_ca is not None else "TLS"


def _serve_http(
    config: ServerConfig, listen: str, decider: Decider, audit: AuditLog | None, metrics: DecisionMetrics
) -> HttpServer:
    """AuthZEN over HTTP on ``listen``: this server's decider, TLS files, audit log and metrics; a token
    as for gRPC, judged for this address (required off loopback, or everywhere with require_token)."""
    from authz.http.app import create_app  # only a service with --http loads Starlette and uvicorn
    from authz.http.server import HttpConfig, serve_http

    tokens = security.tokens_required(listen, config.require_token)
    if tokens and not config.token:
        raise ValueError(
            f"decision calls on {listen} need a token: set {security.TOKEN_ENV} or a token file "
            "(tokens are off by default on loopback only)"
        )
    playground = None
    if config.playground:
        from authz.http.playground import PlaygroundConfig

        playground = PlaygroundConfig(world=config.playground_world, engine=config.engine)
    app = create_app(decider, token=config.token if tokens else "", audit=audit, metrics=metrics,
                     max_body=config.max_message_bytes, playground=playground)  # fmt: skip
    http = serve_http(app, HttpConfig(listen, cert=config.tls_cert, key=config.tls_key, client_ca=config.tls_client_ca,
                                      insecure=config.insecure, reuse_port=config.reuse_port))  # fmt: skip
    log.info("AuthZEN over HTTP on %s (%s, %s)", http.url, _transport(config),
             "tokens required" if tokens else "no token required")  # fmt: skip
    if playground is not None:
        log.info("policy playground on %s/playground", http.url)
    return http


def _health_when_synced(running: DecisionServer) -> None:
    """Keep health current: serving once synced; the replica's connection as it changes."""
    while not running.replica.stopping(0.25):
        running.update_health()
