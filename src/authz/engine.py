"""Policy evaluation behind a small interface; pycasbin is the reference implementation.

:class:`Engine` is what the decider needs: whether an action applies to a resource kind, what
it requires first, and a :class:`Verdict` for facts. :class:`CasbinEngine` asks pycasbin's
Enforcer for the decision (the whole policy, deny-overrides effect) and, to name every line that
matched, asks one single-line Enforcer per candidate line (built lazily, cached). Engines are
immutable once built; a policy or custom-role change builds a new one.

Threads: gRPC handler threads call :meth:`CasbinEngine.evaluate` concurrently, and pycasbin is not
thread-safe. Its Enforcer mutates shared state on every call (the function map), and it parses
the matcher (and, through ``eval()``, each line's condition) with :func:`ast.parse` on every
request. On CPython 3.11 the ast module keeps the recursion depth of a tree conversion in one
interpreter-wide state (python/cpython#106905, fixed upstream by #113035, not in the 3.11.7 we
run): a thread switched out mid-conversion (a garbage collection running a finalizer releases
the GIL) while another thread parses at another stack depth raises ``SystemError: AST
constructor recursion depth mismatch``, which the decider turned into a spurious deny.

So every call into pycasbin (building an Enforcer, ``enforce``) holds one lock,
:data:`PYCASBIN_LOCK`, for the whole process rather than one per engine: during a policy swap
the old and the new engine run side by side, and the parser state they would race on is shared
anyway. We chose it over one Enforcer per thread, which would not help (the parser state is not
per Enforcer) and would multiply the lazily built single-line Enforcers by the thread count.
Decisions through this engine are serialized; it is the reference, and the compiled engine (the
default, with no pycasbin on the request path) is the fast one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import casbin
from casbin.model import Model
from casbin.persist.adapter import Adapter

from authz.errors import MissingContext
from authz.policy import Line, Policy

ALLOW_ONLY_EFFECT = "e = some(where (p.eft == allow))"

# Held for every call into pycasbin, in every CasbinEngine of the process (see the module docstring).
PYCASBIN_LOCK = threading.Lock()

# pycasbin logs every role link at INFO and every denied request at WARNING; a deny is a normal
# answer here, and the decider explains it.
logging.getLogger("casbin").setLevel(logging.ERROR)


class Context(dict[str, str]):
    """The caller's context values; reading one that was not given raises MissingContext (G7)."""

    def __missing__(self, key: str) -> str:
        raise MissingContext(key)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    granted: tuple[Line, ...] = ()  # allow lines that matched
    denied: tuple[Line, ...] = ()  # deny lines that matched
    candidates: tuple[Line, ...] = ()  # every line of the action, in policy order
    missing: str = ""  # a context key a condition read that the caller did not give


class Engine(Protocol):
    policy: Policy

    def applies(self, action: str, kind: str) -> bool: ...

    def applies_to(self, action: str) -> tuple[str, ...]: ...

    def requires(self, action: str) -> tuple[str, ...]: ...

    def candidates(self, action: str) -> tuple[Line, ...]: ...

    def evaluate(self, sub: dict[str, Any], obj: dict[str, Any], act: str, ctx: Mapping[str, str]) -> Verdict: ...


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
class CasbinEngine:
    """The reference engine: pycasbin's Enforcer on the policy (plus custom-role lines)."""

    policy: Policy
    _enforcer: casbin.Enforcer = field(init=False, repr=False)
    _by_action: dict[str, tuple[Line, ...]] = field(init=False, repr=False)
    _single: dict[Line, casbin.Enforcer] = field(init=False, repr=False, default_factory=dict)  # PYCASBIN_LOCK
    _applies: dict[str, tuple[str, ...]] = field(init=False, repr=False)
    _requires: dict[str, tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        with PYCASBIN_LOCK:
            self._enforcer = _enforcer(self.policy.model_text, self.policy.lines)
        by_action: dict[str, list[Line]] = {}
        for line in self.policy.p_lines:
            by_action.setdefault(line.act, []).append(line)
        self._by_action = {act: tuple(lines) for act, lines in by_action.items()}
        applies: dict[str, list[str]] = {}
        for line in self.policy.grouping("g2"):
            applies.setdefault(line.values[0], []).append(line.values[1])
        self._applies = {act: tuple(kinds) for act, kinds in applies.items()}
        requires: dict[str, list[str]] = {}
        for line in self.policy.grouping("g3"):
            requires.setdefault(line.values[0], []).append(line.values[1])
        self._requires = {act: tuple(acts) for act, acts in requires.items()}
        self._groupings = tuple(line for line in self.policy.lines if line.ptype != "p")

    def applies(self, action: str, kind: str) -> bool:
        return kind in self._applies.get(action, ())

    def applies_to(self, action: str) -> tuple[str, ...]:
        return self._applies.get(action, ())

    def requires(self, action: str) -> tuple[str, ...]:
        return self._requires.get(action, ())

    def candidates(self, action: str) -> tuple[Line, ...]:
        return self._by_action.get(action, ())

    def evaluate(self, sub: dict[str, Any], obj: dict[str, Any], act: str, ctx: Mapping[str, str]) -> Verdict:
        candidates = self._by_action.get(act, ())
        context = Context(ctx)
        with PYCASBIN_LOCK:  # the whole decision: the Enforcer's answer and the lines that matched
            try:
                allowed = bool(self._enforcer.enforce(sub, obj, act, context))
            except MissingContext as missing:
                return Verdict(False, candidates=candidates, missing=missing.key)
            # Allowed: no deny line matched (deny overrides), so name the allow lines that did.
            # Denied: name the deny lines that matched, if any.
            wanted = "allow" if allowed else "deny"
            matched = tuple(
                line for line in candidates if line.eft == wanted and self._matches(line, sub, obj, act, context)
            )
        if allowed:
            return Verdict(True, granted=matched, candidates=candidates)
        return Verdict(False, denied=matched, candidates=candidates)

    def _matches(self, line: Line, sub: dict[str, Any], obj: dict[str, Any], act: str, ctx: Context) -> bool:
        """Does ``line``'s matcher hold for the request? Asked of an Enforcer holding only it.

        Called with PYCASBIN_LOCK held, which also guards the cache of single-line Enforcers."""
        enforcer = self._single.get(line)
        if enforcer is None:
            as_allow = Line("p", (*line.values[:4], "allow"), line.source)
            text = _with_effect(self.policy.model_text, ALLOW_ONLY_EFFECT)
            enforcer = self._single[line] = _enforcer(text, (*self._groupings, as_allow))
        try:
            return bool(enforcer.enforce(sub, obj, act, ctx))
        except MissingContext:
            return False


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


TEAM_CHAIN = ("team:admin", "team:member", "team:view_only")


def custom_role_lines(policy: Policy, roles: Iterable[dict[str, Any]]) -> list[Line]:
    """Policy lines for the org's custom roles (section 2).

    A custom role holds its base role; an extra permission grants its action as the admin
    column does (a copy, for the role, of every team-role line of that action); an org viewer's
    seat holds only view_only (G8), without extras.
    """
    lines: list[Line] = []
    by_action: dict[str, list[Line]] = {}
    for line in policy.p_lines:
        if line.eft == "allow" and line.role in TEAM_CHAIN:
            by_action.setdefault(line.act, []).append(line)
    for role in sorted(roles, key=lambda r: r["id"]):
        token = f"team:custom:{role['id']}"
        where = f"store: custom role {role['id']} (org {role['org']})"
        lines.append(Line("g", (token, f"team:{role['base']}"), where))
        lines.append(Line("g", (f"{token}@viewer", "team:view_only"), f"{where}, G8"))
        seen: set[tuple[str, ...]] = set()
        for action in role["permissions"]:
            for template in by_action.get(action, ()):
                values = (template.rule, action, token, template.cond, "allow")
                if values not in seen:
                    seen.add(values)
                    lines.append(Line("p", values, f"{where}, as {template.source}"))
    return lines
