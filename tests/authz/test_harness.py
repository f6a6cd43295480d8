"""`authz test`: closing line and exit status, the failure table, malformed files, JSON, server mode."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from authz.cli import main
from tests.conftest import ROOT, TOKEN, Stack

DECISIONS = ROOT / "tests" / "decisions"
SPEC_EXAMPLE = ROOT / "tests" / "worlds" / "spec-example.yaml"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["test", *args], env={"AUTHZ_STORE_TOKEN": TOKEN})
    return result.exit_code, result.output


def test_decision_tables_pass() -> None:
    """The project's decision tables pass in-process, ending with the closing line."""
    code, output = _run(str(DECISIONS))
    assert code == 0, output
    lines = output.strip().splitlines()
    assert lines[-1].endswith(" passed, 0 failed")
    assert int(lines[-1].split()[0]) > 100


def test_wrong_expectation_fails(tmp_path: Path) -> None:
    """One wrong expectation: exit 1, the failure table names it, the closing line counts it."""
    text = SPEC_EXAMPLE.read_text()
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(text.replace("resource: report:rep1, allow: false}", "resource: report:rep1, allow: true}"))
    code, output = _run(str(wrong))
    assert code == 1
    assert "failures" in output
    assert "user:carol" in output
    assert "report.edit" in output
    assert output.strip().splitlines()[-1] == "2 passed, 1 failed"


def test_wrong_rule_fails(tmp_path: Path) -> None:
    """A case whose rule the decision does not name fails."""
    wrong = tmp_path / "rule.yaml"
    wrong.write_text(SPEC_EXAMPLE.read_text().replace("allow: true, rule: RP3}", "allow: true, rule: RP4}"))
    code, output = _run(str(wrong))
    assert code == 1
    assert "1 failed" in output


def test_malformed_file_names_file_and_path(tmp_path: Path) -> None:
    """A malformed world or case fails with the file name and the path inside it."""
    bad_world = tmp_path / "bad-world.yaml"
    bad_world.write_text(SPEC_EXAMPLE.read_text().replace("dave: ml-lead", "dave: null"))
    bad_case = tmp_path / "bad-case.yaml"
    bad_case.write_text(SPEC_EXAMPLE.read_text().replace("allow: false}", "allow: maybe}"))
    code, output = _run(str(bad_world), str(bad_case))
    assert code == 1
    assert "bad-world.yaml" in output
    assert "world.teams[0].members.dave" in output
    assert "bad-case.yaml" in output
    assert "cases[1].allow" in output


def test_json_output() -> None:
    """--json reports every case for machines."""
    code, output = _run("--json", str(SPEC_EXAMPLE))
    assert code == 0
    body = json.loads(output)
    assert (body["passed"], body["failed"]) == (3, 0)
    assert body["results"][0]["rules"]


def test_server_mode(stack: Stack) -> None:
    """The same files pass end to end: each world replaces the store's content, cases go over gRPC."""
    store = f"127.0.0.1:{stack.store.port}"
    code, output = _run("--server", stack.address, "--store", store, str(DECISIONS), str(SPEC_EXAMPLE))
    assert code == 0, output
    assert output.strip().endswith(" 0 failed")
