"""The compiled engine: pycasbin's semantics for our model, as a few lookups and Python closures.

At build time the policy (with custom-role lines) becomes:

* an index action -> its lines, in policy order (pycasbin scans every line; lines of other
  actions can never match, because the matcher starts with ``r.act == p.act``);
* for each line, the set of role tokens that hold its role (the closure of the ``g`` lines,
  computed once), so ``holds(r.sub.roles, p.role)`` is one set intersection;
* for each condition, a Python function compiled from the condition's syntax tree after
  translating Casbin's operators. Only the restricted syntax that :mod:`authz.policy` accepts
  can reach the compiler (names r, holds; attribute reads of r.sub/r.obj/r.ctx; comparisons,
  boolean operators, literals), so nothing but those expressions is ever executed.

Evaluation follows pycasbin's enforce with the effect ``some(allow) && !some(deny)``: lines are
evaluated in order, a matching deny line ends the evaluation, a condition reading a context value
that was not given ends it with a deny (G7).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from authz.engines.base import Context, Verdict
from authz.engines.index import ActionIndex, Indexed
from authz.errors import MissingContext, PolicyError
from authz.policy import PARSER_LOCK, Line, Policy, check_condition, python_source

Condition = Callable[[dict[str, Any], dict[str, Any], Context], bool]
PARTS = {"sub": "sub", "obj": "obj", "ctx": "ctx"}


class _Translate(ast.NodeTransformer):
    """r.sub.x -> sub["x"], r.obj.x -> obj["x"], r.ctx.x -> ctx["x"]; holds(a, b) -> holds(a, b)."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        base = node.value
        if (
            isinstance(base, ast.Attribute)
            and isinstance(base.value, ast.Name)
            and base.value.id == "r"
            and base.attr in PARTS
        ):
            return ast.Subscript(
                value=ast.Name(id=PARTS[base.attr], ctx=ast.Load()), slice=ast.Constant(node.attr), ctx=ast.Load()
            )
        raise PolicyError(f"cannot compile attribute access {ast.unparse(node)}")


def compile_condition(cond: str, holds: Callable[[Iterable[str], str], bool]) -> Condition:
    """A function (sub, obj, ctx) -> bool for a condition of the restricted syntax."""
    try:
        check_condition(cond)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    with PARSER_LOCK:  # ast is not safe to use from two threads on CPython 3.11 (authz/engines/casbin.py)
        body = _Translate().visit(ast.parse(python_source(cond), mode="eval").body)
    function = ast.Expression(
        ast.Lambda(
            args=ast.arguments(
                posonlyargs=[],
                args=[ast.arg("sub"), ast.arg("obj"), ast.arg("ctx")],
                kwonlyargs=[],
                kw_defaults=[],
                defaults=[],
            ),
            body=body,
        )
    )
    ast.fix_missing_locations(function)
    with PARSER_LOCK:
        code = compile(function, f"<policy: {cond}>", "eval")
    compiled: Condition = eval(code, {"__builtins__": {}, "holds": holds})  # noqa: S307 - checked AST only
    return compiled


@dataclass(frozen=True)
class CompiledLine:
    line: Line
    holders: frozenset[str]  # role tokens that hold this line's role
    test: Condition
    deny: bool


class CompiledEngine(Indexed):
    """Same answers as CasbinEngine (checked by a differential test), far faster."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.index = ActionIndex(policy)
        closure = self.index.closure
        holders: dict[str, set[str]] = defaultdict(set)
        for token, held in closure.items():
            for role in held:
                holders[role].add(token)

        def holds(roles: Iterable[str], role: str) -> bool:
            wanted = holders.get(role)
            return any(r == role or (wanted is not None and r in wanted) for r in roles)

        self._holds = holds
        index: dict[str, list[CompiledLine]] = defaultdict(list)
        conditions: dict[str, Condition] = {}
        for line in policy.p_lines:
            test = conditions.get(line.cond)
            if test is None:
                test = conditions[line.cond] = compile_condition(line.cond, holds)
            index[line.act].append(
                CompiledLine(line, frozenset(holders.get(line.role, ())) | {line.role}, test, line.eft == "deny")
            )
        self._index = {act: tuple(lines) for act, lines in index.items()}
        self._candidates = {act: tuple(c.line for c in lines) for act, lines in self._index.items()}

    def evaluate(self, sub: dict[str, Any], obj: dict[str, Any], act: str, ctx: Mapping[str, str]) -> Verdict:
        candidates = self._candidates.get(act, ())
        if not self.applies(act, obj["kind"]):
            return Verdict(False, candidates=candidates)
        context = ctx if isinstance(ctx, Context) else Context(ctx)
        roles = sub["roles"]
        granted: list[Line] = []
        denied_at = -1
        lines = self._index.get(act, ())
        for position, compiled in enumerate(lines):
            if compiled.holders.isdisjoint(roles):
                continue
            try:
                matched = compiled.test(sub, obj, context)
            except MissingContext as missing:
                return Verdict(False, candidates=candidates, missing=missing.key)
            if matched:
                if compiled.deny:
                    denied_at = position
                    break
                granted.append(compiled.line)
        if denied_at < 0:
            if granted:
                return Verdict(True, granted=tuple(granted), candidates=candidates)
            return Verdict(False, candidates=candidates)
        denied = [lines[denied_at].line]
        for compiled in lines[denied_at + 1 :]:
            if compiled.deny and not compiled.holders.isdisjoint(roles) and self._safe(compiled, sub, obj, context):
                denied.append(compiled.line)
        return Verdict(False, denied=tuple(denied), candidates=candidates)

    @staticmethod
    def _safe(compiled: CompiledLine, sub: dict[str, Any], obj: dict[str, Any], ctx: Context) -> bool:
        try:
            return bool(compiled.test(sub, obj, ctx))
        except MissingContext:
            return False
