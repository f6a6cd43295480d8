"""Context values for a policy diff: the values tried for each key the lines read, in classes.

A key's values are those the lines compare it with (constants, and facts of the resource or the
subject), plus one that none names (``~other``); values every comparison treats alike form one
class, decided once and counted by the class's size.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from authz.diff.reads import Partners, Reads

UNNAMED = "~other"  # the context value no line names
NO_CONTEXT: list[tuple[tuple[object, ...], dict[str, str], int]] = [((), {}, 1)]


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


class Contexts:
    """The context values tried for one action, and the classes the lines cannot tell apart."""

    def __init__(self, reads: Reads) -> None:
        self.keys = sorted(reads.ctx)
        self.partners: dict[str, Partners] = reads.ctx
        # The classes depend only on these facts of the subject and of the resource's sources.
        self._sub_names = sorted({name for partners in reads.ctx.values() for name in partners.sub})
        self._obj_names = sorted({name for partners in reads.ctx.values() for name in partners.obj})
        self._classes: dict[tuple[object, ...], list[tuple[tuple[object, ...], dict[str, str], int]]] = {}

    def classes(
        self, sub: dict[str, Any], facts: list[dict[str, Any]]
    ) -> list[tuple[tuple[object, ...], dict[str, str], int]]:
        """(feature, an example context, how many contexts have the feature) for one subject and resource."""
        if not self.keys:
            return NO_CONTEXT
        key = (
            tuple(_frozen(sub.get(name)) for name in self._sub_names),
            tuple(_frozen(source.get(name)) for source in facts for name in self._obj_names),
        )
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = self._compute(sub, facts)
        return found

    def _compute(
        self, sub: dict[str, Any], facts: list[dict[str, Any]]
    ) -> list[tuple[tuple[object, ...], dict[str, str], int]]:
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
        against_obj = tuple(holds(value, source.get(name)) for name in sorted(partners.obj) for source in facts)
        against_sub = tuple(holds(value, sub.get(name)) for name in sorted(partners.sub))
        return (constant, against_obj, against_sub)


def holds(value: str, fact: object) -> bool:
    if isinstance(fact, frozenset | set):
        return value in fact
    return value == fact


def _frozen(value: object) -> object:
    return frozenset(value) if isinstance(value, set | list) else value
