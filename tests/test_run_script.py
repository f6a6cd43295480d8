"""`./run`, the development entry point: clean help, and a word when PostgreSQL tests would be skipped."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import PG_ENV, ROOT


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "run"), *args], capture_output=True, text=True, cwd=ROOT, env=env or dict(os.environ), timeout=600,
        check=False,
    )  # fmt: skip


def test_help_is_the_comment_block() -> None:
    """`./run` and `./run help` print the commands and nothing of the script itself; exit 0. An unknown
    command is named on stderr with the same help; exit 2."""
    for args in ((), ("help",)):
        done = _run(*args)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("Development entry point")
        assert all(line.startswith("  ./run ") for line in lines[1:]), lines
        assert {"up", "test", "lint", "bench", "authz", "setup", "help"} <= {line.split()[1] for line in lines[1:]}
    unknown = _run("frobnicate")
    assert unknown.returncode == 2
    assert "unknown command 'frobnicate'" in unknown.stderr
    assert "./run test" in unknown.stderr


def test_test_says_when_postgresql_is_skipped() -> None:
    """Without $AUTHZ_TEST_POSTGRES_URL, `./run test` says the PostgreSQL variants are skipped and how to
    run them; with it, nothing of the kind."""
    without = {k: v for k, v in os.environ.items() if k != PG_ENV}
    done = _run("test", "--version", env=without)
    assert done.returncode == 0, done.stderr
    assert f"${PG_ENV} is not set" in done.stderr
    assert f"{PG_ENV}=postgresql+psycopg://" in done.stderr
    given = _run("test", "--version", env={**without, PG_ENV: "postgresql+psycopg://postgres@127.0.0.1:5432/test"})
    assert given.returncode == 0, given.stderr
    assert PG_ENV not in given.stderr
