"""The compiled engine: the model in model.conf, compiled once, with pycasbin's answers.

At build time the policy (with custom-role lines) becomes a :class:`~authz.engines.matcher.Plan`:
the matcher of model.conf split into what is decided once per request, an index, role filters
and a per-line residual (authz/engines/matcher.py says how, and why it gives every line
pycasbin's result). At decision time the lines the plan leaves are evaluated in policy order and
the model's effect is applied the way pycasbin's effectors apply it, including where they stop:

* allow-override stops at the first allow; deny-override and allow-and-deny at the first deny;
  priority at the first line that matches;
* a line that raises before that point ends the decision as pycasbin's ``enforce`` would: a
  missing context value is a deny naming the key (G7), any other error a deny naming the line
  (the decider counts it and reports it).

Which lines are named (:class:`Verdict` ``granted``/``denied``) is the same rule as the casbin
engine's: the lines of the action whose effect is the outcome's and whose matcher holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authz.engines.base import Context, Verdict
from authz.engines.index import ActionIndex, Indexed
from authz.engines.matcher import RoleGraph, compile_plan, judge
from authz.errors import MissingContext, PolicyError
from authz.model import GROUPINGS
from authz.policy import Line, Policy


class CompiledEngine(Indexed):
    """Same answers as CasbinEngine (checked by differential tests), far faster."""

    def __init__(self, policy: Policy) -> None:
        if policy.model is None:
            raise PolicyError(f"{policy.directory}: the policy has no checked model to compile")
        self.policy = policy
        self.index = ActionIndex(policy)
        self.effect = policy.model.effect
        graphs = {name: RoleGraph(policy.grouping(name)) for name in GROUPINGS}
        self._plan = compile_plan(policy.model, policy.p_lines, graphs)

    def evaluate(self, sub: dict[str, Any], obj: dict[str, Any], act: str, ctx: Mapping[str, str]) -> Verdict:
        candidates = self.index.candidates(act)
        context = ctx if isinstance(ctx, Context) else Context(ctx)
        lines, values = self._plan.candidates(sub, obj, act, context)
        allow = deny = stopped = False  # the effect pycasbin's scan sees, up to where it stops
        granted: list[Line] = []
        denied: list[Line] = []
        for compiled in lines:  # one pass, in policy order; hot: kept flat on purpose
            for check in compiled.roles:
                value = values[check.slot]
                if check.holders.isdisjoint(value) if check.many else value not in check.holders:
                    break
            else:
                line = compiled.line
                if compiled.residual is not None:
                    try:
                        result = compiled.residual(sub, obj, act, context)
                        if result is not True and (result is False or not judge(result)):
                            continue
                    except Exception as exc:  # noqa: BLE001 - pycasbin's scan would raise here
                        if stopped:
                            continue  # past where pycasbin stops: only naming lines, it does not match
                        if isinstance(exc, MissingContext):
                            return Verdict(False, candidates=candidates, missing=exc.key)
                        error = f"{type(exc).__name__}: {exc}"
                        return Verdict(False, candidates=candidates, error=error, error_line=line)
                if line.eft == "allow":
                    granted.append(line)
                    allow = allow or not stopped
                else:
                    denied.append(line)
                    deny = deny or not stopped
                stopped = stopped or self._stops(allow, deny)
        if self._final(allow, deny):
            return Verdict(True, granted=tuple(line for line in granted if line.act == act), candidates=candidates)
        return Verdict(False, denied=tuple(line for line in denied if line.act == act), candidates=candidates)

    def _stops(self, allow: bool, deny: bool) -> bool:
        """pycasbin's intermediate effect: the scan stops once the outcome cannot change."""
        if self.effect == "allow_override":
            return allow
        if self.effect == "priority":
            return allow or deny
        return deny

    def _final(self, allow: bool, deny: bool) -> bool:
        """pycasbin's final effect over what the scan saw."""
        if self.effect == "allow_override":
            return allow
        if self.effect == "deny_override":
            return not deny
        if self.effect == "priority":
            return allow
        return allow and not deny
