"""The policy diff is exact: it finds every changed decision, and only those, that asking both policies about
every (subject, action, resource, context) would find, on the demo world and on random worlds, for random edits."""

from __future__ import annotations

import itertools
import os
import random
from collections import Counter
from pathlib import Path

import pytest

from authz import resolver
from authz.decision import Request
from authz.diff import deciders, diff_policies
from authz.diff.walk import candidate_values, reads_for
from authz.engines.index import ActionIndex
from authz.errors import PolicyError
from authz.policy import Policy, build_policy, read_files
from authz.state import WorldState
from authz.testing import DEFAULT_POLICIES, random_world, state_from_document, state_from_file

ROOT = Path(__file__).resolve().parents[2]
FILES = read_files(DEFAULT_POLICIES)
BASE = build_policy(FILES, DEFAULT_POLICIES)
Key = tuple[str, str, str, frozenset[tuple[str, str]], bool, bool]


def brute_force(state: WorldState, base: Policy, head: Policy) -> tuple[set[Key], Counter[tuple[str, str]]]:
    """Every triple, every context value: the changes and their counts per (action, direction)."""
    before, after = deciders(state, base, head)
    subjects = [("user", k[0]) for k in state.rows["user"]] + [
        ("service_account", k[0]) for k in state.rows["service_account"]
    ]
    subjects.append(("anonymous", ""))
    tables = {"version": "collection_version"}
    changes: set[Key] = set()
    counts: Counter[tuple[str, str]] = Counter()
    actions = sorted(set(base.actions) | set(head.actions))
    for action in actions:
        reads = reads_for(action, base, head)
        kinds = dict.fromkeys((*ActionIndex(base).applies_to(action), *ActionIndex(head).applies_to(action)))
        for kind in kinds:
            ids = ["main"] if kind == "system" else sorted(k[0] for k in state.rows[tables.get(kind, kind)])
            for ident in ids:
                target = resolver.resource(state, kind, ident)
                assert target is not None
                project = resolver.resource(state, "project", target.project) if target.project else None
                sources = [target.facts] + ([project.facts] if project is not None else [])
                for subject in subjects:
                    sub = resolver.subject(state, subject[0], subject[1], target)
                    keys = sorted(reads.ctx)
                    values = [candidate_values(reads.ctx[k], sub, sources) for k in keys]
                    for combo in itertools.product(*values):
                        context = dict(zip(keys, combo, strict=True))
                        request = Request(subject[0], subject[1], action, kind, ident, context)
                        was, now = before.decide(request).allowed, after.decide(request).allowed
                        if was != now:
                            ref = "anonymous" if subject[0] == "anonymous" else f"{subject[0]}:{subject[1]}"
                            changes.add((ref, action, f"{kind}:{ident}", frozenset(context.items()), was, now))
                            counts[(action, "allow_to_deny" if was else "deny_to_allow")] += 1
    return changes, counts


def _assert_exact(state: WorldState, base: Policy, head: Policy) -> int:
    outcome = diff_policies(state, base, head)
    found = {
        (c.subject, c.action, c.resource, frozenset(c.context.items()), c.before, c.after) for c in outcome.changes
    }
    want, counts = brute_force(state, base, head)
    assert found == want, (sorted(found - want)[:5], sorted(want - found)[:5])
    got_counts = Counter({(a, d): n for a, by in outcome.counts.items() for d, n in by.items() if n})
    assert got_counts == counts
    assert len(outcome.changes) == len(found), "each change listed once"
    return len(want)


def _edit(files: dict[str, bytes], name: str, old: str, new: str) -> Policy:
    edited = dict(files)
    text = edited[name].decode()
    assert old in text, old
    edited[name] = text.replace(old, new, 1).encode()
    return build_policy(edited, DEFAULT_POLICIES)


EDITS = [
    ("reports.csv", "p, RP3, report.edit, team:admin, True, allow", "p, RP3, report.edit, team:member, True, allow"),
    ("projects.csv", "p, P1, project.view, team:view_only,", "p, P1, project.view, team:member,"),
    ("roles.csv", "g, team:member, team:view_only", "g, team:member, team:view_only\ng, org:admin, team:admin"),
    ("runs.csv", "r.obj.creator == r.sub.ref", "r.obj.creator != r.sub.ref"),
    ("model_registry.csv", "r.ctx.alias in r.obj.protected_aliases", "r.ctx.alias not in r.obj.protected_aliases"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "old", "new"), EDITS, ids=[f"{n}: {o[:40]}" for n, o, _ in EDITS])
def test_diff_is_exact_on_the_demo_world(name: str, old: str, new: str) -> None:
    """On the demo world, the diff of a one-line edit equals asking every triple."""
    state = state_from_file(ROOT / "examples" / "demo-world.yaml")
    head = _edit(FILES, name, old, new)
    assert _assert_exact(state, BASE, head) > 0


def test_no_edit_no_change() -> None:
    """The same policy twice changes nothing, and no action needs looking at."""
    state = state_from_file(ROOT / "examples" / "demo-world.yaml")
    outcome = diff_policies(state, BASE, BASE)
    assert outcome.changes == []
    assert outcome.affected == ()


def _mutate(rng: random.Random) -> Policy | None:
    """A random edit of the kind authors make: a line's role, condition, effect or presence; a g line."""
    files = dict(FILES)
    name = rng.choice(sorted(n for n in files if n.endswith(".csv")))
    lines = files[name].decode().splitlines()
    numbered = [i for i, line in enumerate(lines) if line.startswith(("p,", "g,", "g2,", "g3,"))]
    if not numbered:
        return None
    i = rng.choice(numbered)
    fields = [f.strip() for f in lines[i].split(",")]
    roll = rng.random()
    roles = ["team:view_only", "team:member", "team:admin", "org:admin", "org:member", "anyone", "authenticated",
             "team:service", "registry:viewer", "registry:admin", "mra", "self", "project:owner"]  # fmt: skip
    if fields[0] == "p" and roll < 0.3:
        lines[i] = lines[i].replace(f", {fields[3]},", f", {rng.choice(roles)},", 1)
    elif fields[0] == "p" and roll < 0.5 and "==" in lines[i]:
        lines[i] = lines[i].replace("==", "!=", 1)
    elif fields[0] == "p" and roll < 0.6:
        lines[i] = lines[i].rsplit(",", 1)[0] + (", deny" if lines[i].endswith("allow") else ", allow")
    elif roll < 0.85:
        del lines[i]
    else:
        lines.insert(i, f"g, {rng.choice(roles)}, {rng.choice(roles)}")
    files[name] = ("\n".join(lines) + "\n").encode()
    try:
        return build_policy(files, DEFAULT_POLICIES)
    except PolicyError:
        return None


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(int(os.environ.get("AUTHZ_DIFF_SEEDS", "12"))))
def test_diff_is_exact_on_random_worlds_and_edits(seed: int) -> None:
    """Random worlds, random edits (lines removed, roles, conditions, effects, role hierarchy): diff == brute force."""
    rng = random.Random(seed)
    state = state_from_document(random_world(rng, rng.randint(4, 7)))
    head = None
    while head is None:
        head = _mutate(rng)
    _assert_exact(state, BASE, head)
