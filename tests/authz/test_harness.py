"""`authz test`: closing line and exit status, the failure table, malformed files, JSON, server mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from authz import harness
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


def _line_of(path: Path, words: str) -> int:
    """The 1-based line of ``path`` holding ``words`` (once)."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), start=1) if words in line]
    assert len(found) == 1, found
    return found[0]


def test_failures_name_file_and_line(tmp_path: Path) -> None:
    """A failing case is named by file:line of the YAML where it starts, in the table and in --json;
    a case written over several lines by the line of its first key."""
    text = SPEC_EXAMPLE.read_text()
    wrong = tmp_path / "wrong.yaml"
    flow = "resource: report:rep1, allow: false}"
    block = "    context: {username: bob}\n    allow: true"
    assert flow in text
    assert block in text
    wrong.write_text(text.replace(flow, "resource: report:rep1, allow: true}").replace(block, block[:-4] + "false"))
    flow_line = _line_of(wrong, "{subject: user:carol, action: report.edit")
    block_line = _line_of(wrong, "- subject: service_account:ci-bot")
    code, output = _run(str(wrong))
    assert code == 1
    assert f"{wrong}:{flow_line} " in output
    assert f"{wrong}:{block_line} " in output
    code, output = _run("--json", str(wrong))
    assert code == 1
    failed = [r for r in json.loads(output)["results"] if not r["passed"]]
    assert [(r["file"], r["line"], r["where"]) for r in failed] == [
        (str(wrong), flow_line, f"{wrong}:{flow_line}"),
        (str(wrong), block_line, f"{wrong}:{block_line}"),
    ]


def test_malformed_case_names_its_line(tmp_path: Path) -> None:
    """A case that is not in the format is named by file:line as well as by its path in the document."""
    bad_case = tmp_path / "bad-case.yaml"
    bad_case.write_text(SPEC_EXAMPLE.read_text().replace("allow: false}", "allow: maybe}"))
    line = _line_of(bad_case, "allow: maybe}")
    code, output = _run(str(bad_case))
    assert code == 1
    assert f"{bad_case}:{line}: cases[1].allow" in output


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


SEVERAL_PROBLEMS = """\
name: several problems
world:
  orgs:
    - id: acme
      users: [{id: amy, role: boss}, bob]
  teams:
    - id: vision
      org: acme
      members: {amy: admin, bob: null}
      setings: {members_can_invite: true}
  projects:
    - {owner: team:vision, visibility: secret}
  runs: r1
cases:
  - {subject: user:amy, action: run.view, resource: run:r1, allow: true}
  - {subject: amy, action: run.view, resource: run:r1, allow: maybe}
  - {subject: user:amy, action: run.view, resource: run:r1, allow: true, rul: E1}
  - subject: user:bob
    action: run.view
    resource: r1
    context: [x]
  - not a case
  - {subject: user:amy, action: 3, resource: run:r1, allow: false, rule: [E1, 7], revision_at_least: -1}
extra: 1
"""


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    """A file with many problems names every one, each with file:line and its path (the schema's
    check, authz/casefile.py), not only the first; unknown keys get a did-you-mean."""
    bad = tmp_path / "several.yaml"
    bad.write_text(SEVERAL_PROBLEMS)
    expected = [
        (5, "world.orgs[0].users[0].role: 'boss' is not one of admin, member, viewer"),
        (9, "world.teams[0].members.bob: needs a role (view_only, member, admin or a custom role id)"),
        (10, "world.teams[0].setings: unknown key; did you mean 'settings'?"),
        (12, "world.projects[0].id: is required"),
        (12, "world.projects[0].visibility: 'secret' is not one of team, restricted, public, open"),
        (13, "world.runs: must be a list, not str"),
        (16, "cases[1].subject: 'amy' must be kind:id or anonymous"),
        (16, "cases[1].allow: must be true or false, not 'maybe'"),
        (17, "cases[2].rul: unknown key; did you mean 'rule'?"),
        (18, "cases[3].allow: is required"),  # missing: at the case that lacks it
        (20, "cases[3].resource: 'r1' must be kind:id"),
        (21, "cases[3].context: must be a mapping of names to values"),
        (22, "cases[4]: must be a mapping with subject, action, resource and allow"),
        (23, "cases[5].action: must be a string"),
        (23, "cases[5].rule: must be a rule id like RP3, or a list of them"),
        (23, "cases[5].revision_at_least: must be a revision number"),
        (24, "extra: unknown key (allowed: name, world, cases)"),
    ]
    with pytest.raises(harness.CaseFileError) as caught:
        harness.load_file(bad)
    problems = caught.value.problems
    assert len(problems) == len(expected), "\n".join(problems)
    for line, text in expected:
        assert any(p.startswith(f"{bad}:{line}: {text}") for p in problems), (line, text, problems)
    code, output = _run(str(bad), str(SPEC_EXAMPLE))
    assert code == 1
    for line, text in expected:
        assert f"{bad}:{line}: {text}" in output
    assert output.strip().splitlines()[-1] == "3 passed, 1 failed"


def test_a_case_may_name_several_rules(tmp_path: Path) -> None:
    """`rule: [P1, P7]` passes only when the decision names every one of them."""
    text = SPEC_EXAMPLE.read_text()
    assert "allow: true, rule: RP3}" in text
    both = tmp_path / "both.yaml"
    both.write_text(text.replace("allow: true, rule: RP3}", "allow: true, rule: [RP3, P1]}"))
    assert _run(str(both))[0] == 0
    loaded = harness.load_file(both)
    assert next(case.rules for case in loaded.cases if case.rules) == ("RP3", "P1")
    one_wrong = tmp_path / "one-wrong.yaml"
    one_wrong.write_text(text.replace("allow: true, rule: RP3}", "allow: true, rule: [RP3, P7]}"))
    code, output = _run(str(one_wrong))
    assert code == 1
    assert "RP3, P7" in output
