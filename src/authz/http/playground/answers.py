"""What each tab of the playground shows, computed from the editors' texts on a scratch engine.

Each function takes a checked body and the policy the service is serving, builds what it needs in
memory (:mod:`~authz.http.playground.scratch`) and returns a JSON-ready dict; none writes
anything. Decisions go through the real :class:`~authz.decider.Decider` over a fixed state, so a
check here answers as the service would on that world with that policy.

Runs on anyio's worker threads; the only shared state is the serving matrix, cached per policy
version under a lock.
"""

from __future__ import annotations

import threading
from typing import Any

from authz import matrix as tables
from authz.decision import Decision, Request
from authz.diff import diff_policies
from authz.errors import AuthzError, PolicyError
from authz.harness import Result
from authz.http.playground import bodies
from authz.http.playground.scratch import check_policy, policy_from, problems_of, world_from
from authz.policy import Policy
from authz.testing import decider_for

DIFF_LIMIT = 50  # changes listed (the counts are always whole)


def lint(body: bodies.Files, serving: Policy, engine: str) -> dict[str, Any]:
    """Every problem of the edited policy, as `authz policy lint` reports them."""
    files = bodies.file_texts(body)
    try:
        policy = check_policy(files, serving.directory, engine)
    except PolicyError as exc:
        problems = problems_of(exc)
        return {"ok": False, "problems": problems, "summary": f"{len(problems)} problem(s)"}
    rules = {line.rule for line in policy.p_lines}
    return {
        "ok": True, "problems": [], "version": policy.version,
        "summary": f"ok, version {policy.version}: {len(policy.p_lines)} rule lines for {len(policy.actions)} "
                   f"actions, {len(rules)} rule ids",
    }  # fmt: skip


def _lines(policy: Policy, decision: Decision) -> list[dict[str, Any]]:
    texts = {line.source: line.text for line in policy.lines}
    out = []
    for source in decision.policy_lines:
        file, _, number = source.rpartition(":")
        out.append({"source": source, "name": file.rpartition("/")[2], "line": int(number) if number.isdigit() else 0,
                    "text": texts.get(source, "")})  # fmt: skip
    return out


def check(body: bodies.Check, serving: Policy, engine: str) -> dict[str, Any]:
    """One decision, explained, on the editors' world with the editors' policy."""
    subject_kind, subject_id = bodies.reference(body.subject, "subject", subject=True)
    resource_kind, resource_id = bodies.reference(body.resource, "resource")
    request = Request(subject_kind, subject_id, body.action.strip(), resource_kind, resource_id,
                      bodies.context(body.context), explain=True)  # fmt: skip
    policy = policy_from(bodies.file_texts(body), serving.directory, engine)
    world = world_from(body.world, body.world_name)
    decision = decider_for(world.state, policy, engine).check(request)
    return {
        "allowed": decision.allowed, "reason": decision.reason, "rules": list(decision.rules),
        "policy_lines": _lines(policy, decision), "explanation": decision.explanation,
        "policy_version": decision.policy_version, "request": {"subject": request.subject, "action": request.action,
                                                               "resource": request.resource,
                                                               "context": dict(request.context)},
    }  # fmt: skip


def _result(result: Result) -> dict[str, Any]:
    case = result.case
    return {
        "where": case.where, "line": case.line, "subject": case.subject, "action": case.action,
        "resource": case.resource, "context": case.context, "expected": "allow" if case.allow else "deny",
        "rule": case.rule, "got": result.got, "rules": list(result.decision.rules) if result.decision else [],
        "reason": result.decision.reason if result.decision else result.error, "passed": result.passed,
    }  # fmt: skip


def tests(body: bodies.FilesAndWorld, serving: Policy, engine: str) -> dict[str, Any]:
    """The cases of the world editor, each decided by the editors' policy on the editors' world."""
    policy = policy_from(bodies.file_texts(body), serving.directory, engine)
    world = world_from(body.world, body.world_name)
    decider = decider_for(world.state, policy, engine)
    results = []
    for case in world.cases:
        try:
            results.append(Result(case, decider.check(case.request())))
        except AuthzError as exc:  # a malformed case is a failing row, with its reason
            results.append(Result(case, None, str(exc)))
    passed = sum(result.passed for result in results)
    return {"passed": passed, "failed": len(results) - passed, "total": len(results),
            "results": [_result(result) for result in results]}  # fmt: skip


_serving_tables: dict[str, list[tables.Table]] = {}
_serving_lock = threading.Lock()


def _serving_matrix(serving: Policy) -> list[tables.Table]:
    with _serving_lock:
        found = _serving_tables.get(serving.version)
    if found is None:
        found = tables.compute(serving)
        with _serving_lock:
            _serving_tables.clear()  # one version serves at a time
            _serving_tables[serving.version] = found
    return found


def matrix(body: bodies.Files, serving: Policy, engine: str) -> dict[str, Any]:
    """The role x action tables of `authz policy matrix` for the edited policy; ``was`` is the serving
    policy's cell where it differs."""
    policy = policy_from(bodies.file_texts(body), serving.directory, engine)
    edited = tables.compute(policy)
    before = _serving_matrix(serving)
    changed = 0
    out = []
    for table, old in zip(edited, before, strict=True):
        rows = []
        for row, cells, was in zip(table.family.rows, table.cells, old.cells, strict=True):
            differs = [cell != prior for cell, prior in zip(cells, was, strict=True)]
            changed += sum(differs)
            rows.append({"rule": row.rule, "action": row.action, "cells": list(cells),
                         "was": [prior if d else None for prior, d in zip(was, differs, strict=True)]})  # fmt: skip
        out.append({"title": table.family.title, "note": table.family.note,
                    "columns": [heading for heading, _ in table.family.columns], "rows": rows})  # fmt: skip
    return {"version": policy.version, "serving_version": serving.version, "changed": changed, "tables": out}


def diff(body: bodies.FilesAndWorld, serving: Policy, engine: str) -> dict[str, Any]:
    """The decisions the edit changes on the editors' world: the serving policy against the edited one."""
    policy = policy_from(bodies.file_texts(body), serving.directory, engine)
    world = world_from(body.world, body.world_name)
    outcome = diff_policies(world.state, serving, policy, engine=engine, limit=DIFF_LIMIT)
    counts = {action: dict(directions) for action, directions in sorted(outcome.counts.items())}
    total = sum(sum(directions.values()) for directions in counts.values())
    return {
        "serving_version": serving.version, "version": policy.version, "total": total, "counts": counts,
        "rules": dict(outcome.rules.most_common()), "truncated": outcome.truncated, "decided": outcome.decided,
        "affected": list(outcome.affected),
        "changes": [
            {"subject": c.subject, "action": c.action, "resource": c.resource, "context": c.context,
             "before": c.before, "after": c.after, "before_rules": list(c.before_rules),
             "after_rules": list(c.after_rules)}
            for c in outcome.changes
        ],
    }  # fmt: skip
