"""Fail closed: an exception in the resolver or the engine is a deny with a reason; serving goes on."""

from __future__ import annotations

from typing import Any

import pytest

from authz import resolver
from authz.engines import CompiledEngine
from authz.engines.casbin import CasbinEngine
from tests.conftest import Stack

ALLOWED = ("user:carol", "report.edit", "report:rep-weekly-vision")


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected fault")


@pytest.fixture(autouse=True)
def _decide_every_call(stack: Stack) -> None:
    """These tests inject faults into the decision path itself, so every call must take it: the decision
    cache (which would answer a repeated request from before the fault) is off here."""
    stack.decision.decider.cache = 0


@pytest.mark.parametrize(
    ("target", "name"),
    [(resolver, "resource"), (resolver, "subject"), (CompiledEngine, "evaluate"), (CasbinEngine, "evaluate")],
    ids=["resolver.resource", "resolver.subject", "compiled engine", "casbin engine"],
)
def test_injected_fault_denies(stack: Stack, monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
    """A fault inside a decision gives allowed=false naming the failure; the next call is normal again."""
    if target is CasbinEngine:
        monkeypatch.setattr(stack.decision.decider.engines, "_factory", CasbinEngine)
        stack.decision.decider.engines.set_policy(stack.decision.decider.engines.policy)
    assert stack.client.check(*ALLOWED).allowed
    with monkeypatch.context() as patch:
        patch.setattr(target, name, _boom)
        decision = stack.client.check(*ALLOWED)
        batch = stack.client.check("user:bob", "report.view", "report:rep-weekly-vision")
    assert not decision.allowed
    assert "internal error" in decision.reason
    assert "fail" in decision.reason
    assert not batch.allowed
    assert stack.client.check(*ALLOWED).allowed, "the server keeps serving"
