"""Replay an audit log: which of the decisions callers really asked for would flip under a policy.

Each distinct request of the log (subject, action, resource, context) is decided once, at the
world's current revision, under the head policy, and compared with the answer the log recorded
last for it. A flip is weighted by how often the request was asked, so the first lines of the
report are the changes callers would notice most. Requests logged with their context redacted
cannot be decided again faithfully when they had context: they are counted, not guessed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authz.decision import Request
from authz.errors import AuthzError
from authz.policy import Policy
from authz.state import WorldState

Key = tuple[str, str, str, tuple[tuple[str, str], ...]]  # subject, action, resource, context items


class LogError(Exception):
    """The audit log cannot be read: one line naming the file and the line."""


@dataclass
class Asked:
    """The distinct requests of a log: how often each was asked and the answer recorded last."""

    times: Counter[Key] = field(default_factory=Counter)
    last: dict[Key, tuple[bool, tuple[str, ...], int, str]] = field(default_factory=dict)  # allowed, rules, rev, ver
    redacted: int = 0  # lines whose context values were not recorded (and had some)
    lines: int = 0


@dataclass(frozen=True)
class Flip:
    subject: str
    action: str
    resource: str
    context: dict[str, str]
    times: int
    before: bool
    after: bool
    before_rules: tuple[str, ...]
    after_rules: tuple[str, ...]
    recorded_revision: int
    recorded_policy: str


@dataclass
class Replayed:
    flips: list[Flip] = field(default_factory=list)  # most asked first
    requests: int = 0  # distinct requests decided again
    asked: int = 0  # lines they stand for
    flipped: int = 0  # lines whose answer would flip
    unknown: int = 0  # lines the service would now refuse as invalid (INVALID_ARGUMENT), not decide
    redacted: int = 0
    lines: int = 0


def _text(item: dict[str, Any], name: str, path: Path, number: int) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise LogError(f"{path}:{number}: '{name}' is missing or not a string")
    return value


def read_log(path: Path) -> Asked:
    asked = Asked()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise LogError(f"{path}: cannot read the audit log ({exc.strerror or exc})") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                raise LogError(f"{path}:{number}: not a JSON line of an audit log") from None
            if not isinstance(item, dict):
                raise LogError(f"{path}:{number}: not a JSON object")
            asked.lines += 1
            context = item.get("context")
            if context is None:
                if item.get("context_keys"):
                    asked.redacted += 1
                    continue
                context = {}
            if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
                raise LogError(f"{path}:{number}: 'context' is not an object of strings")
            key = (
                _text(item, "subject", path, number),
                _text(item, "action", path, number),
                _text(item, "resource", path, number),
                tuple(sorted(context.items())),
            )
            asked.times[key] += 1
            allowed = item.get("allowed")
            if not isinstance(allowed, bool):
                raise LogError(f"{path}:{number}: 'allowed' is missing or not true/false")
            rules = tuple(str(rule) for rule in item.get("rules") or ())
            asked.last[key] = (allowed, rules, int(item.get("revision") or 0), str(item.get("policy_version") or ""))
    return asked


def _request(key: Key) -> Request:
    subject, action, resource, context = key
    subject_kind, _, subject_id = subject.partition(":")
    kind, _, ident = resource.partition(":")
    return Request(subject_kind, subject_id, action, kind, ident, dict(context))


def replay(asked: Asked, state: WorldState, head: Policy) -> Replayed:
    from authz.diff import deciders

    _, decider = deciders(state, head, head)
    done = Replayed(redacted=asked.redacted, lines=asked.lines)
    for key, times in asked.times.most_common():
        done.requests += 1
        done.asked += times
        try:
            decision = decider.check(_request(key), timeout=0)
        except AuthzError:
            done.unknown += times
            continue
        before, before_rules, revision, version = asked.last[key]
        if decision.allowed != before:
            done.flipped += times
            done.flips.append(Flip(key[0], key[1], key[2], dict(key[3]), times, before, decision.allowed,
                                   before_rules, decision.rules, revision, version))  # fmt: skip
    return done


def to_json(done: Replayed, head_version: str, revision: int, limit: int | None = None) -> str:
    flips = done.flips if limit is None else done.flips[:limit]
    return json.dumps({
        "head": head_version, "revision": revision, "lines": done.lines, "requests": done.requests,
        "asked": done.asked, "flipped": done.flipped, "redacted": done.redacted, "unknown": done.unknown,
        "flips": [{
            "subject": f.subject, "action": f.action, "resource": f.resource, "context": f.context,
            "times": f.times, "before": f.before, "after": f.after, "before_rules": list(f.before_rules),
            "after_rules": list(f.after_rules), "recorded_revision": f.recorded_revision,
            "recorded_policy_version": f.recorded_policy,
        } for f in flips],
        **({"truncated": True} if len(flips) < len(done.flips) else {}),
    }, indent=2)  # fmt: skip


def to_text(done: Replayed, head_version: str, revision: int, where: str, limit: int) -> str:
    word = {True: "allow", False: "deny"}
    lines = [
        f"replayed {done.requests} distinct request(s) ({done.asked} of {done.lines} logged) under {head_version} "
        f"on {where} at revision {revision}"
    ]
    if done.redacted:
        lines.append(f"{done.redacted} logged request(s) had their context redacted: not replayed")
    if done.unknown:
        lines.append(f"{done.unknown} logged request(s) would now be refused as invalid: not replayed")
    if not done.flips:
        lines.append("no recorded decision would flip")
        return "\n".join(lines) + "\n"
    lines.append(f"{done.flipped} of {done.asked} asked decision(s) would flip ({len(done.flips)} distinct):")
    for f in done.flips[:limit]:
        context = " [" + " ".join(f"{k}={v}" for k, v in sorted(f.context.items())) + "]" if f.context else ""
        lines.append(
            f"  {f.times:>6}x {f.subject} {f.action} {f.resource}{context}: "
            f"{word[f.before]} ({','.join(f.before_rules) or '-'}) -> "
            f"{word[f.after]} ({','.join(f.after_rules) or '-'})"
        )
    if len(done.flips) > limit:
        lines.append(f"  ... {len(done.flips) - limit} more (--limit N, --json)")
    return "\n".join(lines) + "\n"
