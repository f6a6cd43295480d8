"""The syntax of policy text, shared by the loader, the model checker and both engines.

* Casbin's operators rewritten to Python exactly as pycasbin rewrites them (:func:`python_source`);
* a policy line split as Casbin splits it (:func:`split_line`);
* the restricted syntax of a line's condition (:func:`check_condition`): the request's facts,
  literals, comparisons, boolean operators and ``holds()``, nothing else, so only those
  expressions ever reach an evaluator;
* :data:`PARSER_LOCK`: held by every use of Python's ast module and of pycasbin in this process.
  On CPython 3.11 the parser's recursion-depth bookkeeping is shared by all threads
  (python/cpython#106905; authz/engines/casbin.py says more), so a policy loaded by the reloader
  thread while pycasbin parses on a decision thread could raise SystemError.
"""

from __future__ import annotations

import ast
import re
import threading

RULE_ID = re.compile(r"[A-Z]+(-[A-Z]+)?[0-9]+[a-z]?\Z")
ROLE = re.compile(r"[a-z_]+(:[a-z_]+)?(:[A-Za-z0-9._@+\-]+)?(@viewer)?\Z")
PARSER_LOCK = threading.RLock()
# Names a condition may use: the request's parts and the functions the engine registers.
CONDITION_NAMES = {"r", "holds"}
DICT_METHODS = frozenset(name for name in dir(dict) if not name.startswith("_"))
CONDITION_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Eq, ast.NotEq,
    ast.In, ast.NotIn, ast.Attribute, ast.Name, ast.Load, ast.Constant, ast.Tuple, ast.List, ast.Call,
)  # fmt: skip


def python_source(cond: str) -> str:
    """Casbin's ``&&``, ``||`` and ``!`` rewritten to Python, as pycasbin does before evaluating."""
    return re.sub(r"!(?!=)", " not ", cond.replace("&&", " and ").replace("||", " or ")).strip()


def split_line(text: str) -> list[str]:
    """Split a policy line as Casbin does: on commas outside (), [] nesting."""
    tokens: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            tokens.append(text[start:index].strip())
            start = index + 1
    tokens.append(text[start:].strip())
    return tokens


def check_condition(cond: str) -> None:
    """Raise ValueError unless ``cond`` is a condition of the restricted syntax."""
    try:
        with PARSER_LOCK:
            tree = ast.parse(python_source(cond), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"condition does not parse: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, CONDITION_NODES):
            raise ValueError(f"condition uses {type(node).__name__}, which policies may not use")
        if isinstance(node, ast.Name) and node.id in ("true", "false"):
            raise ValueError(f"write {node.id.capitalize()}, not {node.id}")
        if isinstance(node, ast.Name) and node.id not in CONDITION_NAMES:
            raise ValueError(f"condition names {node.id!r}; only r.sub, r.obj, r.ctx and holds() are known")
        if isinstance(node, ast.Attribute) and node.attr in DICT_METHODS:
            raise ValueError(f"condition reads .{node.attr}, which is a method of the fact mapping, not a fact")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ValueError(f"condition reads .{node.attr}; fields starting with _ are not facts")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id == "holds"):
            raise ValueError("condition calls a function other than holds()")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "r"
            and node.attr not in ("sub", "obj", "ctx")
        ):
            raise ValueError(f"condition reads r.{node.attr}; a request has r.sub, r.obj and r.ctx")


def condition_facts(cond: str) -> list[tuple[str, str]]:
    """The facts a condition of the restricted syntax reads: (part, name) for each r.<part>.<name>."""
    with PARSER_LOCK:
        tree = ast.parse(python_source(cond), mode="eval")
    return [
        (node.value.attr, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "r"
    ]
