"""The policy diff: every decision two policies make differently on one world, found without asking them all.

For each action an edit can change (:mod:`authz.diff.affected`), every resource of the kinds it
applies to is grouped with the resources of its scope that the action's lines (and the lines of
what it requires first) cannot tell apart: the same raw facts (:mod:`authz.diff.reads`). Within
such a group, every subject is decided once by each policy, for each class of context values:

* subjects the scope relates to, one by one; everyone else, one per outsider class
  (:mod:`authz.diff.subjects`);
* a subject a resource names in a fact the lines compare with the subject's identity (the
  creator of a report, say) is decided for that resource alone;
* a context key's values are those the lines compare it with, plus one that none names; values
  that every comparison treats alike are one class.

Decisions are memoised on everything they can depend on (the subject's role tokens and read
facts, the group's facts, the identity relations, the context classes), so a decision made for
one scope serves every scope alike. Counts are computed from class and group sizes, so they are
exact even when the list of changes is cut at ``limit``. Both policies are asked through the real
decider, so each answer is what the service would say.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from authz import resolver
from authz.decider import Decider
from authz.decision import Request
from authz.diff.reads import Partners, Reads, reads_of
from authz.diff.subjects import OutsiderClass, Subject, Subjects, ref
from authz.engines.index import ActionIndex
from authz.policy import Policy
from authz.state import WorldState

UNNAMED = "~other"  # the context value no line names
TABLES = {"version": "collection_version"}


@dataclass(frozen=True)
class Change:
    subject: str
    action: str
    resource: str
    context: dict[str, str]
    before: bool
    after: bool
    before_rules: tuple[str, ...]
    after_rules: tuple[str, ...]


@dataclass
class Outcome:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # action -> direction -> n
    rules: Counter[str] = field(default_factory=Counter)  # rule id -> changed decisions that cite it
    changes: list[Change] = field(default_factory=list)
    truncated: bool = False
    decided: int = 0  # decisions asked of each policy
    affected: tuple[str, ...] = ()


def _ids(state: WorldState, kind: str) -> list[str]:
    if kind == "system":
        return ["main"]
    return sorted(key[0] for key in state.rows[TABLES.get(kind, kind)])


def _values(value: object) -> list[str]:
    if isinstance(value, frozenset | set):
        return sorted(v for v in value if isinstance(v, str))
    return [value] if isinstance(value, str) else []


def candidate_values(partners: Partners, sub: dict[str, Any], facts: list[dict[str, Any]]) -> list[str]:
    """The values a diff tries for a context key: those the lines compare it with, and one none names."""
    values = set(partners.constants) | {UNNAMED}
    for name in partners.obj:
        for source in facts:
            values.update(_values(source.get(name)))
    for name in partners.sub:
        values.update(_values(sub.get(name)))
    return sorted(values)


class _Contexts:
    """The context values tried for one action, and the classes the lines cannot tell apart."""

    def __init__(self, reads: Reads) -> None:
        self.keys = sorted(reads.ctx)
        self.partners: dict[str, Partners] = reads.ctx

    def classes(
        self, sub: dict[str, Any], facts: list[dict[str, Any]]
    ) -> list[tuple[tuple[object, ...], dict[str, str], int]]:
        """(feature, an example context, how many contexts have the feature) for one subject and resource."""
        per_key: list[list[tuple[object, str, int]]] = []
        for key in self.keys:
            partners = self.partners[key]
            grouped: dict[object, list[str]] = defaultdict(list)
            for value in candidate_values(partners, sub, facts):
                grouped[self._feature(partners, value, sub, facts)].append(value)
            per_key.append([(feature, found[0], len(found)) for feature, found in grouped.items()])
        found_classes = []
        for combo in itertools.product(*per_key):
            feature = tuple(item[0] for item in combo)
            context = {key: item[1] for key, item in zip(self.keys, combo, strict=True)}
            count = 1
            for item in combo:
                count *= item[2]
            found_classes.append((feature, context, count))
        return found_classes

    def concrete(
        self, sub: dict[str, Any], facts: list[dict[str, Any]], feature: tuple[object, ...]
    ) -> Iterator[dict[str, str]]:
        """Every context of this subject and resource whose class is ``feature``."""
        per_key: list[list[str]] = []
        for key, wanted in zip(self.keys, feature, strict=True):
            partners = self.partners[key]
            values = candidate_values(partners, sub, facts)
            per_key.append([v for v in values if self._feature(partners, v, sub, facts) == wanted])
        for combo in itertools.product(*per_key):
            yield dict(zip(self.keys, combo, strict=True))

    @staticmethod
    def _feature(partners: Partners, value: str, sub: dict[str, Any], facts: list[dict[str, Any]]) -> object:
        if partners.raw:
            return value
        constant = value if value in partners.constants else None
        against_obj = tuple(_holds(value, source.get(name)) for name in sorted(partners.obj) for source in facts)
        against_sub = tuple(_holds(value, sub.get(name)) for name in sorted(partners.sub))
        return (constant, against_obj, against_sub)


def _holds(value: str, fact: object) -> bool:
    if isinstance(fact, frozenset | set):
        return value in fact
    return value == fact


@dataclass
class _Group:
    """Resources of one scope that the lines cannot tell apart, with a representative."""

    target: resolver.Resource
    project: resolver.Resource | None
    sig: tuple[object, ...] = ()
    ids: list[str] = field(default_factory=list)
    special: dict[str, set[Subject]] = field(default_factory=dict)  # resource id -> subjects it names


class Walk:
    def __init__(self, state: WorldState, base: Decider, head: Decider, limit: int | None) -> None:
        self.state = state
        self.base, self.head = base, head
        self.limit = limit
        self.outcome = Outcome()
        self.memo: dict[tuple[object, ...], tuple[bool, tuple[str, ...], bool, tuple[str, ...]]] = {}
        self._sub_keys: dict[tuple[object, ...], tuple[object, ...]] = {}

    # -- deciding --

    def _decide(
        self, subject: Subject, action: str, kind: str, ident: str, context: dict[str, str]
    ) -> tuple[bool, tuple[str, ...], bool, tuple[str, ...]]:
        request = Request(subject[0], subject[1], action, kind, ident, context)
        before, after = self.base.decide(request), self.head.decide(request)
        self.outcome.decided += 1
        return before.allowed, before.rules, after.allowed, after.rules

    # -- one action --

    def action(self, action: str, base: Policy, head: Policy, subjects: Subjects, reads: Reads) -> None:
        kinds = list(dict.fromkeys((*ActionIndex(base).applies_to(action), *ActionIndex(head).applies_to(action))))
        contexts = _Contexts(reads)
        for kind in kinds:
            for scope, groups in self._groups(kind, reads, subjects).items():
                org = scope.org
                for group in groups.values():
                    insiders = subjects.insiders(scope, kind, group.ids[0])
                    for subject in sorted(insiders):
                        self._generic(action, kind, group, [subject], reads, contexts)
                    for outsiders in subjects.outsider_classes(org):
                        members = [m for m in outsiders.members if m not in insiders]
                        if members:
                            self._generic(action, kind, group, members, reads, contexts)
                    for ident in group.ids:
                        for subject in sorted(group.special.get(ident, ())):
                            self._special(action, kind, group, ident, subject, reads, contexts)

    def _groups(
        self, kind: str, reads: Reads, subjects: Subjects
    ) -> dict[resolver.Scope, dict[tuple[object, ...], _Group]]:
        groups: dict[resolver.Scope, dict[tuple[object, ...], _Group]] = defaultdict(dict)
        raw = sorted(reads.obj_raw)
        for ident in _ids(self.state, kind):
            target = resolver.resource(self.state, kind, ident)
            if target is None:
                continue
            project = resolver.resource(self.state, "project", target.project) if target.project else None
            sources = [target.facts] + ([project.facts] if project is not None else [])
            sig = tuple(tuple(_freeze(source.get(name)) for name in raw) for source in sources)
            group = groups[target.scope].get(sig)
            if group is None:
                group = groups[target.scope][sig] = _Group(target, project, sig)
            group.ids.append(ident)
            named: set[Subject] = {("user", ident)} if kind == "user" else set()  # `self` on their own user
            for fact, identity in reads.relations:
                for source in sources:
                    named |= subjects.matching(source.get(fact), identity)
            if named:
                group.special[ident] = named
        return groups

    def _sub_key(self, subject: Subject, target: resolver.Resource, reads: Reads) -> tuple[object, ...]:
        """The facts of ``subject`` the lines read, relative to the scope of ``target`` (cached per scope)."""
        facts = target.facts
        key = (subject, target.scope, facts["kind"], facts["id"] if facts["kind"] == "user" else "")
        found = self._sub_keys.get(key)
        if found is None:
            sub = resolver.subject(self.state, subject[0], subject[1], target)
            found = self._sub_keys[key] = tuple((name, _freeze(sub.get(name))) for name in sorted(reads.sub_raw))
        return found

    def _generic(
        self, action: str, kind: str, group: _Group, members: list[Subject], reads: Reads, contexts: _Contexts
    ) -> None:
        """Decide the members of a class on the group's resources that do not name them."""
        member_set = set(members)
        spared = [(i, group.special.get(i, set()) & member_set) for i in group.ids]
        pairs = len(members) * len(group.ids) - sum(len(named) for _, named in spared)
        if pairs == 0:
            return  # every resource names every member: all decided alone
        rep, resource = next((m, i) for i, named in spared for m in members if m not in named)
        target = resolver.resource(self.state, kind, resource)
        assert target is not None
        sources = [target.facts] + ([group.project.facts] if group.project is not None else [])
        sub = resolver.subject(self.state, rep[0], rep[1], target)
        sub_key = self._sub_key(rep, target, reads)
        unrelated = (False,) * (len(reads.relations) * len(sources))
        for feature, context, count in contexts.classes(sub, sources):
            key = (action, kind, sub_key, group.sig, feature, unrelated)
            decided = self.memo.get(key)
            if decided is None:
                decided = self.memo[key] = self._decide(rep, action, kind, resource, context)
            if decided[0] != decided[2]:
                self._count(action, decided, pairs * count)
                self._list_generic(action, kind, group, members, feature, decided, contexts)

    def _special(
        self, action: str, kind: str, group: _Group, ident: str, subject: Subject, reads: Reads, contexts: _Contexts
    ) -> None:
        """A subject on a resource that names it (its creator, say): decided on its own relations."""
        target = resolver.resource(self.state, kind, ident)
        assert target is not None
        sources = [target.facts] + ([group.project.facts] if group.project is not None else [])
        sub = resolver.subject(self.state, subject[0], subject[1], target)
        relations = tuple(
            _holds(str(sub.get(identity)), source.get(fact)) for fact, identity in sorted(reads.relations)
            for source in sources
        )  # fmt: skip
        sub_key = self._sub_key(subject, target, reads)
        for feature, context, count in contexts.classes(sub, sources):
            key = (action, kind, sub_key, group.sig, feature, relations)
            decided = self.memo.get(key)
            if decided is None:
                decided = self.memo[key] = self._decide(subject, action, kind, ident, context)
            if decided[0] != decided[2]:
                self._count(action, decided, count)
                for concrete in contexts.concrete(sub, sources, feature):
                    self._emit(Change(ref(subject), action, f"{kind}:{ident}", concrete, decided[0], decided[2],
                                      decided[1], decided[3]))  # fmt: skip

    # -- results --

    def _count(self, action: str, decided: tuple[bool, tuple[str, ...], bool, tuple[str, ...]], n: int) -> None:
        direction = "allow_to_deny" if decided[0] else "deny_to_allow"
        counts = self.outcome.counts.setdefault(action, {"allow_to_deny": 0, "deny_to_allow": 0})
        counts[direction] += n
        for rule in dict.fromkeys((*decided[1], *decided[3])):
            self.outcome.rules[rule] += n

    def _emit(self, change: Change) -> bool:
        if self.limit is not None and len(self.outcome.changes) >= self.limit:
            self.outcome.truncated = True
            return False
        self.outcome.changes.append(change)
        return True

    def _list_generic(
        self, action: str, kind: str, group: _Group, members: list[Subject], feature: tuple[object, ...],
        decided: tuple[bool, tuple[str, ...], bool, tuple[str, ...]], contexts: _Contexts,
    ) -> None:  # fmt: skip
        if self.limit is not None and len(self.outcome.changes) >= self.limit:
            self.outcome.truncated = True
            return
        sources_of: dict[str, list[dict[str, Any]]] = {}
        for ident in group.ids:
            target = resolver.resource(self.state, kind, ident)
            assert target is not None
            sources_of[ident] = [target.facts] + ([group.project.facts] if group.project is not None else [])
            for member in members:
                if member in group.special.get(ident, ()):
                    continue
                sub = resolver.subject(self.state, member[0], member[1], target)
                for context in contexts.concrete(sub, sources_of[ident], feature):
                    change = Change(ref(member), action, f"{kind}:{ident}", context, decided[0], decided[2],
                                    decided[1], decided[3])  # fmt: skip
                    if not self._emit(change):
                        return


def _freeze(value: object) -> object:
    return frozenset(value) if isinstance(value, set) else value


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
            index = ActionIndex(policy)
            conditions += [line.cond for line in index.candidates(current)]
            todo += index.requires(current)
    reads = reads_of(conditions, base.model.matcher if base.model else None)
    if head.model is not None:
        head_reads = reads_of((), head.model.matcher)
        reads.obj_raw |= head_reads.obj_raw
        reads.sub_raw |= head_reads.sub_raw
    return reads


__all__ = ["UNNAMED", "Change", "Outcome", "OutsiderClass", "Walk", "candidate_values", "reads_for"]
