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

import operator
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from authz import resolver
from authz.decider import Decider
from authz.decision import Request
from authz.diff.contexts import UNNAMED, Contexts, candidate_values, holds
from authz.diff.reads import Reads, index_of, reads_for
from authz.diff.subjects import OutsiderClass, Subject, Subjects, ref
from authz.policy import Policy
from authz.state import WorldState


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


@dataclass(eq=False)  # hashed by identity
class _Group:
    """Resources of one class of scopes that the lines cannot tell apart, with a representative.

    Scopes are alike when they give every subject the same facts: the same org, team, legacy
    team, registry, personal owner and the same members added to the project (resolver.subject
    reads nothing else of them), so the projects of one team with the same added members and the
    same facts the lines read are one group.
    """

    target: resolver.Resource  # of ids[0]
    project: resolver.Resource | None  # the project of ids[0]
    sig: tuple[object, ...] = ()
    ids: list[str] = field(default_factory=list)
    special: dict[str, set[Subject]] = field(default_factory=dict)  # resource id -> subjects it names
    naming: Counter[Subject] = field(default_factory=Counter)  # subject -> how many of ids name it


@dataclass
class _Layout:
    """The groups of one kind for one way of reading resources, shared by every action reading alike."""

    groups: dict[tuple[object, ...], dict[tuple[object, ...], _Group]]
    # (group, a subject resources name, the relations of the pair) -> the ids of those resources:
    # alike unless the resource is the subject's own user or context values read its facts
    specials: dict[tuple[_Group, Subject, tuple[bool, ...]], list[str]]
    raw: tuple[str, ...]  # the raw facts a group's sig holds, per source (the resource, its project)
    related: tuple[tuple[str, str], ...]  # the relations a special's tuple tests, per source
    sources: int = 0  # facts sources per resource: 1, or 2 with a project

    def picks(self, reads: Reads) -> tuple[list[int], list[int]]:
        """Where the facts and relations ``reads`` reads sit in sigs and relation tuples."""
        raw = [i for i, name in enumerate(self.raw) if name in reads.obj_raw]
        related = [
            i * self.sources + j for i, pair in enumerate(self.related) if pair in reads.relations
            for j in range(self.sources)
        ]  # fmt: skip
        return raw, related


Decided = tuple[bool, tuple[str, ...], bool, tuple[str, ...]]  # allowed and rules before, after


def _identity(subject: Subject, name: str) -> str:
    return ref(subject) if name == "ref" else subject[1]


class Walk:
    def __init__(self, state: WorldState, base: Decider, head: Decider, limit: int | None) -> None:
        self.state = state
        self.base, self.head = base, head
        self.limit = limit
        self.outcome = Outcome()
        self.memo: dict[tuple[object, ...], tuple[bool, tuple[str, ...], bool, tuple[str, ...]]] = {}
        self._sub_keys: dict[tuple[object, ...], tuple[object, ...]] = {}
        self._layouts: dict[tuple[object, ...], _Layout] = {}
        self._insiders: dict[tuple[object, ...], set[Subject]] = {}
        self._insider_sets: dict[tuple[object, ...], list[tuple[tuple[Subject, ...], frozenset[Subject]]]] = {}
        self._projects: dict[str, resolver.Resource | None] = {}
        self._relations: dict[tuple[object, ...], list[tuple[Subject, tuple[bool, ...]]]] = {}
        # kind -> (raw resource facts, relations) that the lines of any affected action of the kind
        # read: one layout per kind serves every action (finer groups than one action needs are exact)
        self.reads_of_kind: dict[str, tuple[set[str], set[tuple[str, str]]]] = {}

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
        kinds = list(dict.fromkeys((*index_of(base).applies_to(action), *index_of(head).applies_to(action))))
        contexts = Contexts(reads)
        for kind in kinds:
            layout = self._layout(kind, reads, subjects)
            # The layout may hold more than this action reads: memo keys keep only what it reads.
            pick_raw, pick_related = layout.picks(reads)
            alone = bool(contexts.keys) or kind == "user"
            for (group, subject, relations), idents in layout.specials.items():
                sig = (_pick(group.sig, pick_raw), tuple(relations[i] for i in pick_related))
                if alone:
                    for ident in idents:
                        self._special(action, kind, group, sig, [ident], subject, reads, contexts)
                else:
                    self._special(action, kind, group, sig, idents, subject, reads, contexts)
            unrelated = (False,) * len(pick_related)
            for scope_key, found in layout.groups.items():
                for group in found.values():
                    sig = (_pick(group.sig, pick_raw), unrelated)
                    insiders = self._insiders_of(subjects, scope_key, group)
                    for members, member_set in self._insider_classes(subjects, scope_key, group, insiders, reads):
                        self._generic(action, kind, group, sig, members, member_set, set(), reads, contexts)
                    for outsiders in subjects.outsider_classes(group.target.scope.org):
                        self._generic(action, kind, group, sig, outsiders.members, outsiders.member_set, insiders,
                                      reads, contexts)  # fmt: skip

    def _insiders_of(self, subjects: Subjects, scope_key: tuple[object, ...], group: _Group) -> set[Subject]:
        key = (id(subjects), scope_key)
        found = self._insiders.get(key)
        if found is None:
            found = self._insiders[key] = subjects.insiders(group.target.scope, group.target.facts["kind"],
                                                            group.ids[0])  # fmt: skip
        return found

    def _insider_classes(
        self, subjects: Subjects, scope_key: tuple[object, ...], group: _Group, insiders: set[Subject], reads: Reads
    ) -> list[tuple[tuple[Subject, ...], frozenset[Subject]]]:
        """The insiders of a class of scopes, in classes of equal read facts (a team's members by role,
        say): each class is decided once. Not on a user resource, where ``self`` tells them apart, nor
        where context values are compared with the subject's facts."""
        target = group.target
        if target.facts["kind"] == "user" or reads.literals or any(p.sub for p in reads.ctx.values()):
            return [((subject,), frozenset((subject,))) for subject in sorted(insiders)]
        key = (id(subjects), scope_key, tuple(sorted(reads.sub_raw)))
        found = self._insider_sets.get(key)
        if found is None:
            by_key: dict[tuple[object, ...], list[Subject]] = {}
            for subject in sorted(insiders):
                by_key.setdefault(self._sub_key(subject, target, reads), []).append(subject)
            found = self._insider_sets[key] = [(tuple(members), frozenset(members)) for members in by_key.values()]
        return found

    def _project(self, target: resolver.Resource) -> resolver.Resource | None:
        if not target.project:
            return None
        if target.project not in self._projects:
            self._projects[target.project] = resolver.resource(self.state, "project", target.project)
        return self._projects[target.project]

    def _scope_key(self, scope: resolver.Scope) -> tuple[object, ...]:
        added = frozenset(self.state.project_members.get(scope.project, ())) if scope.project else None
        return (scope.org, scope.team, scope.project_owner, scope.legacy_team, scope.registry, added)

    def _layout(self, kind: str, reads: Reads, subjects: Subjects) -> _Layout:
        """Group the resources of ``kind`` by class of scope and the raw facts the lines read."""
        wide_raw, wide_relations = self.reads_of_kind.get(kind, (reads.obj_raw, reads.relations))
        raw = tuple(sorted(wide_raw | reads.obj_raw))
        relations = tuple(sorted(wide_relations | reads.relations))
        cache_key = (kind, raw, relations)
        layout = self._layouts.get(cache_key)
        if layout is not None:
            return layout
        layout = self._layouts[cache_key] = _Layout({}, {}, raw, relations)
        unknown_sources = True
        scope_keys: dict[resolver.Scope, tuple[object, ...]] = {}
        getter = operator.itemgetter(*raw) if len(raw) > 1 else None
        for ident, target in resolver.resources(self.state, kind):
            project = self._project(target)
            sources = [target.facts] + ([project.facts] if project is not None else [])
            if unknown_sources:  # every resource of a kind has a project, or none has
                layout.sources, unknown_sources = len(sources), False
            sig = tuple(_facts(source, raw, getter) for source in sources)
            scope_key = scope_keys.get(target.scope)
            if scope_key is None:
                scope_key = scope_keys[target.scope] = self._scope_key(target.scope)
            found = layout.groups.setdefault(scope_key, {})
            group = found.get(sig)
            if group is None:
                group = found[sig] = _Group(target, project, sig)
            group.ids.append(ident)
            values = tuple(_freeze(source.get(fact)) for fact, _ in relations for source in sources)
            pairs = self._related(subjects, relations, len(sources), values)
            if kind == "user":  # `self` on their own user
                pairs = [*pairs, *self._related_pairs([("user", ident)], relations, len(sources), values)]
            if pairs:
                group.special[ident] = {subject for subject, _ in pairs}
                for subject, related in pairs:
                    group.naming[subject] += 1
                    layout.specials.setdefault((group, subject, related), []).append(ident)
        return layout

    def _related(
        self, subjects: Subjects, relations: tuple[tuple[str, str], ...], sources: int, values: tuple[object, ...]
    ) -> list[tuple[Subject, tuple[bool, ...]]]:
        """The subjects these relation facts name, each with which of the relations hold (cached: many
        resources name the same few people)."""
        key = (relations, sources, values)
        found = self._relations.get(key)
        if found is None:
            named: set[Subject] = set()
            for (_, identity), value in zip(_each(relations, sources), values, strict=True):
                named |= subjects.matching(value, identity)
            found = self._relations[key] = self._related_pairs(sorted(named), relations, sources, values)
        return found

    @staticmethod
    def _related_pairs(
        named: list[Subject], relations: tuple[tuple[str, str], ...], sources: int, values: tuple[object, ...]
    ) -> list[tuple[Subject, tuple[bool, ...]]]:
        each = _each(relations, sources)
        return [
            (subject, tuple(holds(_identity(subject, identity), value)
                            for (_, identity), value in zip(each, values, strict=True)))
            for subject in named
        ]  # fmt: skip

    def _sub_key(self, subject: Subject, target: resolver.Resource, reads: Reads) -> tuple[object, ...]:
        """The facts of ``subject`` the lines read, relative to the scope of ``target``.

        Cached per class of scope: a subject's facts depend on a project only through whether it
        was added to it (resolver.subject), so the projects of one team share an entry.
        """
        scope, facts = target.scope, target.facts
        ref_ = ref(subject)
        added = bool(scope.project) and ref_ in self.state.project_members.get(scope.project, ())
        key = (subject, scope.org, scope.team, scope.project_owner, scope.legacy_team, scope.registry, added,
               facts["kind"], facts["id"] if facts["kind"] == "user" else "")  # fmt: skip
        found = self._sub_keys.get(key)
        if found is None:
            sub = resolver.subject(self.state, subject[0], subject[1], target)
            found = self._sub_keys[key] = tuple((name, _freeze(sub.get(name))) for name in sorted(reads.sub_raw))
        return found

    def _target(self, group: _Group, kind: str, ident: str) -> tuple[resolver.Resource, list[dict[str, Any]]]:
        """The resource ``ident`` of ``group`` and the facts its lines read (its own, its project's)."""
        if ident == group.ids[0]:
            target, project = group.target, group.project
        else:
            found = resolver.resource(self.state, kind, ident)
            assert found is not None
            target, project = found, self._project(found)
        return target, [target.facts] + ([project.facts] if project is not None else [])

    def _generic(
        self, action: str, kind: str, group: _Group, sig: tuple[object, ...], members: tuple[Subject, ...],
        member_set: frozenset[Subject], excluded: set[Subject], reads: Reads, contexts: Contexts,
    ) -> None:  # fmt: skip
        """Decide the members of a class (but ``excluded``) on the group's resources that do not name them."""
        total = len(group.ids)
        if len(members) == 1:  # an insider
            rep = members[0]
            pairs = 0 if rep in excluded else total - group.naming.get(rep, 0)
            if pairs <= 0:
                return  # every resource names it: decided alone
        else:
            count = len(members) - sum(1 for subject in excluded if subject in member_set)
            named = sum(n for subject, n in group.naming.items() if subject in member_set and subject not in excluded)
            pairs = count * total - named
            if pairs <= 0:
                return  # every resource names every member: all decided alone
            rep = next(m for m in members if m not in excluded and group.naming.get(m, 0) < total)
        first = group.ids[0]
        resource = first if rep not in group.special.get(first, ()) else next(
            i for i in group.ids if rep not in group.special.get(i, ())
        )  # fmt: skip
        target, sources = self._target(group, kind, resource)
        for feature, _, classes, decided in self._changed(rep, action, kind, resource, target, sources, sig, reads,
                                                           contexts):  # fmt: skip
            self._count(action, decided, pairs * classes)
            self._list_generic(action, kind, group, members, excluded, feature, decided, contexts)

    def _changed(
        self, subject: Subject, action: str, kind: str, ident: str, target: resolver.Resource,
        sources: list[dict[str, Any]], sig: tuple[object, ...], reads: Reads, contexts: Contexts,
    ) -> Iterator[tuple[tuple[object, ...], dict[str, Any], int, Decided]]:  # fmt: skip
        """For each class of context values whose decision changes: (the class, the subject's facts, how
        many context values it has, the decisions). Memoised on all a decision can depend on."""
        sub = resolver.subject(self.state, subject[0], subject[1], target) if contexts.keys else {}
        sub_key = self._sub_key(subject, target, reads)
        for feature, context, count in contexts.classes(sub, sources):
            key = (action, kind, sub_key, sig, feature)
            decided = self.memo.get(key)
            if decided is None:
                decided = self.memo[key] = self._decide(subject, action, kind, ident, context)
            if decided[0] != decided[2]:
                yield feature, sub, count, decided

    def _special(
        self, action: str, kind: str, group: _Group, sig: tuple[object, ...], idents: list[str], subject: Subject,
        reads: Reads, contexts: Contexts,
    ) -> None:  # fmt: skip
        """A subject on resources that name it (their creator, say): decided on its own relations.

        Its facts relative to a resource are those relative to any resource of the group (the same
        class of scope), so one decision serves every id, except on a user resource (``self``) and
        where context values read facts: then ``idents`` holds one id.
        """
        if contexts.keys or kind == "user":
            target, sources = self._target(group, kind, idents[0])
        else:
            target, sources = group.target, []
        for feature, sub, count, decided in self._changed(subject, action, kind, idents[0], target, sources, sig,
                                                          reads, contexts):  # fmt: skip
            self._count(action, decided, count * len(idents))
            for ident in idents:
                for concrete in contexts.concrete(sub, sources, feature):
                    if not self._emit(Change(ref(subject), action, f"{kind}:{ident}", concrete, decided[0],
                                             decided[2], decided[1], decided[3])):  # fmt: skip
                        return

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
        self, action: str, kind: str, group: _Group, members: tuple[Subject, ...], excluded: set[Subject],
        feature: tuple[object, ...], decided: tuple[bool, tuple[str, ...], bool, tuple[str, ...]],
        contexts: Contexts,
    ) -> None:  # fmt: skip
        if self.limit is not None and len(self.outcome.changes) >= self.limit:
            self.outcome.truncated = True
            return
        for ident in group.ids:
            named = group.special.get(ident, ())
            target, sources = self._target(group, kind, ident) if contexts.keys else (group.target, [])
            for member in members:
                if member in excluded or member in named:
                    continue
                sub = resolver.subject(self.state, member[0], member[1], target) if contexts.keys else {}
                for context in contexts.concrete(sub, sources, feature):
                    change = Change(ref(member), action, f"{kind}:{ident}", context, decided[0], decided[2],
                                    decided[1], decided[3])  # fmt: skip
                    if not self._emit(change):
                        return


def _facts(source: dict[str, Any], names: tuple[str, ...], getter: Any) -> tuple[object, ...]:
    """The values of ``names`` in ``source`` (None where it has none), hashable."""
    if getter is not None:
        try:
            found = getter(source)
            hash(found)
            return found  # type: ignore[no-any-return]
        except (KeyError, TypeError):
            pass
    return tuple(_freeze(source.get(name)) for name in names)


def _each(relations: tuple[tuple[str, str], ...], sources: int) -> list[tuple[str, str]]:
    """Each relation once per facts source, in the order relation tuples hold them."""
    return [pair for pair in relations for _ in range(sources)]


def _pick(sig: tuple[object, ...], where: list[int]) -> tuple[object, ...]:
    return tuple(tuple(part[i] for i in where) for part in sig)  # type: ignore[index]


def _freeze(value: object) -> object:
    return frozenset(value) if isinstance(value, set) else value


__all__ = ["UNNAMED", "Change", "Outcome", "OutsiderClass", "Walk", "candidate_values", "index_of", "reads_for"]
