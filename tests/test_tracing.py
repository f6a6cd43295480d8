"""OpenTelemetry spans of both services' calls (through the gRPC instrumentation), collected by an
in-memory exporter; off unless asked."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from authz.client import Check, Client
from authz.server import DecisionServer, ServerConfig
from authz.server import create_server as create_decision_server
from servicekit import tracing
from store.client import StoreClient
from store.server import StoreConfig, StoreServer, create_server
from tests.conftest import DEMO_WORLD, POLICIES, TOKEN
from tests.helpers import wait_serving

CAROL_EDITS = ("user:carol", "report.edit", "report:rep-weekly-vision")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass
class Traced:
    store: StoreServer
    decision: DecisionServer
    address: str
    spans: InMemorySpanExporter

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Every server's spans go to an in-memory exporter; no OTLP endpoint in the environment."""
    for name in tracing.ENDPOINT_ENVS:
        monkeypatch.delenv(name, raising=False)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    previous = tracing.install(provider)
    try:
        yield spans
    finally:
        tracing.install(previous)
        provider.shutdown()


def _stack(tmp_path: Path, spans: InMemorySpanExporter, *, traced: bool) -> Iterator[Traced]:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    store = create_server(
        StoreConfig(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'store.db'}", token=TOKEN,
                    tracing=traced)
    )  # fmt: skip
    decision = None
    try:
        with StoreClient(f"127.0.0.1:{store.port}", TOKEN) as client:
            revision = client.import_world(DEMO_WORLD.read_bytes()).revision
        decision = create_decision_server(
            ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{store.port}", store_token=TOKEN, policies=policies,
                         tracing=traced)
        )  # fmt: skip
        assert decision.replica.wait_for(revision, 30)
        yield Traced(store, decision, f"127.0.0.1:{decision.port}", spans)
    finally:
        if decision is not None:
            decision.stop(0)
        store.stop(0)


@pytest.fixture
def traced(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[Traced]:
    """Both services with tracing on (``--otel``)."""
    yield from _stack(tmp_path, exporter, traced=True)


def _named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def test_every_decision_call_is_a_span(traced: Traced) -> None:
    """Check, BatchCheck, ListResources and ListSubjects each make one SERVER span named after the method,
    with the RPC's attributes and its status code; the store's calls too (ImportWorld, the replica's
    Snapshot); health calls make none."""
    with Client(traced.address, token="") as client:
        assert client.check(*CAROL_EDITS).allowed
        assert len(client.batch_check([Check(*CAROL_EDITS), Check(*CAROL_EDITS)])) == 2
        assert "rep-weekly-vision" in client.list_resources("user:carol", "report.edit", "report").ids
        assert "carol" in client.list_subjects("report.edit", "report:rep-weekly-vision").ids
    wait_serving(traced.address)
    spans = traced.finished()
    for method in ("Check", "BatchCheck", "ListResources", "ListSubjects"):
        (span,) = _named(spans, f"/authz.v1.Authorizer/{method}")
        assert span.kind == SpanKind.SERVER
        assert span.attributes is not None
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == "authz.v1.Authorizer"
        assert span.attributes["rpc.method"] == method
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
        assert span.status.status_code != StatusCode.ERROR
    assert _named(spans, "/store.v1.Store/ImportWorld")
    assert _named(spans, "/store.v1.Store/Snapshot"), "the replica's first load, seen by the store"
    assert not [span for span in spans if "Health" in span.name]


def test_a_refused_call_carries_its_code(traced: Traced) -> None:
    """INVALID_ARGUMENT: the span carries the gRPC code; its status stays unset, as the semantic conventions
    have it for a caller's error on a server span (server faults such as UNAVAILABLE are errors)."""
    with Client(traced.address, token="") as client, pytest.raises(grpc.RpcError):
        client.check("user:b b", "report.edit", "report:x")
    (span,) = _named(traced.finished(), "/authz.v1.Authorizer/Check")
    assert span.status.status_code == StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    traced.spans.clear()
    far = Check(*CAROL_EDITS, min_revision=10**9).message()
    with grpc.insecure_channel(traced.address) as channel:  # a plain channel: no retries
        call = channel.unary_unary("/authz.v1.Authorizer/Check", request_serializer=type(far).SerializeToString)
        with pytest.raises(grpc.RpcError) as info:
            call(far, timeout=1)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    (span,) = _named(traced.finished(), "/authz.v1.Authorizer/Check")
    assert span.status.status_code == StatusCode.ERROR


def test_the_callers_trace_is_continued(traced: Traced) -> None:
    """A call carrying W3C `traceparent` metadata gets a span in the caller's trace, as its child."""
    with Client(traced.address, token="") as client:
        client.stub.Check(
            Check(*CAROL_EDITS).message(), timeout=10,
            metadata=(("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01"),),
        )  # fmt: skip
    (span,) = _named(traced.finished(), "/authz.v1.Authorizer/Check")
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"


def test_off_unless_asked(tmp_path: Path, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --otel and without an OTLP endpoint in the environment, no span is made; the endpoint
    variable alone turns tracing on."""
    for _ in _stack(tmp_path, exporter, traced=False):
        with Client(f"127.0.0.1:{_.decision.port}", token="") as client:
            assert client.check(*CAROL_EDITS).allowed
    assert exporter.get_finished_spans() == ()
    assert tracing.server_interceptors(False, "authz.v1.Authorizer", "authz") == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    assert tracing.wanted(False)
    assert len(tracing.server_interceptors(False, "authz.v1.Authorizer", "authz")) == 1
