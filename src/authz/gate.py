"""The decision-test gate of a policy change: every case of the configured decision-test files must
pass against a candidate policy before it serves (``authz serve --policy-tests PATH...``).

The files are read once, when the gate is built (a test file edited later is read at the next
start); each candidate is run against fresh in-memory worlds of those files, in-process, with the
engine the service uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from authz import harness
from authz.policy import Policy
from authz.reloader import Gate


def decision_test_gate(paths: Sequence[Path], engine: str) -> Gate:
    """A gate over the decision-test files in ``paths``; CaseFileError if one does not load."""
    tests = [harness.load_file(path) for path in harness.collect(paths)]
    if not tests:
        raise harness.CaseFileError(f"no decision test files in {', '.join(map(str, paths))}")

    def failures(policy: Policy) -> list[str]:
        found: list[str] = []
        for test in tests:
            try:
                results = list(harness.run_in_process(test, policy, engine))
            except harness.CaseFileError as exc:
                found.append(str(exc))
                continue
            for result in results:
                if not result.passed:
                    case = result.case
                    where = f"{case.file}:{case.line}" if case.line else f"{case.file}[{case.index}]"
                    expected = ("allow" if case.allow else "deny") + (f" ({case.rule})" if case.rule else "")
                    reason = result.decision.reason if result.decision else result.error
                    found.append(f"{where}: {case.subject} {case.action} {case.resource}: expected {expected}, "
                                 f"got {result.got}: {reason}")  # fmt: skip
        return found

    return failures
