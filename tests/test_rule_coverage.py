"""Every rule id of the permission model has decision cases: allowing and denying, where both exist.

RULES is our transcription of the rule ids of PERMISSIONS.md, with the outcomes each can have.
A rule exercised somewhere other than decision tables says where.
"""

from __future__ import annotations

from collections import defaultdict

from authz import harness
from tests.test_decisions import FILES

BOTH = ("allow", "deny")
RULES: dict[str, tuple[str, ...]] = {
    # 3. global rules
    "G1": ("deny",), "G3": ("deny",), "G4": ("deny",), "G5": BOTH, "G6": ("deny",), "G7": ("deny",),
    "G8": ("deny",),
    # 4.1 org and system
    "O1": BOTH, "O2": BOTH, "O3": BOTH, "O4": BOTH, "S1": BOTH, "S2": BOTH, "S3": BOTH,
    # 4.2 teams
    "T1": BOTH, "T2": ("allow",), "T3": BOTH, "T3a": BOTH, "T4": BOTH, "T5": BOTH, "T6": BOTH, "T7": BOTH,
    "T8": BOTH, "T9": BOTH,
    # 4.3 projects
    "P0": BOTH, "P1": BOTH, "P2": BOTH, "P3": BOTH, "P4": BOTH, "P5": BOTH, "P6": BOTH, "P7": BOTH,
    "P8": BOTH,
    # 4.4 runs and sweeps
    "E1": BOTH, "E2": BOTH, "E3": BOTH, "E4": BOTH, "E4a": ("deny",), "E5": BOTH, "E6": BOTH, "E7": BOTH,
    "E8": BOTH, "E9": BOTH, "E10": BOTH,
    # 4.5 reports, 4.6 artifacts
    "RP1": BOTH, "RP2": BOTH, "RP3": BOTH, "RP4": BOTH, "RP5": BOTH,
    "A1": BOTH, "A2": BOTH, "A3": BOTH, "A4": BOTH, "A5": BOTH, "A6": BOTH, "A7": BOTH,
    # 4.7 legacy model registry
    "M1": BOTH, "M1a": BOTH, "M2": BOTH, "M3": BOTH, "M4": BOTH, "M5": BOTH, "M6": BOTH, "M7": ("deny",),
    # 4.8 registries
    "G-R0": BOTH, "G-R1": BOTH, "G-R2": BOTH, "G-R3": BOTH, "G-R4": BOTH, "G-R5": BOTH, "G-R6": BOTH,
    "G-R8": BOTH,
    # 4.10 user settings
    "U1": BOTH, "U2": BOTH, "U3": BOTH, "U4": BOTH,
}  # fmt: skip

ELSEWHERE = {
    "G2": "every decision test asserts a reason (tests/test_decisions.py)",
    "G9": "context values are bare names in every decision file",
    "G-R7": "a store rule: tests/store/test_rules.py",
    "MG1": "tests/store/test_migration.py (collections, versions, aliases, times, lineage kept)",
    "MG2": "tests/authz/test_migration_proof.py and tests/decisions/migration.yaml (policy ids G-R0/G-R1/G-R3)",
    "MG3": "tests/decisions/migration.yaml (M7 denials, M3/M4 allowed while migrating and migrated)",
    "MG4": "tests/store/test_migration.py (idempotent, all-or-nothing, dry run)",
}


def _tagged() -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for path in FILES:
        for case in harness.load_file(path).cases:
            for rule in case.rules:
                seen[rule].add("allow" if case.allow else "deny")
    return seen


def test_every_rule_has_cases() -> None:
    """Each rule id has a case tagged with it for each outcome it can have."""
    seen = _tagged()
    missing = [f"{rule} ({outcome})" for rule, outcomes in RULES.items() for outcome in outcomes
               if outcome not in seen.get(rule, set())]  # fmt: skip
    assert not missing, f"rules without decision cases: {', '.join(missing)}"


def test_no_unknown_rule_ids() -> None:
    """Cases name only rule ids of the model."""
    unknown = set(_tagged()) - set(RULES) - set(ELSEWHERE)
    assert not unknown


def test_coverage_check_would_fail() -> None:
    """Dropping a rule's cases is noticed: the check is not vacuous."""
    seen = _tagged()
    seen.pop("RP3", None)
    missing = [rule for rule, outcomes in RULES.items() if not set(outcomes) <= seen.get(rule, set())]
    assert "RP3" in missing
