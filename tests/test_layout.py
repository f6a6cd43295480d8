"""The layout holds: dependencies run one way, the core is light, modules stay small, exports are pinned."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

import authz
from authz import errors
from authz.service import STATUS

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
CORE = ("authz.decision", "authz.policy", "authz.engines", "authz.resolver", "authz.state", "authz.decider",
        "authz.reasons", "authz.engines.holder")  # fmt: skip
HEAVY = ("sqlalchemy", "alembic", "store.server", "store.service", "store.database")


def _loaded_after(statement: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return list(json.loads(out.stdout.splitlines()[-1]))


def _under(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_client_is_light() -> None:
    """`import authz.client` (and the asyncio client) loads neither SQLAlchemy, Alembic nor the store's server."""
    assert _under(_loaded_after("import authz, authz.client, authz.aio"), HEAVY) == []


def test_the_command_line_starts_light() -> None:
    """`import authz.cli` (every `authz` command, `--help` included) loads no server or database code:
    commands that serve import it when they run."""
    assert _under(_loaded_after("import authz.cli"), HEAVY) == []


def test_core_imports_neither_grpc_nor_the_database() -> None:
    """The decision core (policy, engines, resolver, state, decider) loads no gRPC and no database code."""
    loaded = _loaded_after("; ".join(f"import {module}" for module in CORE))
    assert _under(loaded, (*HEAVY, "grpc", "store.client")) == []


def test_store_never_imports_authz() -> None:
    """No module of the store imports the decision service."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (SRC / "store").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.match(r"\s*(import authz|from authz)\b", line)
    ]
    assert offenders == []


def test_servicekit_imports_neither_service() -> None:
    """The shared plumbing imports neither service."""
    loaded = _loaded_after("import servicekit.tls, servicekit.tokens, servicekit.guard, servicekit.pages, "
                           "servicekit.text, servicekit.metrics, servicekit.logs, servicekit.tracing, "
                           "servicekit.probe")  # fmt: skip
    assert _under(loaded, ("authz", "store")) == []


def test_modules_are_small() -> None:
    """No hand-written module under src/ is over 450 lines (generated code and Alembic revisions aside)."""
    long = {
        str(path.relative_to(ROOT)): count
        for path in SRC.rglob("*.py")
        if "/v1/" not in str(path) and "migrations/versions" not in str(path)
        if (count := len(path.read_text().splitlines())) > 450
    }
    assert long == {}


def test_authz_exports() -> None:
    """`authz` exports the client-facing API, each name from where it lives."""
    assert sorted(authz.__all__) == ["AuthzError", "Check", "Client", "Decision", "InvalidRequest", "Request"]
    for name in authz.__all__:
        assert getattr(authz, name).__module__.startswith("authz.")
    with pytest.raises(AttributeError):
        _ = authz.Nothing  # type: ignore[attr-defined]


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_decision_error_is_mapped() -> None:
    """Each class of the decision service's error tree has its own status at the gRPC boundary."""
    assert _subclasses(errors.AuthzError) | {errors.AuthzError} <= set(STATUS)
    assert STATUS[errors.InvalidRequest] == grpc.StatusCode.INVALID_ARGUMENT


def test_http_front_end_depends_on_the_core_only() -> None:
    """AuthZEN over HTTP (authz.http) is a front end: it loads the core, not the gRPC front end; the core
    and the listing never load it, or Starlette, uvicorn and pydantic; only the server factory imports it."""
    loaded = _loaded_after("import authz.http.app, authz.http.server, authz.http.openapi")
    assert _under(loaded, ("authz.service", "authz.server", "authz.v1", "store.server", "sqlalchemy")) == []
    core = _loaded_after("; ".join(f"import {module}" for module in (*CORE, "authz.listing")))
    assert _under(core, ("authz.http", "starlette", "uvicorn", "pydantic")) == []
    importers = {
        str(path.relative_to(ROOT))
        for path in (SRC / "authz").rglob("*.py")
        if "http" not in path.relative_to(SRC / "authz").parts[:1]
        if re.search(r"^\s*(from authz\.http|import authz\.http)\b", path.read_text(), re.MULTILINE)
    }
    assert importers <= {"src/authz/server.py", "src/authz/cli/serving.py"}
