"""The path of one decision: validate, wait for the revision, resolve facts, ask the engine.

``Decider.check`` never raises for a deny and never allows on failure: any unexpected error
while deciding gives ``allowed=False`` with a reason (fail closed). It raises only for a
malformed request (InvalidRequest) or a min_revision it cannot reach in time.

The decider depends on a :class:`~authz.state.StateSource` (reading a state, its revision,
waiting for one), which the replica implements; it knows neither gRPC nor the store. Shared
between decision threads: the Decider (immutable), the engine holder (swaps whole engines) and
the state source (see its lock). The words of the answer are :mod:`authz.reasons`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from authz import reasons, resolver
from authz.decision import Decision, Request, validate
from authz.engines import Engine
from authz.engines.holder import EngineHolder
from authz.errors import InvalidRequest, NotReady, RevisionUnavailable
from authz.policy import Line
from authz.state import StateSource, WorldState

log = logging.getLogger("authz.decider")


class Decider:
    """Answers checks from a source of world state (the replica) and the engine that serves."""

    def __init__(self, source: StateSource, engines: EngineHolder, *, cache: int = 0) -> None:
        self.source = source
        self.engines = engines
        # Up to ``cache`` decisions kept for the state (object and revision) and engine they were made
        # with, and given again for the same request until either changes. Only for a source whose
        # every change moves its revision or replaces its state (the replica); 0: off.
        self.cache = cache
        self._answers: tuple[WorldState, int, Engine, dict[tuple[Any, ...], Decision]] | None = None

    def admit(self, min_revision: int, timeout: float | None, field: str = "min_revision") -> None:
        """Let a call in: the first state is loaded (NotReady otherwise) and ``min_revision`` is reached
        within ``timeout`` seconds (RevisionUnavailable otherwise). Every front end calls this first."""
        if not self.source.ready:
            raise NotReady("the decision service has not loaded the store's data yet; retry shortly")
        if min_revision < 0:
            raise InvalidRequest(field, "must be 0 or more")
        if min_revision > self.source.revision and not self.source.wait_for(min_revision, timeout):
            raise RevisionUnavailable(
                f"the replica is at revision {self.source.revision}; revision {min_revision} was not reached "
                "before the deadline (is the store reachable?)"
            )

    def check(self, request: Request, *, timeout: float | None = None, prefix: str = "") -> Decision:
        validate(request, prefix)
        self.admit(request.min_revision, timeout, f"{prefix}min_revision")
        return self.decide(request)

    def check_many(
        self, requests: list[Request], *, timeout: float | None = None, stop: Callable[[Decision], bool] | None = None
    ) -> list[Decision]:
        """Several checks at one revision: validated first, one wait, one lock, one engine.

        With ``stop``, deciding ends after the first decision it is true for (AuthZEN's short-circuit
        semantics): the list then holds the decisions up to and including that one.
        """
        for i, request in enumerate(requests):
            validate(request, f"checks[{i}].")
        self.admit(max((r.min_revision for r in requests), default=0), timeout)
        version = self.engines.policy.version
        with self.source.reading() as state:
            engine = self.engines.engine_for(state)
            shared = _Shared(state)  # each subject's and resource's facts once per batch
            answers = self._answers_at(state, engine)
            decisions = []
            for request in requests:
                try:
                    decisions.append(self._decide_at(state, engine, request, None, answers, shared))
                except Exception as exc:  # fail closed, item by item
                    log.exception("error while deciding %s %s %s", request.subject, request.action, request.resource)
                    decisions.append(reasons.failed(exc, state.revision, version))
                if stop is not None and stop(decisions[-1]):
                    break
            return decisions

    def decide(self, request: Request, memo: dict[tuple[str, str], Decision] | None = None) -> Decision:
        """A validated request, at the replica's current revision; fail closed.

        ``memo`` (for many requests of one subject at one revision) keeps prerequisite decisions.
        """
        version = self.engines.policy.version
        try:
            with self.source.reading() as state:
                engine = self.engines.engine_for(state)
                answers = self._answers_at(state, engine) if memo is None else None
                return self._decide_at(state, engine, request, memo, answers)
        except Exception as exc:  # fail closed: an error is a deny, never an allow
            log.exception("error while deciding %s %s %s", request.subject, request.action, request.resource)
            return reasons.failed(exc, self.source.revision, version)

    def _answers_at(self, state: WorldState, engine: Engine) -> dict[tuple[Any, ...], Decision] | None:
        """The decisions kept for ``state`` at its revision and ``engine`` (None when off); under the lock."""
        if not self.cache:
            return None
        kept = self._answers
        if kept is None or kept[0] is not state or kept[1] != state.revision or kept[2] is not engine:
            kept = self._answers = (state, state.revision, engine, {})
        elif len(kept[3]) >= self.cache:
            kept[3].clear()
        return kept[3]

    def _decide_at(
        self, state: WorldState, engine: Engine, request: Request, memo: dict[tuple[str, str], Decision] | None,
        answers: dict[tuple[Any, ...], Decision] | None, shared: _Shared | None = None,
    ) -> Decision:  # fmt: skip
        key: tuple[Any, ...] = ()
        if answers is not None:
            key = (request.subject_kind, request.subject_id, request.action, request.resource_kind,
                   request.resource_id, request.explain, tuple(request.context.items()))  # fmt: skip
            kept = answers.get(key)
            if kept is not None:
                return kept
        if shared is None:  # a gate and its action read the same subject in the same scope: resolve it once
            shared = _Shared(state)
        evaluation = _Evaluation(engine, state, request, memo, self.engines.failed, shared)
        decision = evaluation.run()
        if decision.revision != state.revision or decision.policy_version != engine.policy.version:
            decision = reasons.finish(decision, state.revision, engine.policy.version, request.explain)
        if answers is not None and not evaluation.raised:  # a line that raised is counted and logged each time
            answers[key] = decision
        return decision


class _Evaluation:
    """One decision, with its prerequisites (g3), against one state."""

    def __init__(
        self,
        engine: Engine,
        state: WorldState,
        request: Request,
        memo: dict[tuple[str, str], Decision] | None,
        failed: Callable[[str], None] | None,
        shared: _Shared,
    ) -> None:
        self.engine = engine
        self.failed = failed
        self.state = state
        self.request = request
        # Prerequisite decisions already made for this subject at this state (listing many
        # resources of one project asks its project.view once).
        self.memo = memo
        # Facts already resolved at this state: for a gate and its action, and the other items of a batch.
        self.shared = shared
        self.raised = False  # a line of the policy raised while deciding (the policy is broken)

    def run(self) -> Decision:
        r = self.request
        policy = self.engine.policy
        # G3, with the closest known name ("did you mean ...?"): a mistake in the question.
        if r.action not in policy.actions:
            return reasons.unknown("action", r.action, policy.actions)
        if r.resource_kind not in policy.kinds:
            return reasons.unknown("resource kind", r.resource_kind, policy.kinds)
        if not self.engine.applies(r.action, r.resource_kind):
            return reasons.wrong_kind(r.action, self.engine.applies_to(r.action), r.resource_kind)
        if not resolver.subject_exists(self.state, r.subject_kind, r.subject_id):
            table = self.state.rows["user" if r.subject_kind == "user" else "service_account"]
            known = (key[0] for key in table)
            return reasons.unknown("subject", r.subject_id, known, f"{r.subject_kind}:")
        target = self.shared.resource(r.resource_kind, r.resource_id)
        if target is None:
            return Decision(False, f"denied: unknown resource {r.resource} (G3)", ("G3",))
        return self._decide(r.action, target, depth=0)

    def engine_lines(self, action: str) -> list[Line]:
        """The allow lines of ``action``: a deny at the gate names them as the rules not reached."""
        return [line for line in self.engine.candidates(action) if line.eft == "allow"]

    def _decide(self, action: str, target: resolver.Resource, depth: int) -> Decision:
        r = self.request
        gate_rules: list[str] = []
        gate_lines: list[str] = []
        for needed in self.engine.requires(action):
            on = target
            if not self.engine.applies(needed, target.facts["kind"]):
                project = self.shared.resource("project", target.project) if target.project else None
                if project is None:
                    return Decision(False, f"denied: {action} needs {needed}, which does not apply here")
                on = project
            if depth > 4:
                return Decision(False, "denied: prerequisites nest too deep (policy error)")
            key = (needed, on.facts["ref"])
            first = self.memo.get(key) if self.memo is not None else None
            if first is None:
                first = self._decide(needed, on, depth + 1)
                if self.memo is not None:
                    self.memo[key] = first
            if not first.allowed:
                rule = "P0" if needed == "project.view" else None
                own = [line.rule for line in self.engine_lines(action)]
                notes = [n for n in first.rules if n in reasons.GLOBAL_NOTES]
                rules = reasons.unique([rule, *notes, *own]) if rule else first.rules
                where = f"{on.facts['ref']}"
                suffix = ", so may do nothing in it (P0)" if rule else f", which {action} requires"
                return Decision(
                    False,
                    f"denied: {r.subject} may not {needed} {where}{suffix}. {first.reason}",
                    rules,
                    first.policy_lines,
                    explanation=first.explanation,
                )
            gate_rules += first.rules
            gate_lines += first.policy_lines
        sub = self.shared.subject(r.subject_kind, r.subject_id, target)
        verdict = self.engine.evaluate(sub, target.facts, action, r.context)
        if verdict.error:
            self.raised = True
            where = verdict.error_line.source if verdict.error_line is not None else "the policy"
            log.error("%s raised while deciding %s %s %s: %s", where, r.subject, action, r.resource, verdict.error)
            if self.failed is not None:
                self.failed(f"{where}: raised {verdict.error} while deciding {action}")
        explanation = reasons.explain(action, sub, target.facts, verdict) if r.explain else ""
        return reasons.decision_of(
            r=r, action=action, target=target, sub=sub, verdict=verdict, gate_rules=gate_rules,
            gate_lines=gate_lines, explanation=explanation, revision=self.state.revision,
            version=self.engine.policy.version,
        )  # fmt: skip


class _Shared:
    """Facts resolved once for one decision (a gate and the action it guards) or for the items of one
    batch, at one state: each resource's once, and each subject's once per place it is asked about
    (the same scope, and whether it is its own user)."""

    __slots__ = ("_resources", "_subjects", "state")

    def __init__(self, state: WorldState) -> None:
        self.state = state
        self._resources: dict[tuple[str, str], resolver.Resource | None] = {}
        self._subjects: dict[tuple[str, str, resolver.Scope, bool], dict[str, Any]] = {}

    def resource(self, kind: str, ident: str) -> resolver.Resource | None:
        key = (kind, ident)
        if key in self._resources:
            return self._resources[key]
        found = self._resources[key] = resolver.resource(self.state, kind, ident)
        return found

    def subject(self, kind: str, ident: str, target: resolver.Resource) -> dict[str, Any]:
        # What resolver.subject reads of the target: its scope, and whether it is the subject's own user.
        facts = target.facts
        key = (kind, ident, target.scope, facts["kind"] == "user" and facts["id"] == ident)
        sub = self._subjects.get(key)
        if sub is None:
            sub = self._subjects[key] = resolver.subject(self.state, kind, ident, target)
        return sub
