"""Prometheus metrics of the store service (`authz store serve --metrics-port`): committed writes,
changes recorded and the last revision. One registry per server; counters are thread-safe."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class StoreMetrics:
    registry: CollectorRegistry
    writes: Counter
    changes: Counter
    revision: Gauge

    @classmethod
    def create(cls) -> StoreMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            writes=Counter("store_writes", "Committed write transactions (each one revision).", registry=registry),
            changes=Counter("store_changes", "Entity changes recorded in the change log.", registry=registry),
            revision=Gauge("store_revision", "The last committed revision.", registry=registry),
        )

    def committed(self, revision: int, changes: int) -> None:
        self.writes.inc()
        self.changes.inc(changes)
        self.revision.set(revision)
