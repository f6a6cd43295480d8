"""What a set of policy lines reads, and how: the facts on which two requests must agree to be decided alike.

The policy diff decides one representative of many (subject, resource, context) triples; that is
exact only if the triples agree on everything the lines that decide them can read. This module
finds it, from the conditions' syntax trees (and the matcher's):

* raw facts: a subject or resource fact whose value matters (compared with a literal, another
  fact of the same side, used as a truth value, passed to holds());
* relations: a resource fact compared with the subject's identity (``r.obj.creator ==
  r.sub.ref``, ``r.sub.id in r.obj.team_members``). Only whether they match matters, so
  resources that differ only in such a fact are alike for every subject it does not name;
* literals compared with the subject's identity (``r.sub.ref == 'user:bob'``): those subjects
  are looked at one by one;
* context keys, and what each is compared with (literals, resource facts, subject facts): the
  values a diff tries for the key, and the features that decide the same way.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from authz.engines.index import ActionIndex
from authz.policy import Policy
from authz.syntax import PARSER_LOCK, python_source

IDENTITY = ("id", "ref")  # the subject facts that name one subject


@dataclass
class Partners:
    """What a context key is compared with."""

    constants: set[str] = field(default_factory=set)
    obj: set[str] = field(default_factory=set)
    sub: set[str] = field(default_factory=set)
    raw: bool = False  # compared with another context key: its value itself matters


@dataclass
class Reads:
    obj_raw: set[str] = field(default_factory=set)
    sub_raw: set[str] = field(default_factory=lambda: {"roles", "kind"})
    relations: set[tuple[str, str]] = field(default_factory=set)  # (resource fact, subject identity fact)
    literals: set[str] = field(default_factory=set)  # literals compared with the subject's identity
    ctx: dict[str, Partners] = field(default_factory=dict)

    def key(self, name: str) -> Partners:
        return self.ctx.setdefault(name, Partners())


def _operand(node: ast.AST) -> tuple[str, object]:
    """("obj"|"sub"|"ctx", fact), ("const", {values}) or ("other", node)."""
    if isinstance(node, ast.Attribute):
        base = node.value
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "r":
            return base.attr, node.attr  # a condition: r.sub.x
        if isinstance(base, ast.Name) and base.id in ("r_sub", "r_obj", "r_ctx"):
            return base.id[2:], node.attr  # the (escaped) matcher: r_sub.x
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bool):
        return "const", {str(node.value)} if isinstance(node.value, str) else set()
    if isinstance(node, ast.Tuple | ast.List) and all(isinstance(e, ast.Constant) for e in node.elts):
        return "const", {str(e.value) for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return "other", node


def _pair(reads: Reads, left: tuple[str, object], right: tuple[str, object]) -> None:
    for (side, fact), (other, value) in ((left, right), (right, left)):
        if side == "ctx":
            partners = reads.key(str(fact))
            if other == "const":
                partners.constants |= value  # type: ignore[arg-type]
            elif other == "obj":
                partners.obj.add(str(value))
                reads.obj_raw.add(str(value))
            elif other == "sub":
                partners.sub.add(str(value))
                if value not in IDENTITY:
                    reads.sub_raw.add(str(value))
            elif other == "ctx":
                partners.raw = True
    kinds = {left[0], right[0]}
    if kinds == {"obj", "sub"}:
        obj = left if left[0] == "obj" else right
        sub = right if obj is left else left
        if sub[1] in IDENTITY:
            reads.relations.add((str(obj[1]), str(sub[1])))
        else:
            reads.obj_raw.add(str(obj[1]))
            reads.sub_raw.add(str(sub[1]))
    elif kinds == {"sub", "const"}:
        sub, const = (left, right) if left[0] == "sub" else (right, left)
        if sub[1] in IDENTITY:
            reads.literals |= const[1]  # type: ignore[arg-type]
        else:
            reads.sub_raw.add(str(sub[1]))
    elif "ctx" not in kinds:
        for side, fact in (left, right):
            _raw(reads, side, fact)


def _raw(reads: Reads, side: str, fact: object) -> None:
    if side == "obj":
        reads.obj_raw.add(str(fact))
    elif side == "sub" and fact not in IDENTITY:
        reads.sub_raw.add(str(fact))
    elif side == "sub":
        reads.literals.add("\0any")  # an identity used raw: every subject must be looked at alone
    elif side == "ctx":
        reads.key(str(fact)).constants.add("")  # read as a truth value: empty or not


def _walk(reads: Reads, tree: ast.AST) -> None:
    compared: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for left, right in itertools.pairwise(operands):
                _pair(reads, _operand(left), _operand(right))
            compared.update(id(operand) for operand in operands)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in compared:
            side, fact = _operand(node)
            if side in ("obj", "sub", "ctx"):
                _raw(reads, side, fact)


def reads_of(conditions: Iterable[str], matcher: ast.Expression | None) -> Reads:
    """What the lines with these conditions, under this matcher, read."""
    reads = Reads()
    if matcher is not None:
        _walk(reads, matcher)
    for cond in set(conditions):
        with PARSER_LOCK:
            tree = ast.parse(python_source(cond), mode="eval")
        _walk(reads, tree)
    return reads


_INDEXES: dict[int, tuple[Policy, ActionIndex]] = {}


def index_of(policy: Policy) -> ActionIndex:
    """The action index of ``policy``, built once for the few policies a diff compares."""
    found = _INDEXES.get(id(policy))
    if found is None or found[0] is not policy:
        while len(_INDEXES) >= 8:
            _INDEXES.pop(next(iter(_INDEXES)))
        found = _INDEXES[id(policy)] = (policy, ActionIndex(policy))
    return found[1]


def reads_for(action: str, base: Policy, head: Policy) -> Reads:
    """What the lines of ``action`` and of everything it requires first read, in both policies."""
    seen: set[str] = set()
    todo = [action]
    conditions: list[str] = []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for policy in (base, head):
            index = index_of(policy)
            conditions += [line.cond for line in index.candidates(current)]
            todo += index.requires(current)
    reads = reads_of(conditions, base.model.matcher if base.model else None)
    if head.model is not None:
        head_reads = reads_of((), head.model.matcher)
        reads.obj_raw |= head_reads.obj_raw
        reads.sub_raw |= head_reads.sub_raw
    return reads
