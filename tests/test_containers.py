"""The container files, as far as they can be checked without a container engine (this machine has
none): every command they run is a valid `authz` command line, the image runs as a non-root user with
a gRPC health check, compose starts each service after the one it needs is healthy; and the health
probe itself, against real servers."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from authz.cli import main
from authz.server import ServerConfig
from authz.server import create_server as create_decision_server
from servicekit import probe
from store.server import StoreServer
from tests.conftest import ROOT, TOKEN, Stack
from tests.helpers import free_port, wait_serving

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions(DOCKERFILE.read_text())
    last = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last:]


def _valid(command: list[str]) -> None:
    """``authz COMMAND...`` parses: every option exists and takes what it is given (its --help runs)."""
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, f"{command}: {result.output}"


def test_dockerfile() -> None:
    """Slim Python base; the final stage runs as the authz user with `authz` as entry point, a default
    command the CLI accepts and a HEALTHCHECK through the gRPC health probe; what it copies exists."""
    instructions = _instructions(DOCKERFILE.read_text())
    assert all(args.startswith("python:3.11-slim") for name, args in instructions if name == "FROM")
    for name, args in instructions:
        if name == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert source.startswith("--") or (ROOT / source).exists(), source
    final = dict(_final_stage())
    assert final["USER"].split(":")[0] == "authz"
    assert json.loads(final["ENTRYPOINT"]) == ["authz"]
    _valid(json.loads(final["CMD"]))
    assert json.loads(final["HEALTHCHECK"].split("CMD", 1)[1]) == ["python", "-m", "servicekit.probe"]
    assert "AUTHZ_HEALTH_ADDRESS=127.0.0.1:50051" in final["ENV"]


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def test_compose_services() -> None:
    """PostgreSQL, then the store on it, then the decision service on the store, each once the one before
    is healthy; commands the CLI accepts; health probes on each server's own port; secrets required."""
    services = _services()
    assert {"postgres", "store", "authz"} <= set(services)
    assert services["store"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["authz"]["depends_on"]["store"]["condition"] == "service_healthy"
    for name in ("store", "authz", "world"):
        service = services[name]
        assert service["build"] == "."
        _valid(service["command"])
        command = shlex.join(service["command"])
        if "--listen" in service["command"]:
            listen = service["command"][service["command"].index("--listen") + 1]
            assert service["environment"]["AUTHZ_HEALTH_ADDRESS"] == f"127.0.0.1:{listen.rsplit(':', 1)[1]}", command
    assert "--store store:50052" in shlex.join(services["authz"]["command"])
    assert services["store"]["environment"]["AUTHZ_DATABASE_URL"].startswith("postgresql+psycopg://")
    text = COMPOSE.read_text()
    for secret in ("POSTGRES_PASSWORD", "AUTHZ_STORE_TOKEN", "AUTHZ_TOKEN"):
        assert f"${{{secret}:?" in text, f"{secret} must be required, never defaulted"
    for service in services.values():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), mapping


# ---- the health probe -----------------------------------------------------------------------------


def test_probe_says_serving(store_server: StoreServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0 for a serving server (the whole server, or its service by name)."""
    address = f"127.0.0.1:{store_server.port}"
    assert probe.main([address]) == 0
    assert probe.main([address, "--service", "store.v1.Store"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_probe_says_why_not(
    store_server: StoreServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 1 with one line: nothing listening, an unknown service, a decision service not yet SERVING
    (its store unreachable, so its replica never loads); the address may come from the environment."""
    nowhere = f"127.0.0.1:{free_port()}"
    assert probe.main([nowhere, "--timeout", "1"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err
    assert probe.main([f"127.0.0.1:{store_server.port}", "--service", "nope"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    waiting = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=nowhere, store_token=TOKEN, policies=ROOT / "policies")
    )
    try:
        monkeypatch.setenv("AUTHZ_HEALTH_ADDRESS", f"127.0.0.1:{waiting.port}")
        assert probe.main([]) == 1
        assert "the server is NOT_SERVING" in capsys.readouterr().err
    finally:
        waiting.stop(0)


def test_probe_of_the_decision_service(stack: Stack) -> None:
    """The decision service is SERVING once its replica has the store's data (health follows within 0.25 s)."""
    wait_serving(stack.address)
    assert probe.main([stack.address]) == 0
