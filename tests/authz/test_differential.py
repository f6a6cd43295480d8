"""The compiled engine agrees with pycasbin's Enforcer on random worlds and requests.

Each hypothesis example is a random world (authz.testing.random_world) and REQUESTS random
requests over it; both engines evaluate the same facts and must give the same `allowed`, the
same matched rule ids and policy lines, and the same missing context key. At least 20,000
requests are compared per run.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz import resolver
from authz.decision import Request
from authz.engines import CompiledEngine, Engine, Verdict
from authz.engines import matcher as compiler
from authz.engines.casbin import CasbinEngine
from authz.policy import Policy, custom_role_lines, load_policy
from authz.state import WorldState
from authz.testing import DEFAULT_POLICIES, random_requests, random_world, state_from_document

WORLDS = 40
REQUESTS = 700
POLICY = load_policy(DEFAULT_POLICIES)
COMPARED = {"requests": 0}


def _summary(verdict: Verdict) -> tuple[object, ...]:
    return (
        verdict.allowed,
        tuple(line.rule for line in verdict.granted),
        tuple(line.source for line in verdict.granted),
        tuple(line.source for line in verdict.denied),
        verdict.missing,
    )


def disagreements(
    seed: int, requests: int, compiled_factory: Callable[[Policy], Engine] = CompiledEngine, *, first: bool = False
) -> tuple[int, list[str]]:
    """Compare both engines on one random world; returns (requests compared, disagreements)."""
    rng = random.Random(seed)
    state: WorldState = state_from_document(random_world(rng, rng.randint(4, 10)))
    policy = POLICY.with_lines(custom_role_lines(POLICY, state.rows["custom_role"].values()))
    reference, compiled = CasbinEngine(policy), compiled_factory(policy)
    compared, problems = 0, []
    for request in random_requests(rng, state, policy, requests):
        if not _reaches_engine(state, request):
            continue
        target = resolver.resource(state, request.resource_kind, request.resource_id)
        assert target is not None
        sub = resolver.subject(state, request.subject_kind, request.subject_id, target)
        want = _summary(reference.evaluate(sub, target.facts, request.action, request.context))
        got = _summary(compiled.evaluate(sub, target.facts, request.action, request.context))
        compared += 1
        if want != got:
            problems.append(f"seed {seed}: {request}: pycasbin {want} != compiled {got}")
            if first:
                break
    return compared, problems


def _reaches_engine(state: WorldState, request: Request) -> bool:
    """The decider asks the engine only for known subjects and resources."""
    return resolver.subject_exists(state, request.subject_kind, request.subject_id) and (
        resolver.resource(state, request.resource_kind, request.resource_id) is not None
    )


@pytest.mark.slow
@settings(max_examples=WORLDS, deadline=None, derandomize=False, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_compiled_engine_agrees_with_pycasbin(seed: int) -> None:
    """On a random world, every request gets the same verdict from both engines."""
    compared, problems = disagreements(seed, REQUESTS)
    COMPARED["requests"] += compared
    assert not problems, "\n".join(problems[:5])


@pytest.mark.slow
def test_enough_requests_were_compared() -> None:
    """The differential run above compared at least 20,000 requests (runs after it in file order)."""
    if COMPARED["requests"] == 0:
        pytest.skip("run together with test_compiled_engine_agrees_with_pycasbin")
    assert COMPARED["requests"] >= 20_000, COMPARED


def test_a_wrong_compilation_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling one condition wrongly (== read as !=) makes the differential check fail."""
    original = compiler.python_source

    def mutated(cond: str) -> str:
        source = original(cond)
        return source.replace("r.obj.creator == r.sub.ref", "r.obj.creator != r.sub.ref")

    monkeypatch.setattr(compiler, "python_source", mutated)
    found = next((problems for seed in range(20) if (problems := disagreements(seed, 400, first=True)[1])), None)
    assert found, "the differential check must notice a mutated condition"
