"""The reference engine: pycasbin's Enforcer evaluates the policy.

:class:`CasbinEngine` asks pycasbin's Enforcer for the decision (the whole policy, with the
model's effect) and, to name every line that matched, asks one single-line Enforcer per
candidate line (built lazily, cached). Engines are immutable once built; a policy or custom-role
change builds a new one.

Threads: gRPC handler threads call :meth:`CasbinEngine.evaluate` concurrently, and pycasbin is not
thread-safe. Its Enforcer mutates shared state on every call (the function map), and it parses
the matcher (and, through ``eval()``, each line's condition) with :func:`ast.parse` on every
request. On CPython 3.11 the ast module keeps the recursion depth of a tree conversion in one
interpreter-wide state (python/cpython#106905, fixed upstream by #113035, not in the 3.11.7 we
run): a thread switched out mid-conversion (a garbage collection running a finalizer releases
the GIL) while another thread parses at another stack depth raises ``SystemError: AST
constructor recursion depth mismatch``, which the decider turned into a spurious deny.

So every call into pycasbin (building an Enforcer, ``enforce``) holds one lock for the whole
process, :data:`authz.policy.PARSER_LOCK`, which every other parse of a condition (loading and
compiling a policy) also holds: during a policy swap the old and the new engine run side by
side, and the parser state they would race on is shared anyway. One Enforcer per thread would
not help (the parser state is not per Enforcer). Decisions through this engine are serialized;
it is the reference, and the compiled engine (the default, with no pycasbin on the request
path) is the fast one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import casbin
from casbin.model import Model
from casbin.persist.adapter import Adapter

from authz.engines.base import Context, Verdict
from authz.engines.index import ActionIndex, Indexed
from authz.errors import MissingContext
from authz.policy import PARSER_LOCK, Line, Policy

# Effects under which an Enforcer holding one line answers whether that line's matcher holds:
# an allow line makes allow-override say True, a deny line makes deny-override say False.
ALLOW_ONLY_EFFECT = "e = some(where (p.eft == allow))"
DENY_ONLY_EFFECT = "e = !some(where (p.eft == deny))"

# pycasbin logs every role link at INFO and every denied request at WARNING; a deny is a normal
# answer here, and the decider explains it.
logging.getLogger("casbin").setLevel(logging.ERROR)


class _LinesAdapter(Adapter):  # type: ignore[misc]
    """Feeds Line objects to a pycasbin model."""

    def __init__(self, lines: Iterable[Line]) -> None:
        self.lines = tuple(lines)

    def load_policy(self, model: Model) -> None:
        for line in self.lines:
            section = "p" if line.ptype == "p" else "g"
            model.add_policy(section, line.ptype, list(line.values))


def _enforcer(model_text: str, lines: Iterable[Line]) -> casbin.Enforcer:
    model = Model()
    model.load_model_from_text(model_text)
    enforcer = casbin.Enforcer(model, _LinesAdapter(lines))
    role_manager = enforcer.get_role_manager()

    def holds(roles: Iterable[str], role: str) -> bool:
        return any(role_manager.has_link(held, role) for held in roles)

    enforcer.add_function("holds", holds)
    return enforcer


@dataclass
class CasbinEngine(Indexed):
    """The reference engine: pycasbin's Enforcer on the policy (plus custom-role lines)."""

    policy: Policy
    _enforcer: casbin.Enforcer = field(init=False, repr=False)
    _single: dict[Line, casbin.Enforcer] = field(init=False, repr=False, default_factory=dict)  # PARSER_LOCK
    index: ActionIndex = field(init=False, repr=False)

    def __post_init__(self) -> None:
        with PARSER_LOCK:
            self._enforcer = _enforcer(self.policy.model_text, self.policy.lines)
        self.index = ActionIndex(self.policy)
        self._groupings = tuple(line for line in self.policy.lines if line.ptype != "p")

    def evaluate(self, sub: dict[str, Any], obj: dict[str, Any], act: str, ctx: Mapping[str, str]) -> Verdict:
        candidates = self.index.candidates(act)
        context = Context(ctx)
        with PARSER_LOCK:  # the whole decision: the Enforcer's answer and the lines that matched
            try:
                allowed = bool(self._enforcer.enforce(sub, obj, act, context))
            except MissingContext as missing:
                return Verdict(False, candidates=candidates, missing=missing.key)
            except Exception as exc:  # noqa: BLE001 - a broken line: name it, the decider denies
                line = self._raising(sub, obj, act, context)
                return Verdict(False, candidates=candidates, error=f"{type(exc).__name__}: {exc}", error_line=line)
            # Name the lines of the action whose effect is the outcome's and whose matcher holds.
            wanted = "allow" if allowed else "deny"
            matched = tuple(
                line for line in candidates if line.eft == wanted and self._matches(line, sub, obj, act, context)
            )
        if allowed:
            return Verdict(True, granted=matched, candidates=candidates)
        return Verdict(False, denied=matched, candidates=candidates)

    def _matches(self, line: Line, sub: dict[str, Any], obj: dict[str, Any], act: str, ctx: Context) -> bool:
        """Does ``line``'s matcher hold for the request? Asked of an Enforcer holding only it.

        Called with PARSER_LOCK held, which also guards the cache of single-line Enforcers."""
        enforcer = self._single_enforcer(line)
        try:
            answer = bool(enforcer.enforce(sub, obj, act, ctx))
        except Exception:  # noqa: BLE001 - a line that raises does not match (the scan reported it)
            return False
        return answer if line.eft == "allow" else not answer

    def _single_enforcer(self, line: Line) -> casbin.Enforcer:
        enforcer = self._single.get(line)
        if enforcer is None:
            text = _with_effect(self.policy.model_text, ALLOW_ONLY_EFFECT if line.eft == "allow" else DENY_ONLY_EFFECT)
            enforcer = self._single[line] = _enforcer(text, (*self._groupings, line))
        return enforcer

    def _raising(self, sub: dict[str, Any], obj: dict[str, Any], act: str, ctx: Context) -> Line | None:
        """The first line, in pycasbin's order, whose matcher raises for this request."""
        for line in self.policy.p_lines:
            try:
                self._single_enforcer(line).enforce(sub, obj, act, ctx)
            except Exception:  # noqa: BLE001 - looking for the one that does
                return line
        return None


def _with_effect(model_text: str, effect: str) -> str:
    """The model text with its [policy_effect] line replaced."""
    out: list[str] = []
    in_effect = False
    for raw in model_text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("["):
            in_effect = stripped == "[policy_effect]"
        elif in_effect and stripped.replace(" ", "").startswith("e="):
            out.append(effect)
            continue
        out.append(raw)
    return "\n".join(out) + "\n"
