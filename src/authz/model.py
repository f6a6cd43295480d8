"""model.conf: read as pycasbin reads it, checked for what both engines can evaluate faithfully.

:func:`parse_model` takes the values from pycasbin's own model loader (so the text both engines
see is the one pycasbin would evaluate: ``r.sub`` already escaped to ``r_sub``, comments gone)
and checks, naming ``model.conf:line [section]`` for every problem, all at once:

* every section and key is there: ``r``, ``p``, ``g``/``g2``/``g3``, ``e``, ``m`` (a truncated
  model is refused, never loaded);
* the request is ``r = sub, obj, act, ctx`` and a policy line ``p = rule, act, role, cond, eft``
  (what the resolver gives and what policy lines hold);
* the effect is one pycasbin supports and the compiled engine implements: allow-override,
  deny-override, allow-and-deny, priority (``subjectPriority`` orders lines by the role
  hierarchy at run time: refused);
* the matcher parses and uses only what both engines evaluate alike: ``&&``, ``||``, ``!``,
  ``==``, ``!=``, ``in``, ``not in``, string and boolean literals, ``r.<token>`` and
  ``r.sub/obj/ctx.<fact>``, ``p.<token>``, the role functions ``g``/``g2``/``g3`` and ``holds``
  with two arguments, and ``eval(p.<token>)``. A misspelt token (``r.actt``) is named with a
  did-you-mean. Which facts exist is :mod:`authz.lint`'s check (it knows the kinds).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from difflib import get_close_matches

from authz.errors import Problem
from authz.syntax import PARSER_LOCK, python_source

REQUEST = ("sub", "obj", "act", "ctx")
POLICY = ("rule", "act", "role", "cond", "eft")
GROUPINGS = ("g", "g2", "g3")
FACT_PARTS = ("sub", "obj", "ctx")  # request tokens that are mappings of facts
FUNCTIONS = (*GROUPINGS, "holds", "eval")
SECTIONS = {
    "r": "request_definition", "p": "policy_definition", "g": "role_definition", "e": "policy_effect",
    "m": "matchers",
}  # fmt: skip
# pycasbin's effect expressions (casbin.constant.constants), as its loader leaves them.
EFFECTS = {
    "some(where (p_eft == allow))": "allow_override",
    "!some(where (p_eft == deny))": "deny_override",
    "some(where (p_eft == allow)) && !some(where (p_eft == deny))": "allow_and_deny",
    "priority(p_eft) || deny": "priority",
}
NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Eq, ast.NotEq,
    ast.In, ast.NotIn, ast.Attribute, ast.Name, ast.Load, ast.Constant, ast.Call,
)  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    """A checked model: its effect, and its matcher as a Python expression over escaped names.

    In ``matcher`` a request token is the name ``r_<token>`` and a policy field ``p_<token>``,
    as pycasbin evaluates it; ``matcher_text`` is the same expression as it is shown to people.
    """

    source: str
    effect: str
    matcher: ast.Expression
    matcher_text: str
    matcher_line: int = 0


def shown(text: str) -> str:
    """An escaped expression as it is written in model.conf (``r_sub.roles`` -> ``r.sub.roles``)."""
    return re.sub(r"\b([rp])_(?=[a-z])", r"\1.", text)


def _locate(text: str) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Line numbers of sections and of ``key = ...`` lines, by section name."""
    sections: dict[str, int] = {}
    keys: dict[tuple[str, str], int] = {}
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            sections.setdefault(section, number)
        elif "=" in line and not line.startswith(("#", ";")):
            keys.setdefault((section, line.split("=", 1)[0].strip()), number)
    return sections, keys


def parse_model(text: str, source: str) -> tuple[ModelSpec | None, list[Problem]]:
    """The model in ``text`` and every problem found in it (the model is None when there is one)."""
    from casbin.model import Model

    sections, keys = _locate(text)
    problems: list[Problem] = []

    def where(sec: str, key: str | None = None) -> tuple[str, int]:
        name = SECTIONS[sec]
        return source, keys.get((name, key or sec), sections.get(name, 0))

    def problem(sec: str, message: str, key: str | None = None) -> None:
        file, line = where(sec, key)
        problems.append(Problem(file, line, f"[{SECTIONS[sec]}] {message}"))

    if not text.strip():
        return None, [Problem(source, 0, "the model is empty")]
    model = Model()
    try:
        with PARSER_LOCK:
            model.load_model_from_text(text)
    except Exception as exc:  # noqa: BLE001 - pycasbin raises bare exceptions for a model it cannot read
        return None, [Problem(source, 0, f"not a Casbin model pycasbin can read: {exc}")]
    present = set(model.keys())  # pycasbin's Model is not a mapping: it only has keys()
    for sec, key in (("r", "r"), ("p", "p"), *(("g", name) for name in GROUPINGS), ("e", "e"), ("m", "m")):
        if sec not in present or key not in model[sec]:
            problem(sec, f"{key} is missing (is the file cut short?); the model needs {_NEEDS[key]}", key)
    if problems:
        return None, problems
    request = tuple(token.removeprefix("r_") for token in model["r"]["r"].tokens)
    if request != REQUEST:
        problem("r", f"must be r = {', '.join(REQUEST)} (what the service passes), not r = {', '.join(request)}")
    policy = tuple(token.removeprefix("p_") for token in model["p"]["p"].tokens)
    if policy != POLICY:
        problem("p", f"must be p = {', '.join(POLICY)} (the fields of every policy line), not p = {', '.join(policy)}")
    for name in GROUPINGS:
        if len(model["g"][name].tokens) != 2:
            problem("g", f"{name} must be {name} = _, _ (no domains)", name)
    effect = EFFECTS.get(model["e"]["e"].value)
    if effect is None:
        supported = "; ".join(shown(form) for form in EFFECTS)
        effect_text = shown(model["e"]["e"].value)
        problem("e", f"e = {effect_text} is not an effect both engines evaluate: use one of {supported}")
    matcher_text = model["m"]["m"].value
    tree, errors = check_matcher(matcher_text)
    for message in errors:
        problem("m", message)
    if problems or tree is None or effect is None:
        return None, problems
    return ModelSpec(source, effect, tree, shown(matcher_text), where("m")[1]), []


_NEEDS = {
    "r": "r = sub, obj, act, ctx", "p": "p = rule, act, role, cond, eft", "g": "g = _, _", "g2": "g2 = _, _",
    "g3": "g3 = _, _", "e": "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
    "m": "m = <matcher>",
}  # fmt: skip


def check_matcher(text: str) -> tuple[ast.Expression | None, list[str]]:
    """The matcher (escaped, as pycasbin holds it) as a Python expression, and what is wrong with it."""
    try:
        with PARSER_LOCK:
            tree = ast.parse(python_source(text), mode="eval")
    except SyntaxError as exc:
        return None, [f"m = {shown(text)} does not parse: {exc.msg}"]
    errors = [f"{message} in m = {shown(text)}" for message in _walk(tree)]
    return (None if errors else tree), errors


def _walk(tree: ast.Expression) -> list[str]:
    errors: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, NODES):
            errors.append(f"{type(node).__name__} is not something both engines evaluate alike")
        elif isinstance(node, ast.Name):
            errors.extend(_name(node.id))
        elif isinstance(node, ast.Attribute):
            errors.extend(_attribute(node))
        elif isinstance(node, ast.Call):
            errors.extend(_call(node))
        elif isinstance(node, ast.Constant) and not isinstance(node.value, str | bool):
            errors.append(f"the literal {node.value!r} is neither a string nor True/False")
    return errors


def _name(name: str) -> list[str]:
    if name in FUNCTIONS:
        return []
    if name.startswith("r_"):
        token = name[2:]
        if token not in REQUEST:
            return [f"r.{token} is not a field of the request (r = {', '.join(REQUEST)}){_hint(token, REQUEST, 'r.')}"]
        return []
    if name.startswith("p_"):
        token = name[2:]
        if token not in POLICY:
            return [f"p.{token} is not a field of a policy line (p = {', '.join(POLICY)}){_hint(token, POLICY, 'p.')}"]
        return []
    return [f"{shown(name)} is not known: a matcher reads r.<field>, p.<field> and calls {', '.join(FUNCTIONS)}"]


def _attribute(node: ast.Attribute) -> list[str]:
    base = node.value
    if isinstance(base, ast.Name) and base.id in (f"r_{part}" for part in FACT_PARTS):
        return []  # r.sub.x, r.obj.x, r.ctx.x: facts, checked against the schema by lint
    return [f"{shown(ast.unparse(node))} reads a field of something that is not r.sub, r.obj or r.ctx"]


def _call(node: ast.Call) -> list[str]:
    name = node.func.id if isinstance(node.func, ast.Name) else ""
    if name not in FUNCTIONS:
        return [f"{shown(ast.unparse(node.func))}() is not a function of this model (only {', '.join(FUNCTIONS)})"]
    if node.keywords:
        return [f"{name}() takes no keyword arguments"]
    if name == "eval":
        arg = node.args[0] if len(node.args) == 1 else None
        if not (isinstance(arg, ast.Name) and arg.id.startswith("p_")):
            return ["eval() takes one policy field, as in eval(p.cond)"]
        return []
    if len(node.args) != 2:
        return [f"{name}() takes two arguments, not {len(node.args)}"]
    return []


def _hint(word: str, choices: tuple[str, ...], prefix: str) -> str:
    found = get_close_matches(word, choices, n=1)
    return f"; did you mean {prefix}{found[0]}?" if found else ""
