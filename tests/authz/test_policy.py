"""Policy loading and `authz policy lint`: every refusal names file:line and what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from authz.cli import main
from authz.errors import PolicyError
from authz.policy import load_policy
from tests.conftest import POLICIES

GOOD = "p, RP3, report.edit, team:admin, True, allow"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


def _replace(directory: Path, old: str, new: str, file: str = "reports.csv") -> None:
    path = directory / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_repository_policy_loads() -> None:
    """The shipped policy validates and every p line names a rule id and an action."""
    policy = load_policy(POLICIES)
    assert len(policy.version) == 12
    assert {line.rule for line in policy.p_lines} >= {"T1", "RP3", "E4", "M7", "G-R6", "U4"}


BROKEN = [
    ("p, RP3, report.edit, team:admin, r.obj.creator ==, allow", "reports.csv:18", "does not parse"),
    ("p, RP3, report.edit, team:admin, True, maybe", "reports.csv:18", "allow or deny"),
    ("p, RP3, report.edit, team:admin, True", "reports.csv:18", "has 4"),
    ("p, rp3, report.edit, team:admin, True, allow", "reports.csv:18", "rule id"),
    ("p, RP3, report.edit, team:admin, __import__('os'), allow", "reports.csv:18", "other than holds()"),
    ("p, RP3, report.edit, team:admin, r.obj.__class__ == 1, allow", "reports.csv:18", "condition"),
    ("p, RP3, report.edit, team:admin, r.req.x == 1, allow", "reports.csv:18", "r.req"),
    ("p, RP3, report.edit, team:admin, true, allow", "reports.csv:18", "write True"),
    ("p, RP3, report.publish, team:admin, True, allow", "reports.csv:18", "applies to no resource kind"),
    ("q, RP3, report.edit", "reports.csv:18", "unknown line type"),
    ("p, RP3, report.edit, team:member, r.obj.creator == r.sub.ref, allow", "reports.csv:18", "already at"),
]


@pytest.mark.parametrize(("line", "where", "words"), BROKEN, ids=[b[2] for b in BROKEN])
def test_broken_lines_are_named(policies: Path, line: str, where: str, words: str) -> None:
    """A bad line is refused with its file:line and the problem."""
    _replace(policies, GOOD, line)
    with pytest.raises(PolicyError) as info:
        load_policy(policies)
    assert where in str(info.value)
    assert words in str(info.value)


def test_broken_model_is_refused(policies: Path) -> None:
    """A model without the expected request shape is refused, naming model.conf."""
    _replace(policies, "r = sub, obj, act, ctx", "r = sub, obj, act", "model.conf")
    with pytest.raises(PolicyError, match=r"model\.conf"):
        load_policy(policies)


def test_missing_directory(tmp_path: Path) -> None:
    """A directory that is not there is a PolicyError, not a crash."""
    with pytest.raises(PolicyError, match="not a readable policy directory"):
        load_policy(tmp_path / "nope")


def test_lint_command(policies: Path) -> None:
    """`authz policy lint` exits 0 on a good policy and 1 naming file:line on a bad one."""
    good = CliRunner().invoke(main, ["policy", "lint", str(policies)])
    assert good.exit_code == 0, good.output
    assert "ok, version" in good.output
    _replace(policies, GOOD, "p, RP3, report.edit, team:admin, True, maybe")
    bad = CliRunner().invoke(main, ["policy", "lint", str(policies)])
    assert bad.exit_code == 1
    assert "reports.csv:18" in bad.output


def test_version_changes_with_content(policies: Path) -> None:
    """The policy version is a hash of the files."""
    before = load_policy(policies).version
    (policies / "reports.csv").write_text((policies / "reports.csv").read_text() + "\n# a comment\n")
    assert load_policy(policies).version != before
