"""Prometheus metrics of the decision service, served over HTTP (`--metrics HOST:PORT`).

Each server owns its own CollectorRegistry (no process-wide globals), so several servers in one
process (tests, `authz up`) do not collide. Counters are updated by gRPC handler threads;
prometheus_client's metrics are thread-safe. Gauges about the replica and the policy are read
when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass
class DecisionMetrics:
    registry: CollectorRegistry
    decisions: Counter
    latency: Histogram
    reloads: Counter
    reload_failures: Counter
    refusals: Counter
    audit_failures: Counter
    _children: dict[Any, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls) -> DecisionMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            decisions=Counter(
                "authz_decisions", "Decisions answered, by result and action.", ["result", "action"], registry=registry
            ),
            latency=Histogram(
                "authz_call_seconds",
                "Time to answer a call, by method.",
                ["method"],
                registry=registry,
                buckets=LATENCY_BUCKETS,
            ),
            reloads=Counter("authz_policy_reloads", "Policy reloads that were swapped in.", registry=registry),
            reload_failures=Counter(
                "authz_policy_reload_failures",
                "Policy edits refused (the last good policy kept serving).",
                registry=registry,
            ),
            refusals=Counter(
                "authz_policy_refusals",
                "Policy edits refused, by why: lint (does not load or check), tests (decision tests fail), engine.",
                ["reason"],
                registry=registry,
            ),
            audit_failures=Counter(
                "authz_audit_failures",
                "Audit log writes that failed (the decisions were still answered, without their lines).",
                registry=registry,
            ),
        )

    def watch(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A gauge read when scraped."""
        Gauge(name, help_text, registry=self.registry).set_function(read)

    def watch_each(
        self, name: str, help_text: str, label: str, values: Iterable[str], read: Callable[[str], float]
    ) -> None:
        """A gauge with one series per value of ``label``, each ``read(value)`` when scraped."""
        gauge = Gauge(name, help_text, [label], registry=self.registry)
        for value in values:
            gauge.labels(value).set_function(partial(read, value))

    def record(self, action: str, allowed: bool) -> None:
        self._decided(action, allowed).inc()

    def record_many(self, outcomes: Iterable[tuple[str, bool]]) -> None:
        """Many decisions (action, allowed): counted first, then one increment per series."""
        counts: dict[tuple[str, bool], int] = {}
        for outcome in outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
        for (action, allowed), count in counts.items():
            self._decided(action, allowed).inc(count)

    def observe(self, method: str, seconds: float) -> None:
        """One call of ``method`` answered in ``seconds`` (``authz_call_seconds``)."""
        child = self._children.get(method)
        if child is None:
            child = self._children[method] = self.latency.labels(method)
        child.observe(seconds)

    def _decided(self, action: str, allowed: bool) -> Any:
        # labels() locks and builds its key on every call: its children are kept here instead, one per
        # (allowed, action) and method. Safe between threads: a race looks up the same child twice.
        key = (allowed, action)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.decisions.labels("allow" if allowed else "deny", action)
        return child
