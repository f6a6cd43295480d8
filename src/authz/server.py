"""Build and run the decision service: Authorizer, health and reflection on one port.

Health: "" and "authz.v1.Authorizer" are SERVING once a policy is loaded and the replica has
its first snapshot; "authz.v1.Authorizer/policy" is NOT_SERVING while the last policy edit was
refused, with the error in the `policy-error` trailing metadata of its health Check.
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

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from authz import security
from authz.audit import AuditLog
from authz.decider import Decider
from authz.engines import engine_factory
from authz.engines.holder import EngineHolder
from authz.metrics import DecisionMetrics
from authz.policy import load_policy
from authz.reloader import PolicyReloader
from authz.replica import Replica
from authz.service import AuthorizerServicer
from authz.v1 import authorizer_pb2, authorizer_pb2_grpc
from servicekit import tls
from servicekit.guard import DecodeGuard
from servicekit.metrics import MetricsEndpoint, serve_metrics
from servicekit.text import escape
from store.client import StoreClient

log = logging.getLogger("authz.server")

SERVICE_NAME = authorizer_pb2.DESCRIPTOR.services_by_name["Authorizer"].full_name
POLICY_HEALTH = f"{SERVICE_NAME}/policy"
REPLICA_HEALTH = f"{SERVICE_NAME}/replica"
AUDIT_HEALTH = f"{SERVICE_NAME}/audit"


MAX_MESSAGE_BYTES = 4 << 20  # a bigger request is refused by gRPC with RESOURCE_EXHAUSTED


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    store: str = "127.0.0.1:50052"
    store_token: str = field(default="", repr=False)
    policies: Path = Path("policies")
    audit_log: Path | None = None
    max_workers: int = 32
    reload_interval: float = 0.25
    engine: str = "compiled"
    metrics_port: int | None = None  # serve Prometheus metrics on 127.0.0.1:PORT (0: any free port)
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


class _Health(health.HealthServicer):  # type: ignore[misc]
    """Standard health, plus the refused policy's error as trailing metadata."""

    def __init__(self) -> None:
        super().__init__()
        self.policy_error = ""
        self.replica_detail = ""
        self.audit_error = ""

    def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> object:
        if request.service == POLICY_HEALTH and self.policy_error:
            context.set_trailing_metadata((("policy-error", self.policy_error.encode("ascii", "replace").decode()),))
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
    store_client: StoreClient
    metrics_endpoint: MetricsEndpoint | None = None
    # Reading the audit state and setting its health happen together, so that the last caller
    # (whoever saw the last change) leaves the right status, whichever thread it runs on.
    _audit_health_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def metrics_port(self) -> int:
        return self.metrics_endpoint.port if self.metrics_endpoint is not None else 0

    def stop(self, grace: float | None = None) -> None:
        self.server.stop(grace).wait()
        self.reloader.stop()
        self.replica.stop()
        self.store_client.close()
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
        self.health.policy_error = self.reloader.error
        self.health.set(
            POLICY_HEALTH,
            health_pb2.HealthCheckResponse.NOT_SERVING
            if self.reloader.error
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
            detail = f"connected; revision {replica.revision}"
        elif not replica.last_contact:
            detail = f"store unreachable, never reached ({replica.attempts} attempts); {replica.last_error}"
        else:
            detail = (
                f"store unreachable for {staleness:.1f}s ({replica.attempts} attempts); revision "
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
    policy = load_policy(config.policies)
    interceptors: list[grpc.ServerInterceptor] = [DecodeGuard()]
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
    audit = AuditLog(config.audit_log) if config.audit_log else None
    executor = futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="authz")
    server = grpc.server(
        executor,
        interceptors=interceptors,
        options=[
            *tls.server_options(reuse_port=config.reuse_port),
            ("grpc.max_receive_message_length", config.max_message_bytes),
        ],
    )
    try:
        port = tls.bind(
            server, config.listen, cert=config.tls_cert, key=config.tls_key, client_ca=config.tls_client_ca,
            insecure=config.insecure, service="decision service", reuse_port=config.reuse_port,
        )  # fmt: skip
        client = StoreClient(
            config.store, config.store_token, ca=config.store_ca, cert=config.store_cert, key=config.store_key,
            tls=config.store_tls,
        )  # fmt: skip
    except BaseException:
        server.stop(None)
        executor.shutdown(wait=False)
        if audit is not None:
            audit.close()
        raise
    replica = Replica(client)
    decider = Decider(replica, holder)
    metrics = DecisionMetrics.create()
    authorizer_pb2_grpc.add_AuthorizerServicer_to_server(
        AuthorizerServicer(decider, audit=audit, metrics=metrics), server
    )
    health_servicer = _Health()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    reloader = PolicyReloader(Path(config.policies), holder, interval=config.reload_interval)
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
    metrics.watch(
        "authz_policy_error", "1 while the last policy edit was refused.", lambda: float(bool(reloader.error))
    )
    running = DecisionServer(server, port, decider, replica, reloader, health_servicer, executor, audit, client)
    if config.metrics_port is not None:
        running.metrics_endpoint = serve_metrics(metrics.registry, config.metrics_port)
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
             config.store)  # fmt: skip
    return running


def _transport(config: ServerConfig) -> str:
    if config.tls_cert is None:
        return "plain text"
    return "mutual TLS" if config.tls_client_ca is not None else "TLS"


def _health_when_synced(running: DecisionServer) -> None:
    """Keep health current: serving once synced; the replica's connection as it changes."""
    while not running.replica.stopping(0.25):
        running.update_health()
