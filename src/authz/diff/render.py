"""A policy diff for people (text, Markdown for a pull-request comment) and for programs (JSON).

Every form has the same parts: what was compared (the base and head versions, the store revision),
the counts per action and direction, the counts per rule id, and the changes (all of them in JSON
unless a limit cut them; the first few in the forms for people).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from authz.diff.walk import Change, Outcome

EXAMPLES = 10  # changes shown in the forms for people


@dataclass(frozen=True)
class Compared:
    """What a diff compared: the two policies (a label and a version each) and the world's revision."""

    base: str
    base_version: str
    head: str
    head_version: str
    revision: int
    world: str


def document(outcome: Outcome, compared: Compared) -> dict[str, Any]:
    """The JSON document of ``authz policy diff --json``."""
    found: dict[str, Any] = {
        "base": compared.base_version,
        "head": compared.head_version,
        "revision": compared.revision,
        "counts": {action: dict(outcome.counts[action]) for action in sorted(outcome.counts)},
        "rules": dict(sorted(outcome.rules.items())),
        "changes": [change_document(change) for change in outcome.changes],
    }
    if outcome.truncated:
        found["truncated"] = True
    return found


def change_document(change: Change) -> dict[str, Any]:
    return {
        "subject": change.subject,
        "action": change.action,
        "resource": change.resource,
        "context": dict(change.context),
        "before": change.before,
        "after": change.after,
        "before_rules": list(change.before_rules),
        "after_rules": list(change.after_rules),
    }


def to_json(outcome: Outcome, compared: Compared) -> str:
    return json.dumps(document(outcome, compared), indent=2, sort_keys=False) + "\n"


def total(outcome: Outcome) -> int:
    return sum(n for counts in outcome.counts.values() for n in counts.values())


def _word(allowed: bool) -> str:
    return "allow" if allowed else "deny"


def _rules(rules: tuple[str, ...]) -> str:
    return ",".join(rules) if rules else "-"


def _context(change: Change) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(change.context.items()))


def _rows(outcome: Outcome) -> list[tuple[str, int, int]]:
    return [
        (action, counts["allow_to_deny"], counts["deny_to_allow"])
        for action, counts in sorted(outcome.counts.items())
        if counts["allow_to_deny"] or counts["deny_to_allow"]
    ]


def _heading(compared: Compared) -> str:
    return (
        f"{compared.base} ({compared.base_version}) -> {compared.head} ({compared.head_version}) "
        f"on {compared.world} at revision {compared.revision}"
    )


def to_text(outcome: Outcome, compared: Compared, examples: int = EXAMPLES) -> str:
    lines = [f"policy diff: {_heading(compared)}"]
    changed = total(outcome)
    if not changed:
        lines.append("no decision changes")
        return "\n".join(lines) + "\n"
    lines.append(f"{changed} decision(s) change:")
    width = max(len(action) for action, _, _ in _rows(outcome))
    lines.append(f"  {'action':<{width}}  allow->deny  deny->allow")
    for action, narrowed, widened in _rows(outcome):
        lines.append(f"  {action:<{width}}  {narrowed:>11}  {widened:>11}")
    lines.append("by rule (changed decisions citing it, before or after):")
    lines.extend(f"  {rule}: {n}" for rule, n in sorted(outcome.rules.items(), key=lambda item: (-item[1], item[0])))
    shown = outcome.changes[:examples]
    lines.append(f"examples ({len(shown)} of {changed}):")
    for change in shown:
        context = f" [{_context(change)}]" if change.context else ""
        lines.append(
            f"  {change.subject} {change.action} {change.resource}{context}: "
            f"{_word(change.before)} ({_rules(change.before_rules)}) -> "
            f"{_word(change.after)} ({_rules(change.after_rules)})"
        )
    if outcome.truncated or len(outcome.changes) < changed:
        lines.append("  (more changes: --json lists them all, --limit N cuts the list)")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(outcome: Outcome, compared: Compared, examples: int = EXAMPLES) -> str:
    lines = ["### Policy diff", "", f"`{_cell(_heading(compared))}`", ""]
    changed = total(outcome)
    if not changed:
        lines.append("No decision changes.")
        return "\n".join(lines) + "\n"
    lines += [f"**{changed} decision(s) change.**", "", "| action | allow → deny | deny → allow |", "|---|--:|--:|"]
    lines += [f"| `{action}` | {narrowed} | {widened} |" for action, narrowed, widened in _rows(outcome)]
    lines += ["", "| rule | changed decisions citing it |", "|---|--:|"]
    lines += [f"| {rule} | {n} |" for rule, n in sorted(outcome.rules.items(), key=lambda item: (-item[1], item[0]))]
    shown = outcome.changes[:examples]
    lines += [
        "",
        f"<details><summary>Examples ({len(shown)} of {changed})</summary>",
        "",
        "| subject | action | resource | context | before | after |",
        "|---|---|---|---|---|---|",
    ]
    for change in shown:
        lines.append(
            f"| `{_cell(change.subject)}` | `{change.action}` | `{_cell(change.resource)}` | {_cell(_context(change))} "
            f"| {_word(change.before)} ({_rules(change.before_rules)}) "
            f"| {_word(change.after)} ({_rules(change.after_rules)}) |"
        )
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
