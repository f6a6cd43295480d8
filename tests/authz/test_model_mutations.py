"""Both engines implement all of model.conf: for every mutation of the matcher or the effect, either lint
refuses the model (naming its section) or the compiled engine and pycasbin agree on every request.

The mutations are the edits an author makes by mistake or on purpose: a conjunct dropped, ``&&`` read
as ``||``, ``==`` as ``!=``, a term negated, reordered or replaced, an alternative added, a typo, a
function pycasbin has and we do not, each effect form pycasbin supports.
"""

from __future__ import annotations

import random
import re

import pytest

from authz import resolver
from authz.engines import CompiledEngine, Verdict
from authz.engines.casbin import CasbinEngine
from authz.errors import PolicyError
from authz.policy import Policy, build_policy, custom_role_lines, read_files
from authz.testing import DEFAULT_POLICIES, random_requests, random_world, state_from_document

MATCHER = "m = g2(r.act, r.obj.kind) && r.act == p.act && holds(r.sub.roles, p.role) && eval(p.cond)"
EFFECT = "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))"

MATCHERS = {
    "as written": MATCHER,
    "no kind check": "m = r.act == p.act && holds(r.sub.roles, p.role) && eval(p.cond)",
    "no action index": "m = g2(r.act, r.obj.kind) && holds(r.sub.roles, p.role) && eval(p.cond)",
    "no role check": "m = g2(r.act, r.obj.kind) && r.act == p.act && eval(p.cond)",
    "no condition": "m = g2(r.act, r.obj.kind) && r.act == p.act && holds(r.sub.roles, p.role)",
    "condition first": "m = eval(p.cond) && g2(r.act, r.obj.kind) && r.act == p.act && holds(r.sub.roles, p.role)",
    "role check last": "m = g2(r.act, r.obj.kind) && r.act == p.act && eval(p.cond) && holds(r.sub.roles, p.role)",
    "or instead of and": "m = g2(r.act, r.obj.kind) && r.act == p.act && (holds(r.sub.roles, p.role) || eval(p.cond))",
    "not equal": "m = g2(r.act, r.obj.kind) && r.act != p.act && holds(r.sub.roles, p.role) && eval(p.cond)",
    "negated condition": "m = g2(r.act, r.obj.kind) && r.act == p.act && holds(r.sub.roles, p.role) && !eval(p.cond)",
    "negated role": "m = g2(r.act, r.obj.kind) && r.act == p.act && !holds(r.sub.roles, p.role) && eval(p.cond)",
    "anonymous too": "m = (g2(r.act, r.obj.kind) && r.act == p.act && holds(r.sub.roles, p.role) && eval(p.cond)) "
    "|| r.sub.kind == 'anonymous'",
    "reversed index": "m = g2(r.act, r.obj.kind) && p.act == r.act && holds(r.sub.roles, p.role) && eval(p.cond)",
    "kind compared": "m = g2(r.act, r.obj.kind) && r.obj.kind == p.act && holds(r.sub.roles, p.role) && eval(p.cond)",
    "g instead of holds": "m = g2(r.act, r.obj.kind) && r.act == p.act && g(r.sub.ref, p.role) && eval(p.cond)",
    "line constant": "m = g2(r.act, r.obj.kind) && r.act == p.act && p.eft == 'allow' && holds(r.sub.roles, p.role) "
    "&& eval(p.cond)",
    "context first": "m = r.ctx.alias != '' && g2(r.act, r.obj.kind) && r.act == p.act && holds(r.sub.roles, p.role) "
    "&& eval(p.cond)",
    "bare fact": "m = g2(r.act, r.obj.kind) && r.act == p.act && holds(r.sub.roles, p.role) && r.sub.added",
    "typo r.actt": "m = g2(r.act, r.obj.kind) && r.actt == p.act && holds(r.sub.roles, p.role) && eval(p.cond)",
    "typo p.rol": "m = g2(r.act, r.obj.kind) && r.act == p.act && holds(r.sub.roles, p.rol) && eval(p.cond)",
    "unknown fact": "m = g2(r.act, r.obj.knd) && r.act == p.act && holds(r.sub.roles, p.role) && eval(p.cond)",
    "keyMatch": "m = g2(r.act, r.obj.kind) && keyMatch(r.act, p.act) && holds(r.sub.roles, p.role) && eval(p.cond)",
    "cut short": "m = g2(r.act, r.obj.kind) && r.act == p.act && holds(r.sub.roles,",
}  # fmt: skip
EFFECTS = {
    "allow and deny": EFFECT,
    "allow override": "e = some(where (p.eft == allow))",
    "deny override": "e = !some(where (p.eft == deny))",
    "priority": "e = priority(p.eft) || deny",
    "subject priority": "e = subjectPriority(p.eft) || deny",
    "spaces differ": "e = some(where(p.eft == allow))",
    "made up": "e = most(where (p.eft == allow))",
}
# What lint must refuse; everything else must agree.
REFUSED = {"typo r.actt", "typo p.rol", "unknown fact", "keyMatch", "cut short", "subject priority", "spaces differ",
           "made up"}  # fmt: skip
SEEDS = 2
REQUESTS = 200


def _mutated(matcher: str, effect: str) -> Policy:
    files = read_files(DEFAULT_POLICIES)
    text = files["model.conf"].decode()
    assert MATCHER in text
    assert EFFECT in text
    files["model.conf"] = text.replace(MATCHER, matcher).replace(EFFECT, effect).encode()
    return build_policy(files, DEFAULT_POLICIES)


def _summary(verdict: Verdict) -> tuple[object, ...]:
    return (
        verdict.allowed,
        tuple(line.source for line in verdict.granted),
        tuple(line.source for line in verdict.denied),
        verdict.missing,
        bool(verdict.error),
        verdict.error_line.source if verdict.error_line else "",
    )


def _disagreements(policy: Policy) -> tuple[int, list[str]]:
    compared, problems = 0, []
    for seed in range(SEEDS):
        rng = random.Random(seed)
        state = state_from_document(random_world(rng, rng.randint(4, 8)))
        full = policy.with_lines(custom_role_lines(policy, state.rows["custom_role"].values()))
        reference, compiled = CasbinEngine(full), CompiledEngine(full)
        for request in random_requests(rng, state, policy, REQUESTS):
            if not resolver.subject_exists(state, request.subject_kind, request.subject_id):
                continue
            target = resolver.resource(state, request.resource_kind, request.resource_id)
            if target is None:
                continue
            sub = resolver.subject(state, request.subject_kind, request.subject_id, target)
            want = _summary(reference.evaluate(sub, target.facts, request.action, request.context))
            got = _summary(compiled.evaluate(sub, target.facts, request.action, request.context))
            compared += 1
            if want != got:
                problems.append(f"{request}: pycasbin {want} != compiled {got}")
    return compared, problems


CASES = [(m, "allow and deny") for m in MATCHERS] + [("as written", e) for e in EFFECTS if e != "allow and deny"]
CASES += [(m, e) for m in ("no condition", "anonymous too", "condition first") for e in ("allow override", "priority")]


@pytest.mark.slow
@pytest.mark.parametrize(("matcher", "effect"), CASES, ids=[f"{m} / {e}" for m, e in CASES])
def test_engines_agree_or_lint_refuses(matcher: str, effect: str) -> None:
    """The mutated model is refused naming its section, or both engines give the same verdicts."""
    if matcher in REFUSED or effect in REFUSED:
        section = "[policy_effect]" if effect in REFUSED else "[matchers]"
        with pytest.raises(PolicyError, match=r"model\.conf:\d+: " + re.escape(section)):
            _mutated(MATCHERS[matcher], EFFECTS[effect])
        return
    policy = _mutated(MATCHERS[matcher], EFFECTS[effect])  # a PolicyError here: lint refused a faithful model
    compared, problems = _disagreements(policy)
    assert compared > 100
    assert not problems, "\n".join(problems[:5])
