"""The matcher of model.conf, compiled for the lines of one policy: what the compiled engine runs.

pycasbin evaluates the matcher once per policy line, in order, as Python evaluates ``and``: left
to right, stopping at the first false conjunct. The compiled plan gives every line the same
result, without evaluating what cannot change it:

* The matcher's top-level conjuncts are split at the first one that could raise or could give
  something other than True/False (one reading ``r.ctx``, calling ``eval()``, ...). Before it,
  every conjunct is *pure*: it never raises and is True or False. Pure conjuncts can be decided
  in any order, and one that is False makes the line's result False without anything else
  being evaluated, exactly as in pycasbin. So they become:
  - request filters (no ``p.`` field): decided once per request (``g2(r.act, r.obj.kind)``);
  - an index (``r.<x> == p.<field>``): only the lines whose field equals the request's value;
  - role filters (``holds(r.sub.roles, p.role)``, ``g(r.x, p.y)``): the set of names that
    hold each line's role is computed once, so the test is one set intersection;
  - line constants (no ``r.``): decided when compiling, per line.
* Everything else (the rest of the pure prefix and every conjunct after it) stays in order as
  the line's *residual*, compiled per line into a Python function with the line's fields as
  constants and ``eval(p.cond)`` replaced by the line's condition, as pycasbin substitutes it.
  Its value is judged as pycasbin judges a matcher's result (True/False, a float; anything else
  is an error).

Only the restricted syntax that :mod:`authz.model` and :mod:`authz.syntax` accept reaches here.
The role functions follow pycasbin's role manager: a name holds itself and every role it
reaches through lines of that grouping within its 10 levels.
"""

from __future__ import annotations

import ast
import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from authz import facts
from authz.errors import PolicyError
from authz.model import GROUPINGS, ModelSpec
from authz.policy import Line
from authz.syntax import PARSER_LOCK, python_source

Evaluator = Callable[[Any, Any, Any, Any], Any]  # (sub, obj, act, ctx) -> value
MAX_LEVELS = 10  # pycasbin's default max_hierarchy_level


class MatcherResultError(TypeError):
    """The matcher gave a line something other than True/False or a float (pycasbin refuses it too)."""


class RoleGraph:
    """The links of one grouping (g, g2 or g3), answered as pycasbin's role manager answers has_link."""

    def __init__(self, lines: Iterable[Line]) -> None:
        self.parents: dict[str, set[str]] = defaultdict(set)
        for line in lines:
            self.parents[line.values[0]].add(line.values[1])
        self._reach: dict[str, frozenset[str]] = {}
        self._holders: dict[str, frozenset[str]] = {}

    def reach(self, name: str) -> frozenset[str]:
        """``name`` and every role it reaches within pycasbin's levels."""
        found = self._reach.get(name)
        if found is None:
            seen = {name}
            frontier = {name}
            for _ in range(MAX_LEVELS - 1):
                frontier = {parent for role in frontier for parent in self.parents.get(role, ())} - seen
                if not frontier:
                    break
                seen |= frontier
            found = self._reach[name] = frozenset(seen)
        return found

    def has_link(self, name: Any, role: Any) -> bool:
        return bool(name == role or role in self.reach(name))

    def holders(self, role: str) -> frozenset[str]:
        """Every name that holds ``role`` (``role`` itself included)."""
        found = self._holders.get(role)
        if found is None:
            found = self._holders[role] = frozenset(
                {role, *(name for name in self.parents if role in self.reach(name))}
            )
        return found

    def holds(self, names: Iterable[Any], role: Any) -> bool:
        return any(self.has_link(name, role) for name in names)


@dataclass(frozen=True, slots=True)
class RoleCheck:
    """A role filter of one line: the request value (slot) must be, or include, a holder."""

    slot: int
    holders: frozenset[str]
    many: bool  # holds(): the value is a collection of names; g(): one name

    def passes(self, values: list[Any]) -> bool:
        value = values[self.slot]
        return not self.holders.isdisjoint(value) if self.many else value in self.holders


@dataclass(frozen=True, slots=True)
class CompiledLine:
    line: Line
    roles: tuple[RoleCheck, ...]
    residual: Evaluator | None  # None: nothing left to evaluate, the line matches


@dataclass(frozen=True)
class Plan:
    """The compiled matcher for one policy's lines."""

    request_filters: tuple[Evaluator, ...]
    slots: tuple[Evaluator, ...]  # request values the role checks and the index read
    index_slot: int  # -1: no index
    index: dict[str, tuple[CompiledLine, ...]]
    lines: tuple[CompiledLine, ...]  # every line that can match, in policy order (without an index)

    def candidates(self, sub: Any, obj: Any, act: Any, ctx: Any) -> tuple[tuple[CompiledLine, ...], list[Any]]:
        """The lines the pure conjuncts leave for this request, in policy order, and the slot values."""
        for test in self.request_filters:
            if not test(sub, obj, act, ctx):
                return (), []
        values = [slot(sub, obj, act, ctx) for slot in self.slots]
        if self.index_slot >= 0:
            key = values[self.index_slot]
            return (self.index.get(key, ()) if isinstance(key, str) else ()), values
        return self.lines, values


def judge(value: Any) -> bool:
    """A matcher's value as pycasbin judges it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value != 0
    raise MatcherResultError(f"the matcher gave {type(value).__name__} {value!r}, not True/False")


# ---- building the plan -------------------------------------------------------------------------


class _Types:
    """What a request expression is: "str", "bool", "set", or "" (not known to be one of those)."""

    @staticmethod
    def of(node: ast.AST) -> str:
        if isinstance(node, ast.Constant):
            return "str" if isinstance(node.value, str) else "bool" if isinstance(node.value, bool) else ""
        if isinstance(node, ast.Name):
            return "str" if node.id in ("r_act",) or node.id.startswith("p_") else ""
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "r_sub":
                return facts.SUBJECT.get(node.attr, "")
            if node.value.id == "r_obj":
                types = {kind_facts.get(node.attr, "") for kind_facts in facts.RESOURCE.values()}
                return types.pop() if len(types) == 1 else ""
        return ""


def _refs(node: ast.AST) -> tuple[bool, bool]:
    """(reads the request, reads the line) of an expression."""
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    return any(name.startswith("r_") for name in names), any(name.startswith("p_") for name in names)


def _simple(node: ast.AST) -> bool:
    """A name, a fact of the subject or resource, or a literal: evaluating it never raises."""
    if isinstance(node, ast.Constant | ast.Name):
        return not (isinstance(node, ast.Name) and node.id in ("r_ctx", "eval"))
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("r_sub", "r_obj")


def _pure(node: ast.AST) -> bool:
    """Never raises and is always True or False."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _pure(node.operand)
    if isinstance(node, ast.Compare):
        return (
            len(node.ops) == 1
            and isinstance(node.ops[0], ast.Eq | ast.NotEq)
            and _simple(node.left)
            and _simple(node.comparators[0])
        )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 2:
        first, second = node.args
        if not (_simple(first) and _simple(second) and _Types.of(second) == "str"):
            return False
        if node.func.id in GROUPINGS:
            return _Types.of(first) == "str"
        return node.func.id == "holds" and _Types.of(first) == "set"
    return False


def _conjuncts(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return [part for value in node.values for part in _conjuncts(value)]
    return [node]


class _Translate(ast.NodeTransformer):
    """A matcher or condition expression as Python over (sub, obj, act, ctx) and one line's fields."""

    def __init__(self, line: Line | None) -> None:
        self.line = line

    def _field(self, name: str) -> str:
        if self.line is None:
            raise PolicyError(f"p.{name} read where no line is known")
        from authz.model import POLICY

        return self.line.values[POLICY.index(name)]

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id.startswith("r_"):
            return ast.Name(id=node.id[2:], ctx=ast.Load())
        if node.id.startswith("p_"):
            return ast.Constant(self._field(node.id[2:]))
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        base = node.value
        if isinstance(base, ast.Name) and base.id.startswith("r_"):  # escaped matcher: r_sub.x
            part = base.id[2:]
        elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "r":
            part = base.attr  # a line's condition: r.sub.x
        else:
            raise PolicyError(f"cannot compile {ast.unparse(node)}")
        return ast.Subscript(value=ast.Name(id=part, ctx=ast.Load()), slice=ast.Constant(node.attr), ctx=ast.Load())

    def visit_Call(self, node: ast.Call) -> ast.AST:
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name == "eval":
            arg = node.args[0]
            assert isinstance(arg, ast.Name)
            with PARSER_LOCK:
                condition = ast.parse(python_source(self._field(arg.id[2:])), mode="eval").body
            translated: ast.AST = _Translate(self.line).visit(condition)
            return translated
        node.args = [self.visit(arg) for arg in node.args]
        if name in GROUPINGS:
            node.func = ast.Name(id=f"_{name}", ctx=ast.Load())
        return node


def _function(body: ast.AST, line: Line | None, functions: dict[str, Any], what: str) -> Evaluator:
    expression = _Translate(line).visit(copy.deepcopy(body))  # the transformer rewrites the tree it visits
    lam = ast.Expression(
        ast.Lambda(
            args=ast.arguments(
                posonlyargs=[], args=[ast.arg(n) for n in ("sub", "obj", "act", "ctx")], kwonlyargs=[],
                kw_defaults=[], defaults=[],
            ),
            body=expression,
        )
    )  # fmt: skip
    ast.fix_missing_locations(lam)
    with PARSER_LOCK:
        code = compile(lam, f"<policy: {what}>", "eval")
    evaluator: Evaluator = eval(code, {"__builtins__": {}, **functions})  # noqa: S307 - checked syntax only
    return evaluator


def compile_plan(model: ModelSpec, lines: Iterable[Line], graphs: dict[str, RoleGraph]) -> Plan:
    """The plan for ``lines`` (the p lines, in policy order) under ``model``'s matcher."""
    functions: dict[str, Any] = {f"_{name}": graph.has_link for name, graph in graphs.items()}
    functions["holds"] = graphs["g"].holds
    conjuncts = _conjuncts(model.matcher.body)
    pure = 0
    while pure < len(conjuncts) and _pure(conjuncts[pure]):
        pure += 1
    request_filters: list[Evaluator] = []
    slots: list[Evaluator] = []
    index: tuple[int, str] | None = None
    role_filters: list[tuple[int, str, str, bool]] = []  # (slot, grouping, p field, many)
    constants: list[ast.expr] = []
    residual: list[ast.expr] = []
    for position, node in enumerate(conjuncts):
        if position >= pure:
            residual.append(node)
            continue
        reads_request, reads_line = _refs(node)
        if not reads_line:
            request_filters.append(_function(node, None, functions, model.matcher_text))
        elif not reads_request:
            constants.append(node)
        elif index is None and (found := _index_of(node)) is not None:
            slots.append(_function(found[0], None, functions, model.matcher_text))
            index = (len(slots) - 1, found[1])
        elif (found_role := _role_of(node)) is not None:
            value, grouping, field, many = found_role
            slots.append(_function(value, None, functions, model.matcher_text))
            role_filters.append((len(slots) - 1, grouping, field, many))
        else:
            residual.append(node)
    body = ast.BoolOp(op=ast.And(), values=residual) if len(residual) > 1 else (residual[0] if residual else None)
    from authz.model import POLICY

    # Lines whose residual reads the same fields share one function (most differ only in role).
    fields = sorted(_fields(body)) if body is not None else []
    cache: dict[tuple[str, ...], Evaluator] = {}
    compiled: list[CompiledLine] = []
    for line in lines:
        if constants and not all(_function(node, line, functions, model.matcher_text)(None, None, None, None)
                                 for node in constants):  # fmt: skip
            continue
        checks = tuple(
            RoleCheck(slot, graphs[grouping].holders(line.values[POLICY.index(field)]) if grouping != "holds"
                      else graphs["g"].holders(line.values[POLICY.index(field)]), many)
            for slot, grouping, field, many in role_filters
        )  # fmt: skip
        function = None
        if body is not None:
            key = tuple(line.values[POLICY.index(field)] for field in fields)
            function = cache.get(key)
            if function is None:
                function = cache[key] = _function(body, line, functions, f"{line.source}: {line.cond}")
        compiled.append(CompiledLine(line, checks, function))
    by_key: dict[str, list[CompiledLine]] = defaultdict(list)
    if index is not None:
        for item in compiled:
            by_key[item.line.values[POLICY.index(index[1])]].append(item)
    return Plan(
        tuple(request_filters), tuple(slots), index[0] if index else -1,
        {key: tuple(found) for key, found in by_key.items()}, tuple(compiled),
    )  # fmt: skip


def _fields(node: ast.AST) -> set[str]:
    """The policy fields an expression reads (``p.x``, and ``eval(p.x)``'s field)."""
    return {n.id[2:] for n in ast.walk(node) if isinstance(n, ast.Name) and n.id.startswith("p_")}


def _index_of(node: ast.AST) -> tuple[ast.AST, str] | None:
    """(request side, policy field) of ``r.<x> == p.<field>`` (either way round)."""
    if not (isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.Eq)):
        return None
    left, right = node.left, node.comparators[0]
    for value, field in ((left, right), (right, left)):
        if isinstance(field, ast.Name) and field.id.startswith("p_") and _refs(value) == (True, False):
            return value, field.id[2:]
    return None


def _role_of(node: ast.AST) -> tuple[ast.AST, str, str, bool] | None:
    """(request value, grouping or "holds", policy field, many) of ``holds(r.x, p.y)`` / ``g(r.x, p.y)``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    value, field = node.args
    if not (isinstance(field, ast.Name) and field.id.startswith("p_") and _refs(value) == (True, False)):
        return None
    return value, node.func.id, field.id[2:], node.func.id == "holds"
