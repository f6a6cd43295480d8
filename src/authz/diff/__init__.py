"""Policy diff: the exact decisions a policy edit changes, on a whole world, before it serves.

    outcome = diff_policies(state, base, head)

compares, for every subject (users, service accounts, anonymous) x every resource x every
action that applies to the resource's kind (and, for actions whose lines read context, every
value the lines compare a key with plus one none names), the decisions of ``base`` and ``head``
at the state's revision; :mod:`authz.diff.walk` says how it avoids asking them all. ``limit``
cuts the list of changes, never the counts.
"""

from __future__ import annotations

from authz.decider import Decider
from authz.diff.affected import affected_actions
from authz.diff.subjects import Subjects
from authz.diff.walk import UNNAMED, Change, Outcome, Walk, index_of, reads_for
from authz.engines import engine_factory
from authz.engines.holder import EngineHolder
from authz.policy import Policy, custom_role_lines
from authz.state import FixedState, WorldState

__all__ = ["UNNAMED", "Change", "Outcome", "affected_actions", "diff_policies", "reads_for"]


def deciders(state: WorldState, base: Policy, head: Policy, engine: str = "compiled") -> tuple[Decider, Decider]:
    factory = engine_factory(engine)
    source = FixedState(state)
    return Decider(source, EngineHolder(base, factory)), Decider(source, EngineHolder(head, factory))


def diff_policies(
    state: WorldState, base: Policy, head: Policy, *, engine: str = "compiled", limit: int | None = None
) -> Outcome:
    """Every decision ``base`` and ``head`` make differently on ``state`` (changes cut at ``limit``)."""
    roles = list(state.rows["custom_role"].values())
    affected = sorted(affected_actions(base.with_lines(custom_role_lines(base, roles)),
                                       head.with_lines(custom_role_lines(head, roles))))  # fmt: skip
    before, after = deciders(state, base, head, engine)
    walk = Walk(state, before, after, limit)
    reads_of = {action: reads_for(action, base, head) for action in affected}
    for action, reads in reads_of.items():
        for kind in (*index_of(base).applies_to(action), *index_of(head).applies_to(action)):
            raw, relations = walk.reads_of_kind.setdefault(kind, (set(), set()))
            raw |= reads.obj_raw
            relations |= reads.relations
    everyone: dict[tuple[bool, frozenset[str]], Subjects] = {}
    for action in affected:
        reads = reads_of[action]
        how = ("teams" in reads.sub_raw, frozenset(reads.literals))
        subjects = everyone.get(how)
        if subjects is None:
            subjects = everyone[how] = Subjects(state, teams_matter=how[0], literals=set(how[1]))
        walk.action(action, base, head, subjects, reads)
    walk.outcome.affected = tuple(affected)
    return walk.outcome
