"""Durability: a store killed with SIGKILL mid-load keeps every write it acknowledged."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from store.client import StoreClient
from store.v1 import store_pb2 as pb
from tests.conftest import TOKEN
from tests.helpers import authz_process, free_port, wait_serving


def _serve(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    process = authz_process(
        "store", "serve", "--listen", f"127.0.0.1:{port}", "--database-url", database_url,
        env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log,
    )  # fmt: skip
    wait_serving(f"127.0.0.1:{port}")
    return process


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    """Writes acknowledged before a SIGKILL are all present after a restart."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = _serve(database_url, port, tmp_path / "store.log")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        with StoreClient(address, TOKEN) as client:
            client.write("CreateOrg", pb.Org(id="acme"))

            def writer(n: int) -> None:
                i = 0
                while not stop.is_set():
                    team = f"w{n}-{i}"
                    try:
                        client.write("CreateTeam", pb.Team(id=team, org="acme"), timeout=5)
                    except grpc.RpcError:
                        return  # the server died under us: this write was never acknowledged
                    with lock:
                        acked.append(team)
                    i += 1

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(1.5)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            stop.set()
            for thread in threads:
                thread.join(10)
        assert len(acked) > 20, "the load ran before the kill"

        process = _serve(database_url, port, tmp_path / "store.log")
        with StoreClient(address, TOKEN) as client:
            missing = [team for team in acked if _missing(client, team)]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    finally:
        process.kill()
        process.wait(10)


def _missing(client: StoreClient, team: str) -> bool:
    try:
        client.call("Get", pb.GetRequest(kind="team", id=team))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return True
        raise
    return False
