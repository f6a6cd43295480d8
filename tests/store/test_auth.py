"""Credentials: every Store call needs the bearer token; the token never reaches a log."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import grpc
import pytest

from store.client import StoreClient
from store.server import StoreServer
from store.v1 import store_pb2 as pb
from tests.conftest import TOKEN
from tests.helpers import authz_process, free_port, wait_serving

CALLS = [
    ("CreateOrg", pb.Org(id="acme")),
    ("DeleteOrg", pb.Key(id="acme")),
    ("Get", pb.GetRequest(kind="org", id="acme")),
    ("GetRevision", pb.RevisionRequest()),
]


@pytest.mark.parametrize("token", ["", "wrong-token", TOKEN[:-1]], ids=["missing", "wrong", "prefix"])
@pytest.mark.parametrize(("method", "request_message"), CALLS, ids=[c[0] for c in CALLS])
def test_calls_without_the_token_are_refused(
    store_server: StoreServer, token: str, method: str, request_message: object
) -> None:
    """A missing or wrong bearer token gives UNAUTHENTICATED and changes nothing."""
    with StoreClient(f"127.0.0.1:{store_server.port}", token) as client:
        if not token:
            client.metadata = ()
        with pytest.raises(grpc.RpcError) as info:
            client.call(method, request_message)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "token" in info.value.details()


@pytest.mark.parametrize("stream", ["Watch", "Snapshot", "ImportWorld"])
def test_streams_without_the_token_are_refused(store_server: StoreServer, stream: str) -> None:
    """Watch, Snapshot and ImportWorld need the token too."""
    with StoreClient(f"127.0.0.1:{store_server.port}", "nope") as client:
        calls = {
            "Watch": lambda: next(iter(client.watch(0, timeout=5))),
            "Snapshot": lambda: next(iter(client.snapshot(timeout=5))),
            "ImportWorld": lambda: client.import_world(b"world: {orgs: [{id: acme}]}", timeout=5),
        }
        with pytest.raises(grpc.RpcError) as info:
            calls[stream]()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_token_never_logged_in_process(store_client: StoreClient, caplog: pytest.LogCaptureFixture) -> None:
    """Failed and successful calls, at DEBUG, leave no trace of either token in the logs."""
    caplog.set_level(logging.DEBUG)
    store_client.write("CreateOrg", pb.Org(id="acme"))
    store_client.import_world(b"world: {orgs: [{id: acme}]}")
    with StoreClient(store_client.address, "wrong-secret-value") as bad, pytest.raises(grpc.RpcError):
        bad.write("CreateOrg", pb.Org(id="x"))
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert TOKEN not in text
    assert "wrong-secret-value" not in text


def test_token_never_logged_by_the_server_process(tmp_path: Path) -> None:
    """The store process's own log (verbose) never contains the token, even after bad calls."""
    port = free_port()
    log = tmp_path / "store.log"
    process = authz_process(
        "-v", "store", "serve", "--listen", f"127.0.0.1:{port}",
        "--database-url", f"sqlite:///{tmp_path / 's.db'}", env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        with StoreClient(f"127.0.0.1:{port}", TOKEN) as client:
            client.write("CreateOrg", pb.Org(id="acme"))
            with pytest.raises(grpc.RpcError):
                client.write("CreateTeam", pb.Team(id="t", org="missing"))
        with StoreClient(f"127.0.0.1:{port}", "guess-" + TOKEN) as client, pytest.raises(grpc.RpcError):
            client.write("CreateOrg", pb.Org(id="b"))
    finally:
        process.terminate()
        process.wait(10)
    text = log.read_text()
    assert "store serving" in text, "the log was captured"
    assert TOKEN not in text


def test_generated_token_file_is_private(tmp_path: Path) -> None:
    """Without a token, `store serve` generates one in a 0600 file and logs only the path."""
    port = free_port()
    log = tmp_path / "store.log"
    token_file = tmp_path / "var" / "store.token"
    process = authz_process(
        "store", "serve", "--listen", f"127.0.0.1:{port}", "--database-url", f"sqlite:///{tmp_path / 's.db'}",
        "--token-file", str(token_file), env={"AUTHZ_STORE_TOKEN": ""}, log=log,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
    finally:
        process.send_signal(subprocess.signal.SIGTERM)  # type: ignore[attr-defined]
        process.wait(10)
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token not in log.read_text()
