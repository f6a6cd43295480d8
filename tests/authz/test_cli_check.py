"""`authz check` against a running stack: decision, rules, policy lines; exit 0 allowed, 3 denied."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from authz.cli import main
from tests.conftest import Stack


def test_check_explain(stack: Stack) -> None:
    """--explain prints the decision, the rule ids, the policy line and the facts."""
    result = CliRunner().invoke(
        main, ["check", "--server", stack.address, "user:carol", "report.edit", "report:rep-weekly-vision", "--explain"]
    )
    assert result.exit_code == 0, result.output
    assert "ALLOWED" in result.output
    assert "RP3" in result.output
    assert "policies/reports.csv:17" in result.output
    assert "roles=['org:member', 'team:member', 'user']" in result.output


def test_check_denied_json(stack: Stack) -> None:
    """--json prints a machine-readable decision; a deny exits 3."""
    result = CliRunner().invoke(
        main, ["check", "--server", stack.address, "user:dave", "report.edit", "report:rep-weekly-vision", "--json"]
    )
    assert result.exit_code == 3
    body = json.loads(result.output)
    assert body["allowed"] is False
    assert body["rules"] == ["G1", "RP3"]


def test_check_context(stack: Stack) -> None:
    """-c KEY=VALUE passes context; a missing one is named in the reason (G7)."""
    args = [
        "check",
        "--server",
        stack.address,
        "service_account:vision-ci",
        "run.attribute",
        "project:vision-detection",
    ]
    assert CliRunner().invoke(main, [*args, "-c", "username=carol"]).exit_code == 0
    missing = CliRunner().invoke(main, args)
    assert missing.exit_code == 3
    assert "'username'" in missing.output


def test_check_bad_input(stack: Stack) -> None:
    """Bad references and bad context are usage errors; bad ids are the server's INVALID_ARGUMENT."""
    runner = CliRunner()
    assert runner.invoke(main, ["check", "--server", stack.address, "bob", "report.edit", "report:x"]).exit_code == 2
    bad_context = runner.invoke(main, ["check", "--server", stack.address, "user:bob", "a.b", "report:x", "-c", "x"])
    assert bad_context.exit_code == 2
    bad_id = runner.invoke(main, ["check", "--server", stack.address, "user:b b", "report.edit", "report:x"])
    assert bad_id.exit_code == 1
    assert "INVALID_ARGUMENT" in bad_id.output
    assert "subject.id" in bad_id.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ("user:carol", "report.edti", "report:rep-weekly-vision"),
            "unknown action report.edti (G3); did you mean report.edit?",
        ),
        (
            ("user:carol", "report.edit", "reprot:rep-weekly-vision"),
            "unknown resource kind reprot (G3); did you mean report?",
        ),
        (
            ("user:carl", "report.edit", "report:rep-weekly-vision"),
            "unknown subject user:carl (G3); did you mean user:carol?",
        ),
        (
            ("service_account:vision-cj", "run.create", "project:vision-detection"),
            "did you mean service_account:vision-ci?",
        ),
        (("user:zzzzzz", "report.edit", "report:rep-weekly-vision"), "unknown subject user:zzzzzz (G3)"),
        (("user:carol", "report.edit", "run:run-det-001"), "report.edit applies to report resources, not run (G3)"),
    ],
)
def test_check_unknown_names_are_usage_errors(stack: Stack, args: tuple[str, ...], words: str) -> None:
    """An unknown action, kind or subject is a mistake in the question: exit 2, the reason on stderr with
    the closest known name (none when nothing is close), nothing on stdout, even with --json."""
    for extra in ((), ("--json",)):
        result = CliRunner().invoke(main, ["check", "--server", stack.address, *args, *extra])
        assert result.exit_code == 2, result.output
        assert words in result.stderr
        assert result.stdout == ""
    if "zzzzzz" in args[0]:
        assert "did you mean" not in result.stderr


def test_check_unknown_resource_is_a_deny(stack: Stack) -> None:
    """An unknown resource is an answer (it may have been deleted): exit 3, as any deny."""
    result = CliRunner().invoke(main, ["check", "--server", stack.address, "user:carol", "report.edit", "report:gone"])
    assert result.exit_code == 3, result.output
    assert "unknown resource report:gone (G3)" in result.stdout
