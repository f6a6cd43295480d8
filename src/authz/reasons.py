"""The words of a decision: its reason, the rules and policy lines it names, and ``--explain``.

Pure functions of a verdict and the facts it was made on; the decider calls them once the engine
has answered. Global rules that shape a deny without being policy lines (G4, G6, G8) are named
here too, so an author searching for a rule id finds the decision that cites it.
"""

from __future__ import annotations

from typing import Any

from authz import resolver
from authz.decision import Decision, Request
from authz.engines.base import Verdict
from authz.policy import Line


def failed(exc: BaseException, revision: int, version: str) -> Decision:
    return Decision(
        False,
        f"denied: internal error while deciding ({type(exc).__name__}); failing closed",
        revision=revision,
        policy_version=version,
    )


def finish(decision: Decision, revision: int, version: str, explain: bool) -> Decision:
    return Decision(
        decision.allowed,
        decision.reason,
        decision.rules,
        decision.policy_lines,
        revision,
        version,
        decision.explanation if explain else "",
    )


def unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def describe(line: Line) -> str:
    return f"{line.rule} ({line.act} for {line.role} when {line.cond})"


def decision_of(
    *,
    r: Request,
    action: str,
    target: resolver.Resource,
    sub: dict[str, Any],
    verdict: Verdict,
    gate_rules: list[str],
    gate_lines: list[str],
    explanation: str,
) -> Decision:
    ref = target.facts["ref"]
    if verdict.allowed:
        granted = verdict.granted
        reason = f"allowed: {r.subject} may {action} {ref} by " + "; ".join(
            f"{describe(line)} at {line.source}" for line in granted
        )
        return Decision(
            True,
            reason,
            unique([line.rule for line in granted] + gate_rules),
            unique([line.source for line in granted] + gate_lines),
            explanation=explanation,
        )
    if verdict.missing:
        readers = [line for line in verdict.candidates if f"r.ctx.{verdict.missing}" in line.cond]
        return Decision(
            False,
            f"denied: {action} reads context value {verdict.missing!r}, which was not given (G7)",
            unique(["G7", *(line.rule for line in readers)]),
            unique([line.source for line in readers]),
            explanation=explanation,
        )
    if verdict.denied:
        return Decision(
            False,
            f"denied: {r.subject} may not {action} {ref}: "
            + "; ".join(f"{line.rule} denies when {line.cond} ({line.source})" for line in verdict.denied),
            unique([line.rule for line in verdict.denied]),
            unique([line.source for line in verdict.denied]),
            explanation=explanation,
        )
    roles = ", ".join(sorted(sub["roles"]))
    rules = unique([line.rule for line in verdict.candidates if line.eft == "allow"])
    notes = global_rules(sub, target)
    return Decision(
        False,
        f"denied: no rule grants {action} on {ref} to {r.subject} (holds {roles}; "
        f"{action} is granted by {', '.join(rules) or 'no rule'})"
        + "".join(f"; {GLOBAL_NOTES[note]}" for note in notes),
        unique(["G1", *notes, *rules]),
        unique([line.source for line in verdict.candidates if line.eft == "allow"]),
        explanation=explanation,
    )


GLOBAL_NOTES = {
    "G4": "listed in the project, but no longer in its team (G4)",
    "G6": "org admins get no implicit access to team data (G6)",
    "G8": "an org viewer's seat acts as at most view_only (G8)",
}
TEAM_DATA = frozenset({"project", "run", "sweep", "report", "artifact"})


def global_rules(sub: dict[str, Any], target: resolver.Resource) -> list[str]:
    """Global rules that shaped a deny, to name them (they are not policy lines: section 3)."""
    roles = sub["roles"]
    in_team = any(role.startswith("team:") for role in roles)
    notes = []
    if sub["added"] and not in_team and target.scope.team:
        notes.append("G4")
    if "org:admin" in roles and not in_team and target.scope.team and target.facts["kind"] in TEAM_DATA:
        notes.append("G6")
    if sub["org_role"] == "viewer":
        notes.append("G8")
    return notes


def explain(action: str, sub: dict[str, Any], obj: dict[str, Any], verdict: Verdict) -> str:
    def show(facts: dict[str, Any]) -> str:
        parts = []
        for key, value in facts.items():
            if isinstance(value, frozenset):
                value = sorted(value)
            parts.append(f"{key}={value}")
        return ", ".join(parts)

    matched = set(verdict.granted) | set(verdict.denied)
    lines = [f"subject: {show(sub)}", f"resource: {show(obj)}", f"rules for {action}:"]
    for line in verdict.candidates:
        mark = "matched" if line in matched else "-"
        lines.append(f"  [{mark}] {line.eft} {describe(line)}  {line.source}")
    return "\n".join(lines)
