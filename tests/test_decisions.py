"""Every case of tests/decisions/*.yaml is its own test, with an id naming file, subject, action, resource."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from authz import harness
from authz.decider import Decider
from authz.testing import decider_for, state_from_document
from tests.conftest import ROOT

DECISIONS = ROOT / "tests" / "decisions"
FILES = sorted(DECISIONS.glob("*.yaml"))


def _cases() -> list[object]:
    params: list[object] = []
    for path in FILES:
        try:
            loaded = harness.load_file(path)
        except harness.CaseFileError as exc:
            params.append(pytest.param(None, str(exc), id=f"{path.name} (malformed)"))
            continue
        params += [pytest.param(case, "", id=case.id) for case in loaded.cases]
    return params


@cache
def _decider(path: str) -> Decider:
    return decider_for(state_from_document(harness.load_file(Path(path)).document))


@pytest.mark.parametrize(("case", "problem"), _cases())
def test_decision(case: harness.Case | None, problem: str) -> None:
    """The decision matches the case: allowed or not, naming every rule of the case, with a reason (G2)."""
    assert case is not None, problem
    decision = _decider(case.file).check(case.request())
    expected = "allow" if case.allow else "deny"
    assert decision.allowed == case.allow, f"expected {expected}: {decision.reason}"
    missing = [rule for rule in case.rules if rule not in decision.rules]
    assert not missing, f"{', '.join(missing)} not among {decision.rules}: {decision.reason}"
    assert decision.reason, "every decision carries a reason (G2)"
