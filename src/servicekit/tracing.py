"""OpenTelemetry spans of both services' RPCs, off unless asked.

Tracing is on when a server is started with ``--otel`` (``tracing=True`` in its config) or when
``$OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set. Then the
server adds the gRPC instrumentation's server interceptor (opentelemetry-instrumentation-grpc):
one SERVER span per call of its own service, named after the method
(``/authz.v1.Authorizer/Check``, ``/store.v1.Store/Watch``, ...), with ``rpc.system``,
``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code`` and the peer's address, continuing the
caller's trace when its metadata carries a ``traceparent``. Health and reflection calls make none.

The spans go to the tracer provider of the service's name, made on first use: a
BatchSpanProcessor over the OTLP gRPC exporter, which reads the standard ``OTEL_EXPORTER_OTLP_*``
variables (endpoint, default ``localhost:4317``; headers; certificates; ...) and is flushed at
exit. :func:`install` puts one provider in place of those (tests use an in-memory exporter; an
application embedding the servers may pass its own).

Shared between threads: the providers (thread-safe), created once each under :data:`_lock`.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_lock = threading.Lock()
_providers: dict[str, TracerProvider] = {}
_installed: TracerProvider | None = None


def wanted(flag: bool) -> bool:
    """Tracing on: asked with ``--otel``, or an OTLP endpoint in the environment."""
    return flag or any(os.environ.get(name) for name in ENDPOINT_ENVS)


def install(provider: TracerProvider | None) -> TracerProvider | None:
    """Send every server's spans to ``provider`` from now on (None: back to the OTLP providers);
    returns the one installed before."""
    global _installed  # the process's choice of provider, set by its embedder
    with _lock:
        previous, _installed = _installed, provider
    return previous


def provider(service_name: str) -> TracerProvider:
    """The installed provider, else the OTLP provider of ``service_name`` (made on first use)."""
    with _lock:
        if _installed is not None:
            return _installed
        if service_name not in _providers:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            name = os.environ.get("OTEL_SERVICE_NAME") or service_name
            made = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
            made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _providers[service_name] = made
        return _providers[service_name]


def server_interceptors(flag: bool, service: str, service_name: str) -> list[grpc.ServerInterceptor]:
    """The interceptor that traces the calls of gRPC service ``service`` (``authz.v1.Authorizer``)
    when tracing is :func:`wanted`, else none. ``service_name`` names the process in its spans."""
    if not wanted(flag):
        return []
    from opentelemetry.instrumentation.grpc import filters, server_interceptor

    # The instrumentation has no type hints; it returns a grpc.ServerInterceptor.
    interceptor: grpc.ServerInterceptor = server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider(service_name), filter_=filters.service_name(service)
    )
    return [interceptor]
