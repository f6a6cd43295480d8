"""One server per address: a second store or decision service on a taken port is refused.

gRPC sets SO_REUSEPORT by default, which let a second `authz store serve` (on another database)
bind the address of the first and take half its connections. Both servers now bind exclusively;
only the worker processes of `authz serve --workers N` share their port.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from authz.client import Client
from authz.server import ServerConfig
from authz.server import create_server as create_decision_server
from store.server import StoreConfig, StoreServer, create_server
from tests.conftest import POLICIES, TOKEN, Stack
from tests.helpers import authz_process, free_port, wait_serving

CHECK = ("user:carol", "report.edit", "report:rep-weekly-vision")


def _exit_code(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int | None:
    """The exit code, or None (after killing it) when the process is still running after ``timeout``."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        return None


def _lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.strip()]


# ---- in process -------------------------------------------------------------------------------


def test_second_store_on_a_taken_port_is_refused(store_server: StoreServer, tmp_path: Path) -> None:
    """A second store on the first one's address (another database) raises OSError naming the address."""
    address = f"127.0.0.1:{store_server.port}"
    second: StoreServer | None = None
    try:
        with pytest.raises(OSError, match=rf"cannot listen on {address}: .*in use") as refused:
            second = create_server(
                StoreConfig(listen=address, database_url=f"sqlite:///{tmp_path / 'other.db'}", token=TOKEN)
            )
    finally:
        if second is not None:
            second.stop(0)
    assert "\n" not in str(refused.value)


def test_second_decision_service_on_a_taken_port_is_refused(stack: Stack) -> None:
    """A decision service on an address a decision service or a store holds raises OSError naming it."""
    for port in (stack.decision.port, stack.store.port):
        address = f"127.0.0.1:{port}"
        config = ServerConfig(listen=address, store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                              policies=stack.policies)  # fmt: skip
        second = None
        try:
            with pytest.raises(OSError, match=rf"cannot listen on {address}: .*in use"):
                second = create_decision_server(config)
        finally:
            if second is not None:
                second.stop(0)
    # The first keeps answering.
    assert stack.client.check(*CHECK).allowed


def test_shared_port_needs_every_server_to_share(stack: Stack) -> None:
    """``reuse_port`` (the workers of `serve --workers`) does not let a server join an exclusive one."""
    address = f"127.0.0.1:{stack.decision.port}"
    config = ServerConfig(listen=address, store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                          policies=stack.policies, reuse_port=True)  # fmt: skip
    with pytest.raises(OSError, match=rf"cannot listen on {address}"):
        create_decision_server(config).stop(0)


# ---- the command line ---------------------------------------------------------------------------


def test_cli_store_serve_on_a_taken_port(store_server: StoreServer, tmp_path: Path) -> None:
    """`authz store serve` on a taken address: one line on stderr, exit code 1."""
    log = tmp_path / "store.log"
    process = authz_process(
        "store", "serve", "--listen", f"127.0.0.1:{store_server.port}", "--database-url",
        f"sqlite:///{tmp_path / 'other.db'}", env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log, cwd=tmp_path,
    )  # fmt: skip
    code = _exit_code(process)
    assert code == 1, f"exit code {code} (None: still running on the taken port): {log.read_text()}"
    assert _lines(log) == [
        f"Error: the store did not start: cannot listen on 127.0.0.1:{store_server.port}: "
        "Address already in use (is another server listening there?)"
    ]


def test_cli_serve_on_a_taken_port(stack: Stack, tmp_path: Path) -> None:
    """`authz serve` on a taken address: one line on stderr, exit code 1."""
    log = tmp_path / "serve.log"
    process = authz_process(
        "serve", "--listen", f"127.0.0.1:{stack.decision.port}", "--store", f"127.0.0.1:{stack.store.port}",
        "--policies", str(stack.policies), env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log, cwd=tmp_path,
    )  # fmt: skip
    code = _exit_code(process)
    assert code == 1, f"exit code {code} (None: still running on the taken port): {log.read_text()}"
    assert _lines(log) == [
        f"Error: the decision service did not start: cannot listen on 127.0.0.1:{stack.decision.port}: "
        "Address already in use (is another server listening there?)"
    ]


@pytest.mark.parametrize("taken", ["store", "decision"])
def test_cli_up_on_a_taken_port(store_server: StoreServer, tmp_path: Path, taken: str) -> None:
    """`authz up` with its store port or its decision port taken: one error line, no traceback, exit code 1."""
    held = str(store_server.port)
    free = str(free_port())
    ports = ("--store-port", held, "--port", free) if taken == "store" else ("--store-port", free, "--port", held)
    log = tmp_path / "up.log"
    process = authz_process(
        "up", *ports, "--database-url", f"sqlite:///{tmp_path / 'up.db'}", "--world", str(tmp_path / "none.yaml"),
        "--policies", str(POLICIES), env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log, cwd=tmp_path,
    )  # fmt: skip
    code = _exit_code(process)
    assert code == 1, f"exit code {code} (None: still running on the taken port): {log.read_text()}"
    lines = _lines(log)
    assert "Traceback" not in log.read_text()
    assert lines[-1].startswith("Error: ")
    assert f"cannot listen on 127.0.0.1:{held}: Address already in use" in lines[-1]
    assert [line for line in lines if "rror" in line] == lines[-1:], lines


def test_workers_share_the_port(stack: Stack, tmp_path: Path) -> None:
    """`authz serve --workers 2`: both processes serve on one port; a plain `serve` there is refused."""
    port = free_port()
    log = tmp_path / "workers.log"
    store = ("--store", f"127.0.0.1:{stack.store.port}", "--policies", str(stack.policies))
    workers = authz_process(
        "serve", "--workers", "2", "--listen", f"127.0.0.1:{port}", *store, env={"AUTHZ_STORE_TOKEN": TOKEN},
        log=log, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        with Client(f"127.0.0.1:{port}") as client:
            for _ in range(20):  # new channels, spread over both processes
                assert client.check(*CHECK).allowed
        deadline = time.monotonic() + 30
        while log.read_text().count("decision service listening on") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.read_text().count("decision service listening on") == 2, log.read_text()
        intruder_log = tmp_path / "intruder.log"
        intruder = authz_process(
            "serve", "--listen", f"127.0.0.1:{port}", *store, env={"AUTHZ_STORE_TOKEN": TOKEN}, log=intruder_log,
            cwd=tmp_path,
        )  # fmt: skip
        code = _exit_code(intruder)
        assert code == 1, f"exit code {code} (None: joined the workers' port): {intruder_log.read_text()}"
        assert len(_lines(intruder_log)) == 1, intruder_log.read_text()
        assert workers.poll() is None, log.read_text()
    finally:
        workers.terminate()
        workers.wait(30)
