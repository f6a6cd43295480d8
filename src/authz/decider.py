"""The path of one decision: validate, wait for the revision, resolve facts, ask the engine, explain.

``Decider.check`` never raises for a deny and never allows on failure: any unexpected error
while deciding gives ``allowed=False`` with a reason (fail closed). It raises only for a
malformed request (InvalidRequest) or a min_revision it cannot reach in time.

Shared between gRPC threads: the Decider (immutable apart from the engine reference, which is
swapped whole by :class:`EngineHolder`) and the Replica (see its lock).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from authz import resolver
from authz.engine import CasbinEngine, Engine, Verdict, custom_role_lines
from authz.errors import InvalidRequest, RevisionUnavailable
from authz.policy import Line, Policy
from authz.replica import Replica
from authz.state import WorldState
from servicekit.text import clip

log = logging.getLogger("authz.decider")

MAX_ID = 256
MAX_ACTION = 128
MAX_CONTEXT = 32
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]*\Z")
ACTION = re.compile(r"[a-z_]+\.[a-z_]+\Z")
CONTEXT_KEY = re.compile(r"[a-z_]{1,64}\Z")
KIND = re.compile(r"[a-z_]{1,64}\Z")
MAX_CONTEXT_VALUE = 256


@dataclass(frozen=True)
class Request:
    subject_kind: str
    subject_id: str
    action: str
    resource_kind: str
    resource_id: str
    context: Mapping[str, str] = field(default_factory=dict)
    min_revision: int = 0
    explain: bool = False

    @property
    def subject(self) -> str:
        return "anonymous" if self.subject_kind == "anonymous" else f"{self.subject_kind}:{self.subject_id}"

    @property
    def resource(self) -> str:
        return f"{self.resource_kind}:{self.resource_id}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    rules: tuple[str, ...] = ()
    policy_lines: tuple[str, ...] = ()
    revision: int = 0
    policy_version: str = ""
    explanation: str = ""


def validate(request: Request, prefix: str = "") -> None:
    """Raise InvalidRequest naming the field of a malformed request (G3: malformed is an error)."""
    if request.subject_kind not in resolver.SUBJECT_KINDS:
        raise InvalidRequest(
            f"{prefix}subject.kind", f"{clip(request.subject_kind)} is not one of {', '.join(resolver.SUBJECT_KINDS)}"
        )
    if request.subject_kind == "anonymous":
        if request.subject_id:
            raise InvalidRequest(f"{prefix}subject.id", "must be empty for an anonymous subject")
    else:
        _check_id(request.subject_id, f"{prefix}subject.id")
    if len(request.action) > MAX_ACTION:
        raise InvalidRequest(f"{prefix}action", f"is {len(request.action)} characters long; the limit is {MAX_ACTION}")
    if not ACTION.match(request.action):
        raise InvalidRequest(f"{prefix}action", f"{clip(request.action)} is not an action like report.edit")
    if not KIND.match(request.resource_kind):
        raise InvalidRequest(f"{prefix}resource.kind", f"{clip(request.resource_kind)} is not a resource kind")
    _check_id(request.resource_id, f"{prefix}resource.id")
    if len(request.context) > MAX_CONTEXT:
        raise InvalidRequest(f"{prefix}context", f"has {len(request.context)} entries; the limit is {MAX_CONTEXT}")
    for key, value in request.context.items():
        if not CONTEXT_KEY.match(key):
            raise InvalidRequest(
                f"{prefix}context", f"key {clip(key)} is not 1 to 64 of a-z and _ (a name like alias or artifact_type)"
            )
        if len(value) > MAX_CONTEXT_VALUE:
            raise InvalidRequest(
                f"{prefix}context.{key}", f"is {len(value)} characters long; the limit is {MAX_CONTEXT_VALUE}"
            )
    if request.min_revision < 0:
        raise InvalidRequest(f"{prefix}min_revision", "must be 0 or more")


def _check_id(value: str, field_name: str) -> None:
    if not value:
        raise InvalidRequest(field_name, "must not be empty")
    if len(value) > MAX_ID:
        raise InvalidRequest(field_name, f"is {len(value)} characters long; the limit is {MAX_ID}")
    if not ID.match(value):
        raise InvalidRequest(
            field_name,
            f"{clip(value)} has characters an id cannot have: only letters, digits and . _ @ + - are allowed, "
            "starting with a letter or digit",
        )


def engine_factory(name: str) -> Callable[[Policy], Engine]:
    """The engine class for ``--engine``: ``compiled`` (default) or ``casbin`` (the reference)."""
    from authz.compiler import CompiledEngine

    engines: dict[str, Callable[[Policy], Engine]] = {"compiled": CompiledEngine, "casbin": CasbinEngine}
    try:
        return engines[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose compiled or casbin") from None


class EngineHolder:
    """The engine for the current policy and the replica's custom roles, rebuilt when either changes."""

    def __init__(self, policy: Policy, factory: Callable[[Policy], Engine] | None = None) -> None:
        factory = factory or engine_factory("compiled")
        self._factory = factory
        self._policy = policy
        self._roles: tuple[dict[str, Any], ...] = ()
        self._roles_version = -1  # the state's custom_roles_version the engine was built for
        self._engine = factory(policy)
        self._lock = threading.Lock()

    @property
    def policy(self) -> Policy:
        return self._policy

    def set_policy(self, policy: Policy) -> None:
        """Swap in a new policy (already validated); custom-role lines are generated for it."""
        engine = self._factory(policy.with_lines(custom_role_lines(policy, self._roles)))
        with self._lock:
            self._policy = policy
            self._engine = engine

    def engine_for(self, state: WorldState) -> Engine:
        """The engine to use for ``state`` (call with the replica's lock held)."""
        version = state.custom_roles_version
        if version != self._roles_version:
            roles = tuple(dict(row) for row in state.rows["custom_role"].values())
            with self._lock:
                self._roles = roles
                self._engine = self._factory(self._policy.with_lines(custom_role_lines(self._policy, roles)))
                self._roles_version = version
        return self._engine


class Decider:
    """Answers checks from a replica and a policy."""

    def __init__(self, replica: Replica, engines: EngineHolder) -> None:
        self.replica = replica
        self.engines = engines

    def check(self, request: Request, *, timeout: float | None = None, prefix: str = "") -> Decision:
        validate(request, prefix)
        if request.min_revision > self.replica.revision and not self.replica.wait_for(request.min_revision, timeout):
            raise RevisionUnavailable(
                f"the replica is at revision {self.replica.revision}; revision {request.min_revision} was not "
                "reached before the deadline (is the store reachable?)"
            )
        return self.decide(request)

    def check_many(self, requests: list[Request], *, timeout: float | None = None) -> list[Decision]:
        """Several checks at one revision: validated first, one wait, one lock, one engine."""
        for i, request in enumerate(requests):
            validate(request, f"checks[{i}].")
        needed = max((r.min_revision for r in requests), default=0)
        if needed > self.replica.revision and not self.replica.wait_for(needed, timeout):
            raise RevisionUnavailable(
                f"the replica is at revision {self.replica.revision}; revision {needed} was not reached before the "
                "deadline (is the store reachable?)"
            )
        version = self.engines.policy.version
        with self.replica.reading() as state:
            engine = self.engines.engine_for(state)
            decisions = []
            for request in requests:
                try:
                    decision = _Evaluation(engine, state, request).run()
                    decisions.append(_finish(decision, state.revision, engine.policy.version, request.explain))
                except Exception as exc:  # fail closed, item by item
                    log.exception("error while deciding %s %s %s", request.subject, request.action, request.resource)
                    decisions.append(_failed(exc, state.revision, version))
            return decisions

    def decide(self, request: Request, memo: dict[tuple[str, str], Decision] | None = None) -> Decision:
        """A validated request, at the replica's current revision; fail closed.

        ``memo`` (for many requests of one subject at one revision) keeps prerequisite decisions.
        """
        version = self.engines.policy.version
        try:
            with self.replica.reading() as state:
                engine = self.engines.engine_for(state)
                decision = _Evaluation(engine, state, request, memo).run()
                return _finish(decision, state.revision, engine.policy.version, request.explain)
        except Exception as exc:  # fail closed: an error is a deny, never an allow
            log.exception("error while deciding %s %s %s", request.subject, request.action, request.resource)
            return _failed(exc, self.replica.revision, version)


def _failed(exc: BaseException, revision: int, version: str) -> Decision:
    return Decision(
        False,
        f"denied: internal error while deciding ({type(exc).__name__}); failing closed",
        revision=revision,
        policy_version=version,
    )


def _finish(decision: Decision, revision: int, version: str, explain: bool) -> Decision:
    return Decision(
        decision.allowed,
        decision.reason,
        decision.rules,
        decision.policy_lines,
        revision,
        version,
        decision.explanation if explain else "",
    )


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _describe(line: Line) -> str:
    return f"{line.rule} ({line.act} for {line.role} when {line.cond})"


class _Evaluation:
    """One decision, with its prerequisites (g3), against one state."""

    def __init__(
        self, engine: Engine, state: WorldState, request: Request, memo: dict[tuple[str, str], Decision] | None = None
    ) -> None:
        self.engine = engine
        self.state = state
        self.request = request
        # Prerequisite decisions already made for this subject at this state (listing many
        # resources of one project asks its project.view once).
        self.memo = memo

    def run(self) -> Decision:
        r = self.request
        policy = self.engine.policy
        if r.action not in policy.actions:
            return Decision(False, f"denied: unknown action {r.action} (G3)", ("G3",))
        if r.resource_kind not in policy.kinds:
            return Decision(False, f"denied: unknown resource kind {r.resource_kind} (G3)", ("G3",))
        if not self.engine.applies(r.action, r.resource_kind):
            kinds = " or ".join(self.engine.applies_to(r.action))
            return Decision(
                False, f"denied: {r.action} applies to {kinds} resources, not {r.resource_kind} (G3)", ("G3",)
            )
        if not resolver.subject_exists(self.state, r.subject_kind, r.subject_id):
            return Decision(False, f"denied: unknown subject {r.subject} (G3)", ("G3",))
        target = resolver.resource(self.state, r.resource_kind, r.resource_id)
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
                project = resolver.resource(self.state, "project", target.project) if target.project else None
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
                rules = _unique([rule, *(n for n in first.rules if n in GLOBAL_NOTES), *own]) if rule else first.rules
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
        sub = resolver.subject(self.state, r.subject_kind, r.subject_id, target)
        verdict = self.engine.evaluate(sub, target.facts, action, r.context)
        explanation = _explain(action, sub, target.facts, verdict) if r.explain else ""
        return _decision_of(
            r=r, action=action, target=target, sub=sub, verdict=verdict, gate_rules=gate_rules,
            gate_lines=gate_lines, explanation=explanation,
        )  # fmt: skip


def _decision_of(
    *,
    r: Request,
    action: str,
    target: resolver.Resource,
    sub: dict[str, Any],
    verdict: Verdict,
    gate_rules: list[str],
    gate_lines: list[str],
    explanation: str,
) -> Decision:
    ref = target.facts["ref"]
    if verdict.allowed:
        granted = verdict.granted
        reason = f"allowed: {r.subject} may {action} {ref} by " + "; ".join(
            f"{_describe(line)} at {line.source}" for line in granted
        )
        return Decision(
            True,
            reason,
            _unique([line.rule for line in granted] + gate_rules),
            _unique([line.source for line in granted] + gate_lines),
            explanation=explanation,
        )
    if verdict.missing:
        readers = [line for line in verdict.candidates if f"r.ctx.{verdict.missing}" in line.cond]
        return Decision(
            False,
            f"denied: {action} reads context value {verdict.missing!r}, which was not given (G7)",
            _unique(["G7", *(line.rule for line in readers)]),
            _unique([line.source for line in readers]),
            explanation=explanation,
        )
    if verdict.denied:
        return Decision(
            False,
            f"denied: {r.subject} may not {action} {ref}: "
            + "; ".join(f"{line.rule} denies when {line.cond} ({line.source})" for line in verdict.denied),
            _unique([line.rule for line in verdict.denied]),
            _unique([line.source for line in verdict.denied]),
            explanation=explanation,
        )
    roles = ", ".join(sorted(sub["roles"]))
    rules = _unique([line.rule for line in verdict.candidates if line.eft == "allow"])
    notes = _global_rules(sub, target)
    return Decision(
        False,
        f"denied: no rule grants {action} on {ref} to {r.subject} (holds {roles}; "
        f"{action} is granted by {', '.join(rules) or 'no rule'})"
        + "".join(f"; {GLOBAL_NOTES[note]}" for note in notes),
        _unique(["G1", *notes, *rules]),
        _unique([line.source for line in verdict.candidates if line.eft == "allow"]),
        explanation=explanation,
    )


GLOBAL_NOTES = {
    "G4": "listed in the project, but no longer in its team (G4)",
    "G6": "org admins get no implicit access to team data (G6)",
    "G8": "an org viewer's seat acts as at most view_only (G8)",
}
TEAM_DATA = frozenset({"project", "run", "sweep", "report", "artifact"})


def _global_rules(sub: dict[str, Any], target: resolver.Resource) -> list[str]:
    """Global rules that shaped a deny, to name them (they are not policy lines: section 3)."""
    roles = sub["roles"]
    in_team = any(role.startswith("team:") for role in roles)
    notes = []
    if sub["added"] and not in_team and target.scope.team:
        notes.append("G4")
    if "org:admin" in roles and not in_team and target.scope.team and target.facts["kind"] in TEAM_DATA:
        notes.append("G6")
    if sub["org_role"] == "viewer":
        notes.append("G8")
    return notes


def _explain(action: str, sub: dict[str, Any], obj: dict[str, Any], verdict: Verdict) -> str:
    def show(facts: dict[str, Any]) -> str:
        parts = []
        for key, value in facts.items():
            if isinstance(value, frozenset):
                value = sorted(value)
            parts.append(f"{key}={value}")
        return ", ".join(parts)

    matched = set(verdict.granted) | set(verdict.denied)
    lines = [f"subject: {show(sub)}", f"resource: {show(obj)}", f"rules for {action}:"]
    for line in verdict.candidates:
        mark = "matched" if line in matched else "-"
        lines.append(f"  [{mark}] {line.eft} {_describe(line)}  {line.source}")
    return "\n".join(lines)
