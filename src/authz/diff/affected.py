"""Which actions a policy edit can change: the first cut of a policy diff.

An action's decisions depend on its own lines (in order), the kinds it applies to (g2), what it
requires first (g3, and so the decisions of those actions), the holders of the roles its lines
name (the g hierarchy), and the model. If none of these differ between two policies, no
decision of the action can differ, and the diff need not look at it. When the matcher does not
pick lines by ``r.act == p.act``, a line of one action can decide another: then every action is
affected by any line.
"""

from __future__ import annotations

import ast

from authz.engines.matcher import RoleGraph
from authz.policy import Policy


def _lines(policy: Policy) -> dict[str, tuple[tuple[str, ...], ...]]:
    found: dict[str, list[tuple[str, ...]]] = {}
    for line in policy.p_lines:
        found.setdefault(line.act, []).append((line.rule, line.role, line.cond, line.eft))
    return {action: tuple(lines) for action, lines in found.items()}


def _pairs(policy: Policy, ptype: str) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for line in policy.grouping(ptype):
        found.setdefault(line.values[0], set()).add(line.values[1])
    return {action: frozenset(values) for action, values in found.items()}


def _indexed_by_action(policy: Policy) -> bool:
    """The matcher has ``r.act == p.act`` as a top-level conjunct (so lines are per action)."""
    if policy.model is None:
        return False
    body = policy.model.matcher.body
    conjuncts = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    wanted = {"r_act == p_act", "p_act == r_act"}
    return any(ast.unparse(node) in wanted for node in conjuncts)


def affected_actions(base: Policy, head: Policy) -> set[str]:
    """The actions whose decisions may differ between ``base`` and ``head`` (custom-role lines included)."""
    actions = set(base.actions) | set(head.actions)
    model = (base.model.matcher_text, base.model.effect) if base.model else None
    if model != ((head.model.matcher_text, head.model.effect) if head.model else None):
        return actions
    lines_b, lines_h = _lines(base), _lines(head)
    if (not _indexed_by_action(base) or not _indexed_by_action(head)) and lines_b != lines_h:
        return actions
    applies_b, applies_h = _pairs(base, "g2"), _pairs(head, "g2")
    requires_b, requires_h = _pairs(base, "g3"), _pairs(head, "g3")
    roles_b, roles_h = RoleGraph(base.grouping("g")), RoleGraph(head.grouping("g"))
    affected = set()
    for action in actions:
        own_b, own_h = lines_b.get(action, ()), lines_h.get(action, ())
        roles = {line[1] for line in own_b + own_h}
        if (
            own_b != own_h
            or applies_b.get(action) != applies_h.get(action)
            or requires_b.get(action) != requires_h.get(action)
            or any(roles_b.holders(role) != roles_h.holders(role) for role in roles)
        ):
            affected.add(action)
    changed = True
    while changed:  # an action that requires an affected action is affected
        changed = False
        for action in actions - affected:
            if (requires_b.get(action, frozenset()) | requires_h.get(action, frozenset())) & affected:
                affected.add(action)
                changed = True
    return affected
