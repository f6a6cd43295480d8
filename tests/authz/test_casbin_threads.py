"""The pycasbin reference engine under threads (`--engine casbin` serves from a thread pool).

pycasbin is not thread-safe, and on CPython 3.11 the ast module it parses every matcher with
keeps the recursion depth of a conversion in interpreter-wide state: concurrent parses, one of
them switched out by a garbage collection that runs a finalizer, raised ``SystemError: AST
constructor recursion depth mismatch``, which the decider turned into spurious denies.
CasbinEngine now serializes every call into pycasbin, with one lock for the whole process
(authz/engine.py). The two-engine case (a policy swap) is the one that reproduces the SystemError
reliably, and a lock per engine would not pass it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import casbin
import pytest

from authz.decider import Decider
from authz.decision import Request
from authz.policy import custom_role_lines, load_policy
from authz.state import WorldState
from authz.testing import DEFAULT_POLICIES, decider_for, random_requests, random_world, state_from_document

THREADS = 16
POLICY = load_policy(DEFAULT_POLICIES)


def _world(seed: int, count: int) -> tuple[WorldState, list[Request]]:
    rng = random.Random(seed)
    state = state_from_document(random_world(rng, 6))
    policy = POLICY.with_lines(custom_role_lines(POLICY, state.rows["custom_role"].values()))
    return state, random_requests(rng, state, policy, count)


def _answer(decider: Decider, request: Request) -> tuple[object, ...]:
    decision = decider.check(request)
    return decision.allowed, decision.rules, decision.policy_lines, decision.reason


def _in_threads(work: Callable[[int], None], count: int = THREADS) -> None:
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,), name=f"check-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.fixture
def switching(monkeypatch: pytest.MonkeyPatch) -> None:
    """pycasbin's enforce lets the other threads run first (as a busy server's threads do): many
    more switches between threads, each a chance for two parses to overlap."""
    enforce = casbin.Enforcer.enforce

    def switch_then_enforce(self: casbin.Enforcer, *rvals: Any) -> bool:
        time.sleep(0.0001)
        return bool(enforce(self, *rvals))

    monkeypatch.setattr(casbin.Enforcer, "enforce", switch_then_enforce)


@pytest.mark.slow
@pytest.mark.usefixtures("switching")
@pytest.mark.parametrize("engines", [1, 2], ids=["one-engine", "two-engines"])
def test_threads_get_the_single_threaded_answers(engines: int) -> None:
    """16 threads deciding random requests on one casbin engine, or on two side by side (as around
    a policy swap), each thread in its own order and at its own stack depth, get exactly the
    answers one thread gets: no errors, no spurious denies."""
    state, requests = _world(11, 40)
    # The answers of one thread, from an engine of its own; the threads share new engines, cold
    # as after a start or a policy reload (their single-line Enforcers are built under the load).
    alone = decider_for(state, POLICY, "casbin")
    expected = [_answer(alone, request) for request in requests]
    deciders = [decider_for(state, POLICY, "casbin") for _ in range(engines)]  # each adds the custom roles
    problems: list[str] = []

    def work(n: int) -> None:
        decider = deciders[n % engines]
        order = list(range(len(requests)))
        random.Random(n).shuffle(order)

        def at_depth(depth: int, request: Request) -> tuple[object, ...]:
            # Parses at different stack depths are what the shared parser state gets wrong.
            return at_depth(depth - 1, request) if depth else _answer(decider, request)

        for index in order:
            got = at_depth(n, requests[index])
            if got != expected[index]:
                problems.append(f"thread {n}: {requests[index]}: {got} != {expected[index]}")

    _in_threads(work)
    assert not problems, f"{len(problems)} answers differ, e.g.\n" + "\n".join(problems[:5])


def test_calls_into_pycasbin_never_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    """While one thread is inside pycasbin's enforce, no other thread enters it, in any engine."""
    state, requests = _world(13, 20)
    inside = {"now": 0, "most": 0}
    count = threading.Lock()
    enforce = casbin.Enforcer.enforce

    def watched(self: casbin.Enforcer, *rvals: Any) -> bool:
        with count:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        try:
            time.sleep(0.0002)  # let the others run now, if they may
            return bool(enforce(self, *rvals))
        finally:
            with count:
                inside["now"] -= 1

    monkeypatch.setattr(casbin.Enforcer, "enforce", watched)
    deciders = [decider_for(state, POLICY, "casbin") for _ in range(2)]  # two engines, as around a policy swap

    def work(n: int) -> None:
        decider = deciders[n % 2]
        for request in requests:
            decider.check(request)

    _in_threads(work, 8)
    assert inside["most"] == 1, f"{inside['most']} threads were inside pycasbin at once"
