"""The words of a decision: its reason, the rules and policy lines it names, and ``--explain``.

Pure functions of a verdict and the facts it was made on; the decider calls them once the engine
has answered. Global rules that shape a deny without being policy lines (G4, G6, G8) are named
here too, so an author searching for a rule id finds the decision that cites it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from rapidfuzz import fuzz, process

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


# G3 denials of a question the policy or the world cannot make sense of: an action or resource kind
# the policy does not have, a subject the store does not have, an action asked of a kind it does not
# apply to. A caller's mistake rather than an answer about a real subject and resource: the command
# line treats them as usage errors (exit 2). An unknown *resource* is a plain deny (it may be gone).
UNKNOWN = {
    "action": "denied: unknown action ",
    "resource kind": "denied: unknown resource kind ",
    "subject": "denied: unknown subject ",
}
WRONG_KIND = " resources, not "
CLOSE = 75.0  # the similarity (0 to 100) a known name needs to be offered


def unknown(what: str, name: str, known: Iterable[str], prefix: str = "") -> Decision:
    """G3: the ``what`` (a key of :data:`UNKNOWN`) ``prefix + name`` is unknown; the reason offers the
    closest of ``known``, if one is close ("did you mean report.edit?").

    Close is rapidfuzz's ratio (difflib's measure, 2 x matching characters / total characters) of at
    least :data:`CLOSE`; the first of equally close names wins, so sets are compared in sorted order.
    ``known`` may be every user of a large world and this runs under the replica's lock: rapidfuzz
    compares 10,000 ids in about half a millisecond, where difflib took up to 40 ms.
    """
    choices = sorted(known) if isinstance(known, set | frozenset) else known
    guess = process.extractOne(name, choices, scorer=fuzz.ratio, score_cutoff=CLOSE)
    hint = f"; did you mean {prefix}{guess[0]}?" if guess else ""
    return Decision(False, f"{UNKNOWN[what]}{prefix}{name} (G3){hint}", ("G3",))


def wrong_kind(action: str, kinds: Iterable[str], kind: str) -> Decision:
    """G3: ``action`` applies to resources of ``kinds``, not of ``kind``."""
    return Decision(False, f"denied: {action} applies to {' or '.join(kinds)}{WRONG_KIND}{kind} (G3)", ("G3",))


def is_unknown_name(decision: Decision) -> bool:
    """True for the denials :func:`unknown` and :func:`wrong_kind` make: a usage error, not an answer."""
    if decision.allowed or decision.rules != ("G3",):
        return False
    reason = decision.reason
    return reason.startswith(tuple(UNKNOWN.values())) or (WRONG_KIND in reason and reason.endswith(" (G3)"))


def unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def describe(line: Line) -> str:
    return f"{line.rule} ({line.act} for {line.role} when {line.cond})"


@functools.lru_cache(maxsize=4096)
def granted_text(granted: tuple[Line, ...]) -> str:
    """The lines that granted, as an allow's reason names them: made once per set of lines (a line's
    text here is a function of what it compares equal by: its rule, action, role, condition, source)."""
    return "; ".join(f"{describe(line)} at {line.source}" for line in granted)


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
    revision: int,
    version: str,
) -> Decision:
    """The decision the engine's ``verdict`` on ``action`` makes, at ``revision`` of the world and
    ``version`` of the policy (made whole here: this runs for every decision)."""
    ref = target.facts["ref"]
    if verdict.allowed:
        granted = verdict.granted
        reason = f"allowed: {r.subject} may {action} {ref} by {granted_text(granted)}"
        return Decision(
            True,
            reason,
            unique([line.rule for line in granted] + gate_rules),
            unique([line.source for line in granted] + gate_lines),
            revision=revision,
            policy_version=version,
            explanation=explanation,
        )
    if verdict.error:
        broken = verdict.error_line
        where = f"{broken.rule} at {broken.source}" if broken is not None else "a line of the policy"
        return Decision(
            False,
            f"denied: {where} failed while deciding {action} ({verdict.error}); failing closed",
            (broken.rule,) if broken is not None else (),
            (broken.source,) if broken is not None else (),
            revision=revision,
            policy_version=version,
            explanation=explanation,
        )
    if verdict.missing:
        readers = [line for line in verdict.candidates if f"r.ctx.{verdict.missing}" in line.cond]
        return Decision(
            False,
            f"denied: {action} reads context value {verdict.missing!r}, which was not given (G7)",
            unique(["G7", *(line.rule for line in readers)]),
            unique([line.source for line in readers]),
            revision=revision,
            policy_version=version,
            explanation=explanation,
        )
    if verdict.denied:
        return Decision(
            False,
            f"denied: {r.subject} may not {action} {ref}: "
            + "; ".join(f"{line.rule} denies when {line.cond} ({line.source})" for line in verdict.denied),
            unique([line.rule for line in verdict.denied]),
            unique([line.source for line in verdict.denied]),
            revision=revision,
            policy_version=version,
            explanation=explanation,
        )
    roles = ", ".join(sorted(sub["roles"]))
    rules, sources = allow_lines(verdict.candidates)
    notes = global_rules(sub, target)
    return Decision(
        False,
        f"denied: no rule grants {action} on {ref} to {r.subject} (holds {roles}; "
        f"{action} is granted by {', '.join(rules) or 'no rule'})"
        + "".join(f"; {GLOBAL_NOTES[note]}" for note in notes),
        unique(["G1", *notes, *rules]),
        sources,
        revision=revision,
        policy_version=version,
        explanation=explanation,
    )


_allow_lines: dict[int, tuple[tuple[Line, ...], tuple[str, ...], tuple[str, ...]]] = {}


def allow_lines(candidates: tuple[Line, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The rule ids and sources of the allow lines among ``candidates`` (an action's lines), in order.

    Made once per candidates tuple (the engine's index hands out the same tuple for an action until
    the engine is replaced): kept by the tuple's identity, with the tuple, so that the id stays its
    own; emptied when it grows past a bound (engines come and go with policy versions).
    """
    made = _allow_lines.get(id(candidates))
    if made is not None and made[0] is candidates:
        return made[1], made[2]
    allow = [line for line in candidates if line.eft == "allow"]
    rules, sources = unique([line.rule for line in allow]), unique([line.source for line in allow])
    if len(_allow_lines) >= 4096:
        _allow_lines.clear()
    _allow_lines[id(candidates)] = (candidates, rules, sources)
    return rules, sources


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
        if line.text:  # the text of the version that decided, whatever the file says now
            lines.append(f"        {line.text}")
    return "\n".join(lines)
