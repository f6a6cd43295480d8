"""The `authz` command line, through click's CliRunner and as a real process."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from authz.cli import main
from store.server import StoreServer
from tests.conftest import ROOT, TOKEN
from tests.helpers import authz_process, free_port, wait_serving

SPEC_EXAMPLE = ROOT / "tests" / "worlds" / "spec-example.yaml"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("AUTHZ_STORE_TOKEN", TOKEN)
    return CliRunner()


def test_world_load_is_idempotent(runner: CliRunner, store_server: StoreServer) -> None:
    """Loading the same file twice: the second load creates nothing and keeps the revision."""
    address = f"127.0.0.1:{store_server.port}"
    first = runner.invoke(main, ["world", "load", str(SPEC_EXAMPLE), "--store", address])
    assert first.exit_code == 0, first.output
    assert "37 created, 0 unchanged, at revision 1" in first.output
    second = runner.invoke(main, ["world", "load", str(SPEC_EXAMPLE), "--store", address])
    assert second.exit_code == 0, second.output
    assert "0 created, 37 unchanged, at revision 1" in second.output


def test_world_load_reports_errors(runner: CliRunner, store_server: StoreServer, tmp_path: Path) -> None:
    """A bad world exits non-zero with the status and the path inside the document."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {orgs: [{id: acme}], teams: [{id: t, org: acme, members: {dave: boss}}]}\n")
    result = runner.invoke(main, ["world", "load", str(bad), "--store", f"127.0.0.1:{store_server.port}"])
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT" in result.output
    assert "world.teams[0].members.dave" in result.output


def test_world_load_needs_a_token(store_server: StoreServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a token the command says how to provide one."""
    monkeypatch.delenv("AUTHZ_STORE_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["world", "load", str(SPEC_EXAMPLE), "--store", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "AUTHZ_STORE_TOKEN" in result.output


def test_store_migrate(runner: CliRunner, tmp_path: Path) -> None:
    """`store migrate` creates the schema, and running it again is harmless."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    first = runner.invoke(main, ["store", "migrate", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "(was empty)" in first.output
    again = runner.invoke(main, ["store", "migrate", "--database-url", url])
    assert "(was 0001)" in again.output


def test_up_twice_on_the_same_database(tmp_path: Path) -> None:
    """`authz up` loads the demo world; started again on the same database it does not fail."""
    for attempt in ("first", "second"):
        port = free_port()
        log = tmp_path / f"up-{attempt}.log"
        process = authz_process(
            "up", "--store-port", str(port), "--database-url", f"sqlite:///{tmp_path / 'up.db'}",
            "--world", str(ROOT / "examples" / "demo-world.yaml"), env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log,
        )  # fmt: skip
        try:
            wait_serving(f"127.0.0.1:{port}")
            deadline = time.monotonic() + 30
            while "Try, in another shell" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(20) == 0, log.read_text()
        loaded = re.search(r"loaded \S+: (\d+) created, (\d+) unchanged", log.read_text())
        assert loaded is not None, log.read_text()
        created, unchanged = int(loaded[1]), int(loaded[2])
        assert (created > 100, unchanged) == ((True, 0) if attempt == "first" else (False, 116))


@pytest.mark.parametrize(
    ("command", "live"),
    [(["serve"], True), (["up"], True), (["test"], False), (["policy", "matrix"], False),
     (["registry", "migrate"], False)],
)  # fmt: skip
def test_policies_help_promises_live_reload_only_where_it_happens(command: list[str], live: bool) -> None:
    """Only the servers reload edited policies; a one-shot command's --policies says it reads them once."""
    result = CliRunner().invoke(main, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if "--policies" in line]
    assert ("picked up live" in line) is live, line
    assert ("read once" in line) is not live, line


def test_serve_threads_sets_the_pool_of_each_process(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --threads N` is each process's gRPC thread pool; 0 is refused naming the option."""
    from authz import workers
    from authz.server import ServerConfig

    started: list[ServerConfig] = []
    monkeypatch.setattr(workers, "serve_one", started.append)
    result = runner.invoke(main, ["serve", "--threads", "4", "--policies", str(ROOT / "policies")])
    assert result.exit_code == 0, result.output
    assert [config.max_workers for config in started] == [4]
    refused = runner.invoke(main, ["serve", "--threads", "0"])
    assert refused.exit_code == 2
    assert "--threads" in refused.output
