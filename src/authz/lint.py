"""What a policy means, checked: the semantic half of `authz policy lint`, every reload and `serve`.

Each check returns problems as ``file:line: what is wrong`` with a did-you-mean where one fits;
:func:`check` runs them all, so an author sees every problem at once:

* files: every file is one the catalogue lists, and every listed file is there and holds lines;
* rules: every line cites a rule id of the catalogue; every rule the catalogue puts in a file has
  a line there;
* actions and kinds: every action of a ``p`` or ``g3`` line applies to a kind (``g2``), and every
  ``g2`` kind is a resource kind;
* roles: every role a line grants to, and every role a ``g`` line maps from, is one the resolver
  gives (authz/facts.py) or one a ``g`` line defines; the ``g`` hierarchy has no cycle and is at
  most as deep as pycasbin follows;
* facts: every ``r.sub``/``r.obj``/``r.ctx`` a condition reads exists for every kind its action
  applies to (the matcher's, for every kind);
* widening: a grant of a write or admin action to a role anonymous callers hold, and a ``g`` line
  putting everyone (anyone, anonymous, authenticated, user, service_account) into another role,
  are errors unless the line carries ``# lint: allow-wide <why>``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from difflib import get_close_matches

from authz import facts
from authz.catalogue import CATALOGUE_FILE
from authz.errors import Problem
from authz.policy import MODEL_FILE, Line, Policy
from authz.syntax import condition_facts
from store.kinds import RESOURCE_KINDS

WIDE = frozenset({"anyone", "anonymous", "authenticated", "user", "service_account"})
READ_VERBS = ("view", "search")  # verbs that only read: view, view_profile, view_settings, search, ...
MAX_DEPTH = 9  # pycasbin's role manager follows links 10 levels deep (the role itself is level 0)


def check(policy: Policy, label: str) -> list[Problem]:
    """Every semantic problem of ``policy`` (its directory shown as ``label``)."""
    problems = _files(policy, label)
    problems += _rules(policy, label)
    problems += _actions(policy)
    problems += _roles(policy)
    problems += _facts(policy)
    problems += _widening(policy)
    return problems


def _at(line: Line, message: str) -> Problem:
    file, _, number = line.source.rpartition(":")
    return Problem(file, int(number) if number.isdigit() else 0, message)


def _hint(word: str, choices: Iterable[str]) -> str:
    found = get_close_matches(word, sorted(choices), n=1)
    return f"; did you mean {found[0]}?" if found else ""


def _files(policy: Policy, label: str) -> list[Problem]:
    if policy.catalogue is None:
        return []
    listed = policy.catalogue.files
    present = dict(policy.texts)
    problems = []
    for name in sorted(set(present) - set(listed)):
        problems.append(
            Problem(f"{label}/{name}", 0, f"is not a file of this policy{_hint(name, listed)} "
                    f"({CATALOGUE_FILE} lists {', '.join(sorted(listed))}; add it there if it belongs)")
        )  # fmt: skip
    holding = {line.source.rpartition(":")[0].rpartition("/")[2] for line in policy.lines}
    for name in sorted(listed):
        if name not in present:
            problems.append(Problem(f"{label}/{name}", 0, f"is missing ({CATALOGUE_FILE} lists it: {listed[name]})"))
        elif name.endswith(".csv") and name not in holding:
            problems.append(Problem(f"{label}/{name}", 0, f"holds no policy line (it should hold {listed[name]})"))
        elif name in (MODEL_FILE, CATALOGUE_FILE) and not present[name].strip():
            problems.append(Problem(f"{label}/{name}", 0, "is empty"))
    return problems


def _rules(policy: Policy, label: str) -> list[Problem]:
    if policy.catalogue is None:
        return []
    rules = policy.catalogue.rules
    problems = [
        _at(line, f"rule {line.rule} is not in the catalogue ({CATALOGUE_FILE}){_hint(line.rule, rules)}")
        for line in policy.p_lines
        if line.rule not in rules
    ]
    cited: dict[str, set[str]] = defaultdict(set)
    for line in policy.p_lines:
        cited[line.rule].add(line.source.rpartition(":")[0].rpartition("/")[2])
    present = dict(policy.texts)
    for rule, entry in sorted(rules.items()):
        if entry.file and entry.file in present and entry.file not in cited.get(rule, set()):
            problems.append(Problem(f"{label}/{entry.file}", 0, f"has no line for rule {rule} ({entry.says})"))
    return problems


def _actions(policy: Policy) -> list[Problem]:
    actions = policy.actions
    problems = []
    for line in policy.grouping("g2"):
        if line.values[1] not in RESOURCE_KINDS:
            hint = _hint(line.values[1], RESOURCE_KINDS)
            problems.append(_at(line, f"{line.values[1]} is not a resource kind{hint}"))
    for line in policy.p_lines:
        if line.act not in actions:
            problems.append(_at(line, f"action {line.act} applies to no resource kind (add a g2 line)"
                                f"{_hint(line.act, actions)}"))  # fmt: skip
    for line in policy.grouping("g3"):
        for action in line.values:
            if action not in actions:
                problems.append(_at(line, f"action {action} applies to no resource kind (add a g2 line)"
                                    f"{_hint(action, actions)}"))  # fmt: skip
    return problems


def _roles(policy: Policy) -> list[Problem]:
    g_lines = policy.grouping("g")
    defined = set(facts.ROLE_TOKENS)
    changed = True
    while changed:  # a g line defines its right side once its left side is defined
        changed = False
        for line in g_lines:
            if line.values[0] in defined and line.values[1] not in defined:
                defined.add(line.values[1])
                changed = True
    problems = []
    for line in g_lines:
        if line.values[0] not in defined:
            problems.append(_at(line, f"role {line.values[0]} is given to no one: it is not a role token of the "
                                f"resolver nor defined by a g line{_hint(line.values[0], defined)}"))  # fmt: skip
    for line in policy.p_lines:
        if line.role not in defined:
            problems.append(_at(line, f"role {line.role} is not defined: no subject can hold it"
                                f"{_hint(line.role, defined)}"))  # fmt: skip
    problems += _cycles(g_lines)
    return problems


def _cycles(g_lines: tuple[Line, ...]) -> list[Problem]:
    """A cycle of g lines, named by its roles; a chain deeper than pycasbin follows."""
    edges: dict[str, list[Line]] = defaultdict(list)
    for line in g_lines:
        edges[line.values[0]].append(line)
    problems: list[Problem] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    depth: dict[str, int] = {}
    path: list[str] = []

    def visit(role: str) -> int:
        state[role] = 1
        path.append(role)
        deepest = 0
        for line in edges.get(role, ()):
            target = line.values[1]
            if state.get(target) == 1:
                names = " -> ".join([*path[path.index(target) :], target])
                problems.append(_at(line, f"the role hierarchy has a cycle: {names}"))
                continue
            deepest = max(deepest, 1 + (depth[target] if state.get(target) == 2 else visit(target)))
        path.pop()
        state[role] = 2
        depth[role] = deepest
        return deepest

    for role in list(edges):
        if role not in state:
            visit(role)
    for line in g_lines:
        if depth.get(line.values[0], 0) > MAX_DEPTH and not problems:
            problems.append(_at(line, f"the role hierarchy from {line.values[0]} is {depth[line.values[0]]} levels "
                                f"deep; pycasbin follows {MAX_DEPTH}"))  # fmt: skip
            break
    return problems


def _facts(policy: Policy) -> list[Problem]:
    applies: dict[str, tuple[str, ...]] = defaultdict(tuple)
    for line in policy.grouping("g2"):
        applies[line.values[0]] += (line.values[1],)
    problems = []
    for line in policy.p_lines:
        kinds = applies.get(line.act, ())
        for part, name in condition_facts(line.cond):
            message = _fact_problem(part, name, kinds, f"{line.act} applies to")
            if message:
                problems.append(_at(line, message))
    if policy.model is not None:
        for node in ast.walk(policy.model.matcher):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                message = _fact_problem(node.value.id.removeprefix("r_"), node.attr, RESOURCE_KINDS, "requests are on")
                if message:
                    problems.append(Problem(policy.model.source, policy.model.matcher_line, f"[matchers] {message}"))
    return problems


def _fact_problem(part: str, name: str, kinds: tuple[str, ...], what: str) -> str:
    if part == "sub" and name not in facts.SUBJECT:
        return f"r.sub.{name} is not a fact about a subject{_hint(name, facts.SUBJECT)}"
    if part == "ctx" and name not in facts.CONTEXT:
        listed = ", ".join(facts.CONTEXT)
        return f"r.ctx.{name} is not a context value callers give ({listed}){_hint(name, facts.CONTEXT)}"
    if part == "obj":
        lacking = facts.resource_fact(kinds, name)
        if lacking:
            known = set().union(*(facts.RESOURCE[kind] for kind in kinds if kind in facts.RESOURCE))
            return (f"r.obj.{name} is not a fact of {', '.join(lacking)} resources, which {what}"
                    f"{_hint(name, known)}")  # fmt: skip
    return ""


def _widening(policy: Policy) -> list[Problem]:
    held_by_anonymous = {"anonymous"}
    changed = True
    while changed:
        changed = False
        for line in policy.grouping("g"):
            if line.values[0] in held_by_anonymous and line.values[1] not in held_by_anonymous:
                held_by_anonymous.add(line.values[1])
                changed = True
    problems = []
    for line in policy.p_lines:
        verb = line.act.partition(".")[2]
        reads = verb.startswith(READ_VERBS)
        if line.eft == "allow" and line.role in held_by_anonymous and not reads and not line.allow_wide:
            problems.append(
                _at(
                    line,
                    f"grants {line.act}, which changes things, to {line.role}, a role anonymous "
                    "callers hold; if that is meant, end the line with '# lint: allow-wide <why>'",
                )
            )
    for line in policy.grouping("g"):
        source, target = line.values
        if source in WIDE and target not in WIDE and not line.allow_wide:
            problems.append(_at(line, f"puts every {source} into {target}; if that is meant, end the line with "
                                "'# lint: allow-wide <why>'"))  # fmt: skip
    return problems
