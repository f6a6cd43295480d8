"""Bad input gets INVALID_ARGUMENT on both services, messages stay short, and log lines stay whole.

Never UNKNOWN, INTERNAL or UNAVAILABLE for what the caller sent: forged page tokens, NUL bytes,
megabyte values, truncated or undecodable messages.
"""

from __future__ import annotations

import base64
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from authz.v1 import authorizer_pb2 as apb
from servicekit.text import EscapingFormatter, clip
from store.client import StoreClient
from store.v1 import store_pb2 as pb
from tests.conftest import TOKEN, Stack
from tests.helpers import authz_process, free_port, wait_serving


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


BOGUS_TOKENS = [
    pytest.param(_b64("[" * 100_000 + "]" * 100_000), id="deeply nested JSON"),
    pytest.param(_b64('{"after": 5}'), id="an object"),
    pytest.param(_b64("[1, 2]"), id="numbers"),
    pytest.param(_b64('"x"'), id="a string"),
    pytest.param(_b64("5"), id="a number"),
    pytest.param(_b64('["a", "b", "c"]'), id="too many parts"),
    pytest.param(_b64("[[]]"), id="a list in a list"),
    pytest.param("garbage!", id="not base64"),
    pytest.param("A" * 1_000_000, id="a megabyte"),
    pytest.param(_b64('["\\ud800"]'), id="lone surrogate"),
]


def _refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


@pytest.mark.parametrize("token", BOGUS_TOKENS)
def test_store_page_tokens(store_client: StoreClient, token: str) -> None:
    """A page token the store did not issue is INVALID_ARGUMENT naming page_token."""
    error = _refused(lambda: store_client.call("List", pb.ListRequest(kind="team", page_token=token)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "page_token" in error.details()
    assert len(error.details()) < 2048


@pytest.mark.parametrize("token", BOGUS_TOKENS)
def test_decision_page_tokens(stack: Stack, token: str) -> None:
    """A page token the decision service did not issue is INVALID_ARGUMENT on both list calls."""
    calls = [
        lambda: stack.client.stub.ListResources(
            apb.ListResourcesRequest(
                subject=apb.ObjectRef(kind="user", id="carol"),
                action="report.view",
                resource_kind="report",
                page_token=token,
            ),
            timeout=10,
        ),
        lambda: stack.client.stub.ListSubjects(
            apb.ListSubjectsRequest(
                action="team.view", resource=apb.ObjectRef(kind="team", id="vision"), page_token=token
            ),
            timeout=10,
        ),
    ]
    for call in calls:
        error = _refused(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "page_token" in error.details()


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("CreateOrg", pb.Org(id="acme\x00"), "org.id"),
        ("SetStorageBucket", pb.SetStorageBucketRequest(team="vision", bucket="b\x00ucket"), "storage_bucket"),
        (
            "CreateRegistry",
            pb.Registry(
                id="nul",
                org="acme",
                visibility="organization",
                restrict_types=True,
                accepted_types=["model", "data\x00set"],
            ),
            "accepted_types[1]",
        ),
        ("CreateArtifact", pb.Artifact(id="a9", project="p1", creator="user:bob", type="mo\x00del"), "type"),
    ],
)
def test_nul_bytes(store_client: StoreClient, method: str, request_message: object, field: str) -> None:
    """A NUL character in any field is INVALID_ARGUMENT naming the field, on SQLite and PostgreSQL alike."""
    store_client.import_world(
        b"world: {orgs: [{id: acme, users: [{id: bob}]}], teams: [{id: vision, org: acme, members: {bob: member}}],"
        b" projects: [{id: p1, owner: 'team:vision', visibility: team}]}"
    )
    error = _refused(lambda: store_client.write(method, request_message))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field in error.details()


def test_nul_bytes_in_a_world(store_client: StoreClient) -> None:
    """A world document with a NUL character is INVALID_ARGUMENT naming its path."""
    document = b'{"world": {"orgs": [{"id": "acme", "users": [{"id": "bob"}]}], "registries": [{"id": "r",' \
        b' "org": "acme", "visibility": "organization", "accepted_types": ["model\\u0000"]}]}}'  # fmt: skip
    error = _refused(lambda: store_client.import_world(document))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "world.registries[0].accepted_types" in error.details()


def test_megabyte_values_are_cut(store_client: StoreClient, stack: Stack) -> None:
    """Errors about a megabyte of input quote a short prefix and the length, never the whole of it."""
    huge = "x" * 1_000_000
    errors = [
        _refused(lambda: store_client.write("CreateTeam", pb.Team(id=huge, org="acme"))),
        _refused(lambda: store_client.write("CreateProject", pb.Project(id="p", owner=huge, visibility="team"))),
        _refused(lambda: store_client.import_world(f"world: {{{huge}: 1}}".encode())),
        _refused(lambda: stack.client.check("user:bob", f"report.{huge}", "report:r1")),
        _refused(lambda: stack.client.check("user:bob", "report.edit", f"report:{'!' * 1_000_000}")),
    ]
    for error in errors:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert len(error.details()) < 2048, len(error.details())


def test_clip() -> None:
    """clip shows short values whole and long ones as a prefix with their length."""
    assert clip("bob") == "'bob'"
    shown = clip("y" * 10_000)
    assert shown.startswith("'yyy")
    assert "10000 characters" in shown
    assert len(shown) < 120


def _raw(channel: grpc.Channel, method: str) -> Callable[..., bytes]:
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)  # type: ignore[return-value]


def test_undecodable_requests(stack: Stack) -> None:
    """Truncated and corrupted messages are INVALID_ARGUMENT on both services, not INTERNAL."""
    check = apb.CheckRequest(
        subject=apb.ObjectRef(kind="user", id="bob"), action="report.edit",
        resource=apb.ObjectRef(kind="report", id="rep-weekly-vision"),
    ).SerializeToString()  # fmt: skip
    team = pb.Team(id="vision-two", org="acme").SerializeToString()
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    with (
        grpc.insecure_channel(stack.address) as decision,
        grpc.insecure_channel(f"127.0.0.1:{stack.store.port}") as store,
    ):
        for payload in (check[:-3], b"\xff\xff\xff\xff", check[:5] + b"\x80"):
            error = _refused(lambda p=payload: _raw(decision, "/authz.v1.Authorizer/Check")(p, timeout=10))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (payload, error.details())
            assert "decoded" in error.details()
        error = _refused(lambda: _raw(store, "/store.v1.Store/CreateTeam")(team[:-4], timeout=10, metadata=metadata))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        stream = store.stream_unary("/store.v1.Store/ImportWorld", request_serializer=None, response_deserializer=None)
        error = _refused(lambda: stream(iter([b"\x0a\xff\xff\xff\x0f"]), timeout=10, metadata=metadata))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()


def test_escaping_formatter() -> None:
    """A record whose arguments hold line breaks is written on one line; its traceback keeps its lines."""
    formatter = EscapingFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "imported %s", ("w\n2026 ERROR forged\r",), None)
    assert formatter.format(record) == "INFO imported w\\n2026 ERROR forged\\r"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "a\nb", (), sys.exc_info())
    text = formatter.format(failed)
    assert text.splitlines()[0] == "ERROR a\\nb"
    assert "Traceback" in text


def test_store_log_lines_cannot_be_forged(tmp_path: Path) -> None:
    """A world name with line breaks, sent by a caller, stays inside one line of the store's log."""
    port = free_port()
    log = tmp_path / "store.log"
    process = authz_process(
        "store", "serve", "--listen", f"127.0.0.1:{port}", "--database-url", f"sqlite:///{tmp_path / 's.db'}",
        log=log, env={"AUTHZ_STORE_TOKEN": TOKEN}, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        with StoreClient(f"127.0.0.1:{port}", TOKEN) as client:
            client.import_world(b"world: {orgs: [{id: acme}]}", name="w.yaml\n2026-01-01 ERROR authz: forged line")
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    lines = log.read_text().splitlines()
    assert any("imported w.yaml\\n2026-01-01 ERROR authz: forged line" in line for line in lines), lines
    assert not any(line.startswith("2026-01-01 ERROR") for line in lines)
