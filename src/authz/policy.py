"""Policy files: load `policies/` (model.conf + *.csv), validate every line, remember file:line.

A :class:`Policy` is immutable; a reload builds a new one and the server swaps one reference.
Validation is what `authz policy lint` runs: the model must parse and be the shape the engine
expects, every line must parse as Casbin does, conditions may use only the request's fields,
literals and the model's functions, and rule ids, roles, effects and actions must make sense.
"""

from __future__ import annotations

import ast
import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from casbin.model import Model

from authz.errors import PolicyError
from store.kinds import ACTION

MODEL_FILE = "model.conf"
RULE_ID = re.compile(r"[A-Z]+(-[A-Z]+)?[0-9]+[a-z]?\Z")
ROLE = re.compile(r"[a-z_]+(:[a-z_]+)?(:[A-Za-z0-9._@+\-]+)?(@viewer)?\Z")
EXPECTED_REQUEST = ["sub", "obj", "act", "ctx"]
EXPECTED_POLICY = ["rule", "act", "role", "cond", "eft"]
GROUPINGS = ("g", "g2", "g3")
# Held by every use of Python's ast module and of pycasbin in this process: on CPython 3.11 the
# parser's recursion-depth bookkeeping is shared by all threads (authz/engines/casbin.py says more).
PARSER_LOCK = threading.RLock()
# Names a condition may use: the request's parts and the functions the engine registers.
CONDITION_NAMES = {"r", "holds"}
DICT_METHODS = frozenset(name for name in dir(dict) if not name.startswith("_"))
CONDITION_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Eq, ast.NotEq,
    ast.In, ast.NotIn, ast.Attribute, ast.Name, ast.Load, ast.Constant, ast.Tuple, ast.List, ast.Call,
)  # fmt: skip


@dataclass(frozen=True)
class Line:
    """One policy line with where it came from."""

    ptype: str
    values: tuple[str, ...]
    source: str  # "policies/reports.csv:12", or "store: custom role ml-lead (from ...)"

    @property
    def rule(self) -> str:
        return self.values[0]

    @property
    def act(self) -> str:
        return self.values[1]

    @property
    def role(self) -> str:
        return self.values[2]

    @property
    def cond(self) -> str:
        return self.values[3]

    @property
    def eft(self) -> str:
        return self.values[4]


@dataclass(frozen=True)
class Policy:
    """A validated policy: the model text, its lines in load order, and a version hash."""

    model_text: str
    lines: tuple[Line, ...]
    version: str
    directory: str
    extra: tuple[Line, ...] = field(default=())

    @cached_property
    def p_lines(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.ptype == "p")

    def grouping(self, ptype: str) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.ptype == ptype)

    @cached_property
    def actions(self) -> frozenset[str]:
        return frozenset(line.values[0] for line in self.grouping("g2"))

    @cached_property
    def kinds(self) -> frozenset[str]:
        return frozenset(line.values[1] for line in self.grouping("g2"))

    def with_lines(self, extra: Iterable[Line]) -> Policy:
        """This policy plus generated lines (custom roles); same version, file lines unchanged."""
        extra = tuple(extra)
        return Policy(self.model_text, self.lines + extra, self.version, self.directory, extra)


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


def python_source(cond: str) -> str:
    """A condition in Python syntax: Casbin's ``&&``, ``||`` and ``!`` rewritten as pycasbin does."""
    return re.sub(r"!(?!=)", " not ", cond.replace("&&", " and ").replace("||", " or ")).strip()


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


def _check_model(text: str, where: str) -> None:
    model = Model()
    try:
        model.load_model_from_text(text)
    except Exception as exc:  # noqa: BLE001 - pycasbin raises bare exceptions for a bad model
        raise PolicyError(f"{where}: not a valid Casbin model: {exc}") from None
    sections = set(model.keys())  # pycasbin's Model is not a mapping: it only has keys()
    request = model["r"]["r"].tokens if "r" in sections else []
    policy = model["p"]["p"].tokens if "p" in sections else []
    if [t.removeprefix("r_") for t in request] != EXPECTED_REQUEST:
        raise PolicyError(f"{where}: request_definition must be r = {', '.join(EXPECTED_REQUEST)}")
    if [t.removeprefix("p_") for t in policy] != EXPECTED_POLICY:
        raise PolicyError(f"{where}: policy_definition must be p = {', '.join(EXPECTED_POLICY)}")
    for name in GROUPINGS:
        if "g" not in sections or name not in model["g"]:
            raise PolicyError(f"{where}: role_definition must define {', '.join(GROUPINGS)}")


def parse_line(text: str, source: str) -> Line:
    """One non-comment line of a policy file, checked; PolicyError names ``source``."""
    values = split_line(text)
    ptype = values[0]
    rest = tuple(values[1:])
    if ptype == "p":
        if len(rest) != len(EXPECTED_POLICY):
            raise PolicyError(
                f"{source}: a p line has {len(EXPECTED_POLICY)} fields ({', '.join(EXPECTED_POLICY)}), "
                f"this one has {len(rest)}"
            )
        rule, act, role, cond, eft = rest
        if not RULE_ID.match(rule):
            raise PolicyError(f"{source}: {rule!r} is not a rule id like RP3, T3a or G-R6")
        if not ACTION.match(act):
            raise PolicyError(f"{source}: {act!r} is not an action like report.edit")
        if not ROLE.match(role):
            raise PolicyError(f"{source}: {role!r} is not a role token like team:member")
        if eft not in ("allow", "deny"):
            raise PolicyError(f"{source}: the effect must be allow or deny, not {eft!r}")
        try:
            check_condition(cond)
        except ValueError as exc:
            raise PolicyError(f"{source}: {exc}") from None
    elif ptype in GROUPINGS:
        if len(rest) != 2 or not all(rest):
            raise PolicyError(f"{source}: a {ptype} line has two fields, this one has {len(rest)}")
        if ptype in ("g2", "g3") and not ACTION.match(rest[0]):
            raise PolicyError(f"{source}: {rest[0]!r} is not an action like report.edit")
        if ptype == "g3" and not ACTION.match(rest[1]):
            raise PolicyError(f"{source}: {rest[1]!r} is not an action like project.view")
    else:
        raise PolicyError(f"{source}: unknown line type {ptype!r}; expected p, g, g2 or g3")
    return Line(ptype, rest, source)


def load_policy(directory: Path | str) -> Policy:
    """Read and validate ``directory``; raises PolicyError naming file:line and what is wrong."""
    root = Path(directory)
    if not root.is_dir():
        raise PolicyError(f"{root}: not a readable policy directory")
    model_path = root / MODEL_FILE
    try:
        model_text = model_path.read_text()
    except OSError as exc:
        raise PolicyError(f"{model_path}: cannot read the model: {exc.strerror}") from None
    _check_model(model_text, str(model_path))
    digest = hashlib.sha256(b"model.conf\0" + model_text.encode())
    lines: list[Line] = []
    seen: dict[tuple[str, tuple[str, ...]], str] = {}
    files = sorted(root.glob("*.csv"))
    if not files:
        raise PolicyError(f"{root}: no policy files (*.csv)")
    for path in files:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path}: cannot read: {exc}") from None
        digest.update(path.name.encode() + b"\0" + text.encode())
        for number, raw in enumerate(text.splitlines(), start=1):
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            source = f"{root.name}/{path.name}:{number}"
            line = parse_line(stripped, source)
            key = (line.ptype, line.values)
            if key in seen:
                raise PolicyError(f"{source}: the same line is already at {seen[key]}")
            seen[key] = source
            lines.append(line)
    policy = Policy(model_text, tuple(lines), digest.hexdigest()[:12], str(root))
    _check_coherence(policy)
    return policy


def _check_coherence(policy: Policy) -> None:
    """Cross-line checks: every p action applies to some kind; g3 names known actions."""
    actions = policy.actions
    for line in policy.p_lines:
        if line.act not in actions:
            raise PolicyError(f"{line.source}: action {line.act} applies to no resource kind (add a g2 line)")
    for line in policy.grouping("g3"):
        for action in line.values:
            if action not in actions:
                raise PolicyError(f"{line.source}: action {action} applies to no resource kind (add a g2 line)")


TEAM_CHAIN = ("team:admin", "team:member", "team:view_only")


def custom_role_lines(policy: Policy, roles: Iterable[dict[str, Any]]) -> list[Line]:
    """Policy lines for the org's custom roles (section 2), from the store's custom-role rows.

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
