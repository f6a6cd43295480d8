"""The structure of a policy that both engines need, computed once per policy.

* which resource kinds an action applies to (``g2`` lines, in policy order);
* what an action requires first (``g3`` lines: P0's gate, E9's run.create);
* the ``p`` lines of each action, in policy order;
* the role closure of the ``g`` lines: for each role token, every role it holds.

:class:`ActionIndex` answers the first three for :class:`~authz.engines.base.Engine`'s
``applies``/``applies_to``/``requires``/``candidates``; engines hold one and delegate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import cached_property

from authz.policy import Line, Policy

MAX_HIERARCHY = 10  # pycasbin's default maximum depth of a role hierarchy


def role_closure(lines: Iterable[Line]) -> dict[str, frozenset[str]]:
    """For every role named in ``g`` lines, every role it holds (itself included), transitively."""
    parents: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        if line.ptype == "g":
            parents[line.values[0]].add(line.values[1])
    closure: dict[str, frozenset[str]] = {}

    def walk(role: str, depth: int = 0) -> frozenset[str]:
        if role in closure:
            return closure[role]
        if depth > MAX_HIERARCHY:
            return frozenset({role})
        held = {role}
        for parent in parents.get(role, ()):
            held |= walk(parent, depth + 1)
        closure[role] = frozenset(held)
        return closure[role]

    for role in list(parents):
        walk(role)
    return closure


class ActionIndex:
    """Actions of one policy: the kinds each applies to, what each requires, and its lines."""

    def __init__(self, policy: Policy) -> None:
        applies: dict[str, list[str]] = defaultdict(list)
        for line in policy.grouping("g2"):
            applies[line.values[0]].append(line.values[1])
        self._applies_order = {act: tuple(kinds) for act, kinds in applies.items()}
        self._applies = {act: frozenset(kinds) for act, kinds in applies.items()}
        requires: dict[str, list[str]] = defaultdict(list)
        for line in policy.grouping("g3"):
            requires[line.values[0]].append(line.values[1])
        self._requires = {act: tuple(acts) for act, acts in requires.items()}
        lines: dict[str, list[Line]] = defaultdict(list)
        for line in policy.p_lines:
            lines[line.act].append(line)
        self._lines = {act: tuple(found) for act, found in lines.items()}
        self._policy = policy

    def applies(self, action: str, kind: str) -> bool:
        return kind in self._applies.get(action, ())

    def applies_to(self, action: str) -> tuple[str, ...]:
        return self._applies_order.get(action, ())

    def requires(self, action: str) -> tuple[str, ...]:
        return self._requires.get(action, ())

    def candidates(self, action: str) -> tuple[Line, ...]:
        return self._lines.get(action, ())

    @cached_property
    def closure(self) -> dict[str, frozenset[str]]:
        return role_closure(self._policy.lines)


class Indexed:
    """The structural half of :class:`~authz.engines.base.Engine`, answered from ``self.index``."""

    index: ActionIndex

    def applies(self, action: str, kind: str) -> bool:
        return self.index.applies(action, kind)

    def applies_to(self, action: str) -> tuple[str, ...]:
        return self.index.applies_to(action)

    def requires(self, action: str) -> tuple[str, ...]:
        return self.index.requires(action)

    def candidates(self, action: str) -> tuple[Line, ...]:
        return self.index.candidates(action)
