"""A real store and a real decision service serving gRPC and AuthZEN over HTTP, for the AuthZEN tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx

from authz.server import DecisionServer, ServerConfig
from authz.server import create_server as create_decision_server
from authz.v1 import authorizer_pb2 as pb
from authz.v1 import authorizer_pb2_grpc
from store.client import StoreClient
from store.server import StoreConfig, create_server
from tests.conftest import DEMO_WORLD, POLICIES, TOKEN

EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"
SEARCH_RESOURCE = "/access/v1/search/resource"
SEARCH_SUBJECT = "/access/v1/search/subject"
SEARCH_ACTION = "/access/v1/search/action"


@dataclass
class AuthZen:
    decision: DecisionServer
    store_client: StoreClient
    http: httpx.Client  # base_url: the AuthZEN server
    stub: authorizer_pb2_grpc.AuthorizerStub  # gRPC, same process and replica
    audit: Path


@contextlib.contextmanager
def serving(tmp_path: Path, *, client: dict[str, Any] | None = None, **config: Any) -> Iterator[AuthZen]:
    """The demo world in a SQLite store, and a decision service with ``http`` on a free loopback port
    (``config`` overrides ServerConfig; ``client`` is passed to httpx.Client)."""
    store = create_server(
        StoreConfig(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'store.db'}", token=TOKEN,
                    allow_test_reset=True)
    )  # fmt: skip
    store_client = StoreClient(f"127.0.0.1:{store.port}", TOKEN)
    decision = None
    try:
        revision = store_client.import_world(DEMO_WORLD.read_bytes()).revision
        settings = {
            "listen": "127.0.0.1:0", "store": f"127.0.0.1:{store.port}", "store_token": TOKEN, "policies": POLICIES,
            "http": "127.0.0.1:0", "audit_log": tmp_path / "audit.jsonl", **config,
        }  # fmt: skip
        decision = create_decision_server(ServerConfig(**settings))
        assert decision.replica.wait_for(revision, 30)
        assert decision.http_server is not None
        with (
            httpx.Client(base_url=decision.http_server.url, timeout=30, **(client or {})) as http,
            grpc.insecure_channel(f"127.0.0.1:{decision.port}") as channel,
        ):
            yield AuthZen(decision, store_client, http, authorizer_pb2_grpc.AuthorizerStub(channel),
                          tmp_path / "audit.jsonl")  # fmt: skip
    finally:
        if decision is not None:
            decision.stop(0)
        store_client.close()
        store.stop(0)


def subject(ref: str) -> dict[str, str]:
    """``user:carol`` as an AuthZEN subject; ``anonymous`` with an empty id."""
    kind, _, ident = ref.partition(":")
    return {"type": kind, "id": ident}


def resource(ref: str) -> dict[str, str]:
    kind, _, ident = ref.partition(":")
    return {"type": kind, "id": ident}


def evaluation(who: str, action: str, what: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"subject": subject(who), "action": {"name": action}, "resource": resource(what)}
    if context is not None:
        body["context"] = context
    return body


def check_request(who: str, action: str, what: str, context: dict[str, str] | None = None) -> pb.CheckRequest:
    kind, _, ident = who.partition(":")
    rkind, _, rident = what.partition(":")
    return pb.CheckRequest(
        subject=pb.ObjectRef(kind=kind, id=ident), action=action, resource=pb.ObjectRef(kind=rkind, id=rident),
        context=context or {},
    )  # fmt: skip
