"""Prometheus metrics over HTTP, served the same way by both services.

Each server owns its own CollectorRegistry (no process-wide globals), so several servers in one
process (tests, `authz up`) do not collide; :func:`serve_metrics` serves one registry at
``http://HOST:PORT/metrics`` from a daemon thread until :meth:`MetricsEndpoint.stop`. The address is
the operator's (``--metrics HOST:PORT``, any interface: a scraper usually runs on another host);
:func:`parse_address` reads it, :func:`offset` gives worker N of ``serve --workers`` its own port.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger("servicekit.metrics")


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
    endpoint = MetricsEndpoint(http, int(http.server_port))
    shown = f"[{address}]" if ":" in address else address
    log.info("metrics on http://%s:%d/metrics", shown, endpoint.port)
    return endpoint


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::]:9100`` for IPv6; a bare ``PORT`` is loopback) as (host, port); ValueError
    naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or "[" in host or "]" in host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 0.0.0.0:9100, 127.0.0.1:9100 or [::]:9100)")
    return host, int(port)


def offset(address: str, n: int) -> str:
    """``address`` with its port moved up by ``n`` (port 0 stays 0: any free port)."""
    host, port = parse_address(address)
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port + n if port else 0}"


def serve_metrics_at(registry: CollectorRegistry, address: str) -> MetricsEndpoint:
    """Serve ``registry`` at http://HOST:PORT/metrics for ``address`` in :func:`parse_address`'s form."""
    host, port = parse_address(address)
    return serve_metrics(registry, port, host)
