"""Prometheus metrics of the store service (`authz store serve --metrics HOST:PORT`): committed writes,
changes recorded and the last revision; on PostgreSQL, revision notifications received from other
instances and whether the listener is connected. One registry per server; metrics are thread-safe."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class StoreMetrics:
    registry: CollectorRegistry
    writes: Counter
    changes: Counter
    revision: Gauge
    notifications: Counter
    listening: Gauge

    @classmethod
    def create(cls) -> StoreMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            writes=Counter("store_writes", "Committed write transactions (each one revision).", registry=registry),
            changes=Counter("store_changes", "Entity changes recorded in the change log.", registry=registry),
            revision=Gauge("store_revision", "The last committed revision.", registry=registry),
            notifications=Counter(
                "store_revision_notifications",
                "Revision notifications received over LISTEN (PostgreSQL; this instance's commits included).",
                registry=registry,
            ),
            listening=Gauge(
                "store_revision_listening",
                "1 while LISTEN for other instances' commits is active; 0: Watch streams wake by polling only.",
                registry=registry,
            ),
        )

    def committed(self, revision: int, changes: int) -> None:
        self.writes.inc()
        self.changes.inc(changes)
        self.revision.set(revision)
