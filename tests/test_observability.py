"""What an operator reads: JSON log lines (one object per line, with the request's fields) and the
Prometheus metrics both services serve on `--metrics HOST:PORT`, as documented in the README."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz.client import Client
from servicekit import logs
from servicekit.text import EscapingFormatter
from store.client import StoreClient
from tests.conftest import DEMO_WORLD, POLICIES, ROOT, TOKEN, Stack
from tests.helpers import free_port, wait_serving

CAROL_EDITS = ("user:carol", "report.edit", "report:rep-weekly-vision")


class Server:
    """``authz ARGS...`` in a process of its own, its stdout and stderr in files."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.out, self.err = tmp_path / "stdout.log", tmp_path / "stderr.log"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "authz.cli", *args], env={**os.environ, "AUTHZ_STORE_TOKEN": TOKEN},
                cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )  # fmt: skip

    def records(self) -> list[dict[str, Any]]:
        """Every line on stderr, each parsed as one JSON object (a line that is not one fails the test)."""
        return [json.loads(line) for line in self.err.read_text().splitlines()]

    def wait_for(self, found: Callable[[list[dict[str, Any]]], Any], what: str) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if value := found(self.records()):
                return value
            assert self.process.poll() is None, self.err.read_text()
            time.sleep(0.1)
        raise AssertionError(f"no {what} in {self.err.read_text()}")

    def metrics_ports(self, count: int) -> list[int]:
        def ports(records: list[dict[str, Any]]) -> list[int]:
            found = [re.fullmatch(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", r["message"]) for r in records]
            return [int(m[1]) for m in found if m] if sum(m is not None for m in found) == count else []

        return list(self.wait_for(ports, f"{count} metrics endpoints"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        assert self.process.wait(30) == 0, self.err.read_text()


@pytest.fixture
def store_serve(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """`authz -v store serve --log-format json`, with metrics on the older --metrics-port flag."""
    address = f"127.0.0.1:{free_port()}"
    server = Server(tmp_path, "-v", "store", "serve", "--listen", address, "--database-url",
                    f"sqlite:///{tmp_path / 'store.db'}", "--log-format", "json", "--metrics-port", "0")  # fmt: skip
    try:
        wait_serving(address)
        yield server, address
    finally:
        server.stop()


def test_store_logs_json_lines(store_serve: tuple[Server, str]) -> None:
    """Every stderr line is one JSON object with time, level, logger and message; each call is logged with
    its method, peer, code and duration; what is logged during a call carries the call's fields; the
    operator's lines (where it listens) are records too; no token appears."""
    server, address = store_serve
    with StoreClient(address, TOKEN) as client:
        client.import_world(DEMO_WORLD.read_bytes(), name="demo-world")
    with StoreClient(address, "wrong-token-0123456789") as intruder, pytest.raises(grpc.RpcError):
        intruder.revision()
    (port,) = server.metrics_ports(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert "store_writes_total 1.0" in response.read().decode()
    server.stop()
    records = server.records()
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        assert datetime.fromisoformat(record["time"]).utcoffset() is not None
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    calls = {(r["method"], r["code"]): r for r in records if r["logger"] == "store.access"}
    imported = calls["/store.v1.Store/ImportWorld", "OK"]
    assert imported["level"] == "DEBUG"
    assert isinstance(imported["duration_ms"], float)
    assert imported["peer"].startswith(("ipv4:127.0.0.1:", "ipv6:[::1]:"))
    refused = calls["/store.v1.Store/GetRevision", "UNAUTHENTICATED"]
    assert refused["level"] == "INFO"
    (during,) = [r for r in records if r["message"].startswith("imported demo-world:")]
    assert (during["logger"], during["method"], during["peer"]) == (
        "store.service", "/store.v1.Store/ImportWorld", imported["peer"],
    )  # fmt: skip
    assert "code" not in during, "a record logged during a call has the call's method and peer, not its end"
    assert any(r["message"] == f"store listening on {address}" for r in records)
    assert TOKEN not in server.err.read_text()


def test_json_and_text_formats_keep_a_record_on_one_line() -> None:
    """A caller's text with line breaks (and Unicode line separators) never splits a record: JSON escapes
    them and parses back to the same message; text escapes them."""
    message = "subject user:x\nINFO forged line\u2028and more"
    record = logging.LogRecord("authz.test", logging.WARNING, __file__, 1, "refused %s", (message,), None)
    line = logs.JsonFormatter().format(record)
    assert len(line.splitlines()) == 1
    assert json.loads(line)["message"] == f"refused {message}"
    text = EscapingFormatter(logs.TEXT_FORMAT).format(record)
    assert len(text.splitlines()) == 1
    assert "\\n" in text


def test_configure_json_in_a_fresh_process(tmp_path: Path) -> None:
    """logs.configure("json") on a bare root logger: one object per record, the exception as text."""
    code = (
        "import logging\nfrom servicekit import logs\nlogs.configure('json', verbose=True)\n"
        "logging.getLogger('authz.x').debug('hello %s', 'there')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    logging.getLogger('authz.x').exception('failed')\n"
        "logs.say('authz.cli', 'listening on 127.0.0.1:1')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    first, second, third = (json.loads(line) for line in done.stderr.splitlines())
    assert (first["level"], first["logger"], first["message"]) == ("DEBUG", "authz.x", "hello there")
    assert second["message"] == "failed"
    assert "ZeroDivisionError" in second["exception"]
    assert (third["logger"], third["message"]) == ("authz.cli", "listening on 127.0.0.1:1")


# ---- metrics --------------------------------------------------------------------------------------

METRIC_ROW = re.compile(r"^\| `([a-z_]+)` \|(.*)$")


def documented_metrics() -> dict[str, str]:
    """The metrics of the README's table: name -> the rest of its row."""
    text = (ROOT / "README.md").read_text()
    return {m[1]: m[2] for line in text.splitlines() if (m := METRIC_ROW.match(line))}


def scraped_families(port: int) -> set[str]:
    """The metric families served on ``port``, but prometheus_client's ``*_created`` timestamps."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    return {name for name in names if not name.endswith("_created")}


def test_up_serves_both_services_metrics_as_documented(tmp_path: Path) -> None:
    """`authz up --metrics 127.0.0.1:0`: the decision service's and the store's metrics, each on its own
    port, served the same way; every family served is in the README's table and every row of the table
    (but those that need --http) is served; the logs of both services are JSON lines."""
    port = free_port()
    server = Server(tmp_path, "up", "--port", str(port), "--store-port", str(free_port()), "--database-url",
                    f"sqlite:///{tmp_path / 'up.db'}", "--world", str(DEMO_WORLD), "--policies", str(POLICIES),
                    "--metrics", "127.0.0.1:0", "--log-format", "json")  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        with Client(f"127.0.0.1:{port}", token="") as client:
            assert client.check(*CAROL_EDITS).allowed
        families = {}
        for metrics_port in server.metrics_ports(2):
            names = scraped_families(metrics_port)
            families["authz" if any(n.startswith("authz_") for n in names) else "store"] = names
    finally:
        server.stop()
    documented = documented_metrics()
    assert set(families) == {"authz", "store"}
    assert all(name.startswith("authz_") for name in families["authz"])
    assert all(name.startswith("store_") for name in families["store"])
    served = families["authz"] | families["store"]
    assert served - set(documented) == set(), "served but not in the README"
    expected = {name for name, row in documented.items() if "--http" not in row}
    assert expected - served == set(), "in the README but not served"
    assert {"authz_decisions_total", "authz_call_seconds", "store_writes_total", "store_revision"} <= served
    loggers = {record["logger"] for record in server.records()}
    assert {"store.server", "authz.server", "servicekit.metrics"} <= loggers


def test_metrics_address_is_checked() -> None:
    """--metrics takes HOST:PORT (any interface; IPv6 in brackets); anything else is a usage error."""
    from click.testing import CliRunner

    from authz.cli import main
    from servicekit.metrics import offset, parse_address

    assert parse_address("0.0.0.0:9100") == ("0.0.0.0", 9100)  # noqa: S104 - parsed only, nothing binds it
    assert parse_address("[::]:9100") == ("::", 9100)
    assert parse_address("9100") == ("127.0.0.1", 9100)
    assert offset("0.0.0.0:9100", 2) == "0.0.0.0:9102"
    assert offset("[::]:9100", 1) == "[::]:9101"
    assert offset("127.0.0.1:0", 3) == "127.0.0.1:0"
    for bad in ("metrics", "host:port", ":9100", "127.0.0.1:70000"):
        result = CliRunner().invoke(main, ["store", "serve", "--metrics", bad])
        assert result.exit_code == 2, result.output
        assert "--metrics" in result.output
        assert "HOST:PORT" in result.output


def test_workers_log_json_and_serve_metrics_on_consecutive_ports(stack: Stack, tmp_path: Path) -> None:
    """`serve --workers 2 --metrics HOST:P --log-format json`: worker n serves its metrics on P+n, and the
    workers (spawned processes) log JSON lines as the supervisor does."""
    port, base = free_port(), free_port()
    server = Server(tmp_path, "serve", "--workers", "2", "--listen", f"127.0.0.1:{port}", "--store",
                    f"127.0.0.1:{stack.store.port}", "--policies", str(stack.policies), "--metrics",
                    f"127.0.0.1:{base}", "--log-format", "json")  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        assert sorted(server.metrics_ports(2)) == [base, base + 1]
        for metrics_port in (base, base + 1):
            assert "authz_decisions_total" in scraped_families(metrics_port)
        listening = server.wait_for(
            lambda records: [r for r in records if r["message"].startswith("decision service listening on")][1:],
            "two workers listening",
        )
        assert listening[0]["logger"] == "authz.workers"
    finally:
        server.stop()


def test_health_watchers_hold_no_thread() -> None:
    """grpc's health Watch answers through a callback: the call log and the decode guard (on both
    services) pass it through, so open watchers never take the threads calls are answered on."""
    from concurrent import futures

    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from servicekit.guard import DecodeGuard

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), interceptors=[logs.CallLog("test"), DecodeGuard()])
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watching = [stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60) for _ in range(2)]
            time.sleep(0.5)  # both streams open on the server
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            assert [next(w).status for w in watching] == [health_pb2.HealthCheckResponse.SERVING] * 2
            for stream in watching:
                stream.cancel()
    finally:
        server.stop(None)
