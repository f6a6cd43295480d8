"""Proof by decisions that migrating a legacy model registry keeps its permission boundaries (MG2, MG3).

Given the world before a migration (a store Snapshot loaded into a WorldState, or
:func:`authz.testing.state_from_document`) and the changes the store plans for it
(``MigrateLegacyRegistry`` with ``dry_run``), :func:`prove` builds the world after, then asks
the decision engine, for every user of the team's org except org admins (who become registry
admins everywhere: MG2's one intended difference) and every model of the team's legacy
registry, the same question before and after:

=========  =================================================  ===============================================
check      before (legacy registry)                           after (org model registry)
=========  =================================================  ===============================================
view       ``model_registry.view`` registered_model:<id>      ``collection.view`` collection:<id>
download   ``model_registry.download`` registered_model:<id>  ``version.download`` version:<vid>, each version
link       ``model_registry.link_model`` registered_model:<id> ``version.link`` collection:<id>
                                                              (``artifact_type=model``)
add_alias  ``model_registry.add_alias`` registered_model:<id>  ``version.edit_alias`` version:<vid>, each
           (a non-protected alias, ``candidate``)             version, same alias
=========  =================================================  ===============================================

and, for MG3, ``model_registry.view`` and ``model_registry.download`` on the legacy model
itself, which stays readable. Every pair that decides differently is a :class:`Difference`;
there must be none.

"Before" means the legacy registry in service: when the snapshot already shows it
``migrating`` or ``migrated`` (frozen by M7, or a second run), the decisions before are taken
with its state set back to ``active``; otherwise every member's link and add_alias would count
as gained, hiding real differences. The world itself is never modified: both states are copies.

:func:`migrate_registry` is the whole workflow of ``authz registry migrate``: snapshot and plan,
proof, then the migration when the proof holds (or is overridden); the command only renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from authz.decider import Decider
from authz.decision import Request
from authz.policy import Policy
from authz.replica import state_from_snapshot
from authz.state import WorldState
from authz.testing import decider_for
from store import convert
from store.client import StoreClient
from store.repository import Change
from store.v1 import store_pb2

ALIAS = "candidate"
ARTIFACT_TYPE = "model"


class ProofError(ValueError):
    """The proof cannot be made: unknown team, no legacy registry, a malformed plan."""


@dataclass(frozen=True)
class Difference:
    """One question the migration answers differently for one user and one model."""

    user: str
    model: str
    check: str  # view | download | link | add_alias | legacy view | legacy download
    before_action: str
    before_resource: str
    after_action: str
    after_resource: str
    before: bool
    after: bool
    before_reason: str
    after_reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "user": self.user, "model": self.model, "check": self.check,
            "before": {"action": self.before_action, "resource": self.before_resource, "allowed": self.before,
                       "reason": self.before_reason},
            "after": {"action": self.after_action, "resource": self.after_resource, "allowed": self.after,
                      "reason": self.after_reason},
        }  # fmt: skip


@dataclass
class Proof:
    """The outcome: how much was compared, and every difference found."""

    team: str
    org: str
    state_before: str
    users: int = 0
    org_admins_excluded: int = 0
    models: int = 0
    decisions: int = 0  # (before, after) pairs compared
    differences: list[Difference] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.differences

    def summary(self) -> dict[str, object]:
        return {
            "team": self.team, "org": self.org, "state_before": self.state_before, "users": self.users,
            "org_admins_excluded": self.org_admins_excluded, "models": self.models, "decisions": self.decisions,
            "differences": [d.as_dict() for d in self.differences], "holds": self.holds,
        }  # fmt: skip


@dataclass(frozen=True)
class _Pair:
    check: str
    before: Request
    after: Request


def copy_state(state: WorldState) -> WorldState:
    """A copy of ``state`` with its own rows and indexes, at the same revision."""
    copy = WorldState()
    for kind, rows in state.rows.items():
        for row in rows.values():
            copy.apply("upsert", kind, dict(row))
    copy.revision = state.revision
    return copy


def apply_changes(state: WorldState, changes: Iterable[Change]) -> WorldState:
    """A copy of ``state`` with ``changes`` applied, one revision later (``state`` is left alone)."""
    after = copy_state(state)
    for change in changes:
        if change.op not in ("upsert", "delete", "reset"):
            raise ProofError(f"unknown change op {change.op!r}")
        if change.op != "reset" and change.kind not in after.rows:
            raise ProofError(f"unknown entity kind {change.kind!r} in the planned changes")
        after.apply(change.op, change.kind, dict(change.data))
    after.revision = state.revision + 1
    return after


def changes_from_messages(messages: Iterable[store_pb2.Change]) -> list[Change]:
    """The store's ``repeated Change`` (a plan, a Watch revision) as repository Changes."""
    changes = []
    for message in messages:
        op = convert.change_op(message)
        if op == "reset":
            changes.append(Change("reset", "", {}))
            continue
        kind, row = convert.entity_row(message.entity)
        changes.append(Change(op, kind, row))
    return changes


def count_work(before: WorldState, team: str) -> int:
    """How many (before, after) pairs :func:`prove` compares for ``team`` (for progress bars)."""
    users, _, models = _scope(before, team)
    versions = _versions_by_model(before, models)
    # Per model: view, link, legacy view, legacy download; per version: download, add_alias.
    return len(users) * sum(4 + 2 * len(versions[model]) for model in models)


def prove(
    before: WorldState,
    changes: Iterable[Change],
    team: str,
    *,
    policy: Policy | None = None,
    engine: str = "compiled",
    progress: Callable[[int], None] | None = None,
) -> Proof:
    """Compare the decisions of MG2 (and MG3's legacy reads) before and after ``changes``.

    ``progress(n)`` is called after each user with the number of pairs just compared.
    """
    users, admins, models = _scope(before, team)
    legacy = before.rows["model_registry"][(team,)]
    team_row = before.get("team", team)
    assert team_row is not None
    proof = Proof(team=team, org=team_row["org"], state_before=legacy["state"])
    proof.users, proof.org_admins_excluded, proof.models = len(users), admins, len(models)
    baseline = copy_state(before)
    if legacy["state"] != "active":
        baseline.apply("upsert", "model_registry", {**legacy, "state": "active"})
    after = apply_changes(before, changes)
    deciders = (decider_for(baseline, policy, engine), decider_for(after, policy, engine))
    pairs = _pairs(before, after, team, models)
    for user in users:
        compared = _compare(deciders, user, pairs, proof.differences)
        proof.decisions += compared
        if progress is not None:
            progress(compared)
    return proof


def _scope(state: WorldState, team: str) -> tuple[list[str], int, list[str]]:
    """(users of the team's org except org admins, how many org admins, the team's legacy models)."""
    team_row = state.get("team", team)
    if team_row is None:
        raise ProofError(f"team {team} does not exist in the world before the migration")
    if (team,) not in state.rows["model_registry"]:
        raise ProofError(f"team {team} has no legacy model registry in the world before the migration")
    org = team_row["org"]
    people = sorted(row for (row,), user in state.rows["user"].items() if user["org"] == org)
    users = [u for u in people if state.rows["user"][(u,)]["role"] != "admin"]
    models = sorted(model_id for (model_id,), model in state.rows["registered_model"].items() if model["team"] == team)
    return users, len(people) - len(users), models


def _versions_by_model(state: WorldState, models: Sequence[str]) -> dict[str, list[str]]:
    """The legacy version ids of each model, sorted."""
    versions: dict[str, list[str]] = {model: [] for model in models}
    for (vid,), version in state.rows["model_version"].items():
        if version["model"] in versions:
            versions[version["model"]].append(vid)
    return {model: sorted(ids) for model, ids in versions.items()}


def _alias(before: WorldState, after: WorldState, team: str, model: str) -> str:
    """``candidate``, or the first ``candidate-N`` that neither side protects (MG2 compares a non-protected alias)."""
    protected = set(before.rows["model_registry"][(team,)]["protected_aliases"])
    collection = after.get("collection", model)
    if collection is not None:
        protected |= set(collection["protected_aliases"])
    alias, n = ALIAS, 1
    while alias in protected:
        n += 1
        alias = f"{ALIAS}-{n}"
    return alias


def _pairs(before: WorldState, after: WorldState, team: str, models: Sequence[str]) -> list[tuple[str, list[_Pair]]]:
    """For each model, the (before, after) questions to ask every user, with ``{user}`` as the subject."""
    result = []
    versions_of = _versions_by_model(before, models)
    for model in models:
        alias = {"alias": _alias(before, after, team, model)}
        legacy = ("registered_model", model)
        versions = versions_of[model]
        pairs = [
            _Pair("view", _ask("model_registry.view", legacy), _ask("collection.view", ("collection", model))),
            *(_Pair("download", _ask("model_registry.download", legacy), _ask("version.download", ("version", v)))
              for v in versions),
            _Pair("link", _ask("model_registry.link_model", legacy),
                  _ask("version.link", ("collection", model), {"artifact_type": ARTIFACT_TYPE})),
            *(_Pair("add_alias", _ask("model_registry.add_alias", legacy, alias),
                    _ask("version.edit_alias", ("version", v), alias)) for v in versions),
            # MG3: the legacy registry stays readable for reference.
            _Pair("legacy view", _ask("model_registry.view", legacy), _ask("model_registry.view", legacy)),
            _Pair("legacy download", _ask("model_registry.download", legacy), _ask("model_registry.download", legacy)),
        ]  # fmt: skip
        result.append((model, pairs))
    return result


def _ask(action: str, resource: tuple[str, str], context: dict[str, str] | None = None) -> Request:
    return Request("user", "", action, resource[0], resource[1], context or {})


def _as(user: str, request: Request) -> Request:
    return Request("user", user, request.action, request.resource_kind, request.resource_id, request.context)


def _compare(
    deciders: tuple[Decider, Decider], user: str, pairs: list[tuple[str, list[_Pair]]], out: list[Difference]
) -> int:
    """Ask one user's questions on both sides; append the differences; return how many pairs were compared."""
    flat = list(_flatten(pairs))
    before = deciders[0].check_many([_as(user, pair.before) for _, pair in flat])
    after = deciders[1].check_many([_as(user, pair.after) for _, pair in flat])
    for (model, pair), was, now in zip(flat, before, after, strict=True):
        if was.allowed != now.allowed:
            out.append(
                Difference(
                    user=user, model=model, check=pair.check, before_action=pair.before.action,
                    before_resource=pair.before.resource, after_action=pair.after.action,
                    after_resource=pair.after.resource, before=was.allowed, after=now.allowed,
                    before_reason=was.reason, after_reason=now.reason,
                )
            )  # fmt: skip
    return len(flat)


def _flatten(pairs: list[tuple[str, list[_Pair]]]) -> Iterator[tuple[str, _Pair]]:
    for model, items in pairs:
        for pair in items:
            yield model, pair


def snapshot_and_plan(
    client: StoreClient, team: str, *, attempts: int = 3
) -> tuple[WorldState, store_pb2.MigrateLegacyRegistryResponse]:
    """The store's world and its dry-run plan for ``team``, both at the same revision.

    Raises grpc.RpcError for the store's refusals (NOT_FOUND, ALREADY_EXISTS, ...) and ProofError
    when writes keep landing between the snapshot and the plan.
    """
    seen: list[int] = []
    for _ in range(attempts):
        state = state_from_snapshot(client.snapshot())
        request = store_pb2.MigrateLegacyRegistryRequest(team=team, dry_run=True)
        plan: store_pb2.MigrateLegacyRegistryResponse = client.call("MigrateLegacyRegistry", request)
        if plan.revision == state.revision:
            return state, plan
        seen += [state.revision, plan.revision]
    raise ProofError(
        f"the store kept changing between the snapshot and the plan (revisions {', '.join(map(str, seen))}); "
        "retry when writes are quieter"
    )


@dataclass(frozen=True)
class MigrationOutcome:
    """What :func:`migrate_registry` found and did: the plan, its proof, and the migration (if any)."""

    team: str
    dry_run: bool
    plan: store_pb2.MigrateLegacyRegistryResponse
    proof: Proof
    done: store_pb2.MigrateLegacyRegistryResponse | None  # None: dry run, or refused by the proof

    @property
    def matches(self) -> bool:
        """Whether what was committed is what was proved (a write between the plan and the migration
        can change what is done); true when nothing was migrated."""
        return self.done is None or list(self.done.changes) == list(self.plan.changes)

    @property
    def refused(self) -> bool:
        """The proof found decisions that would change and nothing was migrated."""
        return not self.proof.holds and self.done is None


def migrate_registry(
    client: StoreClient,
    team: str,
    *,
    policy: Policy | None = None,
    engine: str = "compiled",
    dry_run: bool = False,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> MigrationOutcome:
    """Migrate ``team``'s legacy model registry after proving that no decision changes (MG1-MG4).

    Takes a snapshot and the store's dry-run plan at the same revision, proves the plan
    (:func:`prove`), then, unless ``dry_run``, migrates when the proof holds or ``force`` is set.
    ``progress(n, total)`` is called with ``n=0`` before the proof starts and then after each user
    with the pairs just compared. Raises grpc.RpcError for the store's refusals and
    :class:`ProofError` when the proof cannot be made.
    """
    before, plan = snapshot_and_plan(client, team)
    changes = changes_from_messages(plan.changes)
    total = count_work(before, team)
    if progress is not None:
        progress(0, total)
    proof = prove(
        before, changes, team, policy=policy, engine=engine,
        progress=None if progress is None else (lambda n: progress(n, total)),
    )  # fmt: skip
    done = None
    if not dry_run and (proof.holds or force):
        request = store_pb2.MigrateLegacyRegistryRequest(team=team)
        done = client.call("MigrateLegacyRegistry", request, timeout=None)
    return MigrationOutcome(team=team, dry_run=dry_run, plan=plan, proof=proof, done=done)
