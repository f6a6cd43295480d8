"""Prometheus metrics over HTTP, served the same way by both services.

Each server owns its own CollectorRegistry (no process-wide globals), so several servers in one
process (tests, `authz up`) do not collide; :func:`serve_metrics` serves one registry at
``http://HOST:PORT/metrics`` from a daemon thread until :meth:`MetricsEndpoint.stop`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server


@dataclass
class MetricsEndpoint:
    """A running metrics HTTP server; ``port`` is the one bound (useful with port 0)."""

    http: Any
    port: int

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def serve_metrics(registry: CollectorRegistry, port: int, address: str = "127.0.0.1") -> MetricsEndpoint:
    """Serve ``registry`` at http://address:port/metrics."""
    http, _ = start_http_server(port, addr=address, registry=registry)
    return MetricsEndpoint(http, int(http.server_port))
