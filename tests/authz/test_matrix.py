"""The rendered permission matrix equals the role tables of PERMISSIONS.md 4.2-4.8, cell by cell,
and docs/permissions.md is what `authz policy matrix` prints today."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from authz import matrix
from authz.cli import main
from authz.policy import load_policy
from tests.conftest import POLICIES, ROOT

Y, N, OWN = "X", "", "own"

# Our transcription of the spec's tables, per family: action -> cells in the matrix's column order.
# 4.2: view_only, member, admin, then the "also" column split into org admin, service account,
# anonymous. "see T3a" reads as denied here: the matrix asks with members_can_invite off.
SPEC: dict[str, dict[str, tuple[str, ...]]] = {
    "4.2 Teams": {
        "team.view": (Y, Y, Y, Y, Y, N),
        "team.view_profile": (Y, Y, Y, Y, Y, Y),
        "team.add_member": (N, N, Y, Y, N, N),
        "team.invite_member": (N, N, Y, Y, N, N),
        "team.remove_member": (N, N, Y, Y, N, N),
        "team.change_role": (N, N, Y, Y, N, N),
        "team.manage_settings": (N, N, Y, Y, N, N),
        "team.manage_privacy": (N, N, N, Y, N, N),
        "team.configure_storage": (N, N, N, Y, N, N),
        "team.delete": (N, N, N, Y, N, N),
    },
    "4.4 Runs and sweeps": {
        "run.view": (Y, Y, Y),
        "run.edit_workspace": (N, Y, Y),
        "run.create": (N, Y, Y),
        "run.delete": (N, OWN, Y),
        "run.stop": (N, OWN, Y),
        "sweep.view": (Y, Y, Y),
        "sweep.create": (N, Y, Y),
        "sweep.delete": (N, OWN, Y),
        "sweep.stop": (N, OWN, Y),
    },
    "4.5 Reports": {
        "report.view": (Y, Y, Y),
        "report.create": (N, Y, Y),
        "report.edit": (N, OWN, Y),
        "report.delete": (N, OWN, Y),
        "report.comment": (Y, Y, Y),
        "report.follow": (Y, Y, Y),
    },
    # 4.6: view_only, member, admin, and the service-account decision (A1, A2, A5, A7).
    "4.6 Artifacts": {
        "artifact.view": (Y, Y, Y, Y),
        "artifact.create": (N, Y, Y, Y),
        "artifact.delete": (N, Y, Y, N),
        "artifact.edit_metadata": (N, Y, Y, N),
        "artifact.edit_alias": (N, Y, Y, Y),
        "artifact.delete_alias": (N, Y, Y, N),
        "artifact.download": (N, Y, Y, Y),
    },
    # 4.7: view_only, member, model-registry admin, team admin; M1a (protected alias) is MRA only.
    "4.7 Legacy model registry": {
        "M1 model_registry.add_alias": (N, Y, Y, Y),
        "M1a model_registry.add_alias": (N, N, Y, N),
        "model_registry.link_model": (N, Y, Y, Y),
        "model_registry.view": (Y, Y, Y, Y),
        "model_registry.download": (N, Y, Y, Y),
        "model_registry.manage_admins": (N, N, Y, Y),
        "model_registry.manage_protected_aliases": (N, N, Y, N),
    },
}
# 4.8: restricted_viewer, viewer, member, admin, by rule.
REGISTRY = {
    "G-R0": (Y, Y, Y, Y),
    "G-R1": (N, Y, Y, Y),
    "G-R2": (N, N, Y, Y),
    "G-R3": (N, N, Y, Y),
    "G-R4": (N, N, Y, Y),
    "G-R5": (N, N, N, Y),
}


@pytest.fixture(scope="module")
def tables() -> dict[str, matrix.Table]:
    return {t.family.title: t for t in matrix.compute(load_policy(POLICIES))}


def _rendered(table: matrix.Table) -> dict[str, tuple[str, ...]]:
    out = {}
    for row, cells in zip(table.family.rows, table.cells, strict=True):
        key = row.action if row.action != "model_registry.add_alias" else f"{row.rule} {row.action}"
        out[key] = cells
    return out


@pytest.mark.parametrize("title", list(SPEC))
def test_family_matches_spec(tables: dict[str, matrix.Table], title: str) -> None:
    """Every cell of the family's table is the spec's."""
    got = _rendered(tables[title])
    assert set(got) == set(SPEC[title])
    diffs = [f"{action}: spec {SPEC[title][action]}, policy {cells}" for action, cells in got.items()
             if cells != SPEC[title][action]]  # fmt: skip
    assert not diffs, "\n".join(diffs)


def test_registries_match_spec(tables: dict[str, matrix.Table]) -> None:
    """Every action of G-R0..G-R5 has its rule's column pattern."""
    table = tables["4.8 Registries"]
    rows = zip(table.family.rows, table.cells, strict=True)
    diffs = [f"{row.rule} {row.action}: {cells}" for row, cells in rows if cells != REGISTRY[row.rule]]
    assert not diffs, "\n".join(diffs)


def test_committed_matrix_is_current() -> None:
    """docs/permissions.md is exactly what `authz policy matrix` renders now (regenerate it if not)."""
    result = CliRunner().invoke(main, ["policy", "matrix", "--policies", str(POLICIES)])
    assert result.exit_code == 0, result.output
    committed = (ROOT / "docs" / "permissions.md").read_text()
    assert committed == result.output, (
        "docs/permissions.md is stale: run `./run authz policy matrix > docs/permissions.md`"
    )


def test_html_format() -> None:
    """--format html renders the same tables as HTML."""
    result = CliRunner().invoke(main, ["policy", "matrix", "--format", "html", "--policies", str(POLICIES)])
    assert result.exit_code == 0
    assert "<h2>4.8 Registries</h2>" in result.output
    assert "<td>model_registry.manage_protected_aliases</td>" in result.output
