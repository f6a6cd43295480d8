"""ListResources and ListSubjects: exact lists, found through the structure of policy and data.

Exact: every id returned is allowed by Check at the same revision (each candidate is checked),
and every allowed id is returned (candidates are a superset of what the policy can allow).

Candidates come from structure, not from scanning a kind:
* Every action inside a project requires project.view of it (g3 lines, P0). So the resources of
  such an action are among the contents of the projects the subject could view, and those are
  among: the projects of its teams, its personal projects, the projects it was added to, and
  public or open projects. That holds as long as every project.view line is scoped that way;
  :func:`project_scoped` checks the policy and falls back to scanning all projects otherwise.
* Other kinds (teams, orgs, registries, collections, ...) are small; they are scanned.
* Subjects: the members of the resource's scopes, unless a line grants the action to a broad
  role (anyone, authenticated, any org member...), in which case every subject of the kind is a
  candidate.
Candidates are checked in order (contents: by project, then id) and only until the page is
full, so a first page costs what it returns, and a full listing grows with what the subject can
see, not with the world.

:func:`list_actions` (AuthZEN's action search) lists the actions a subject may do on one resource:
the candidates are the actions that apply to its kind, a few dozen at most.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from authz import resolver
from authz.decider import Decider
from authz.decision import Decision, Request, validate
from authz.engines import role_closure
from authz.errors import InvalidRequest
from authz.policy import Policy
from authz.state import WorldState
from servicekit import pages
from servicekit.text import clip
from store.kinds import CONTENT_KINDS

MAX_PAGE = 1000
DEFAULT_PAGE = 100
SCOPED_ROLES = ("team:", "project:owner", "mra", "registry:", "self")


@dataclass(frozen=True)
class Page:
    ids: tuple[str, ...]
    next_token: str
    revision: int
    policy_version: str


def decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        (after,) = pages.decode(token, 1)
    except pages.BadToken as exc:
        raise InvalidRequest("page_token", str(exc)) from None
    return after


def encode_token(after: str) -> str:
    return pages.encode([after])


def page_size(value: int) -> int:
    if value < 0 or value > MAX_PAGE:
        raise InvalidRequest("page_size", f"must be between 1 and {MAX_PAGE} (0 means {DEFAULT_PAGE})")
    return value or DEFAULT_PAGE


def project_scoped(policy: Policy) -> bool:
    """True when every project.view line is granted through the project's team, its owner, its
    added members, or visibility public/open: the shapes candidate_projects covers."""
    closure = role_closure(policy.lines)
    for line in policy.p_lines:
        if line.act != "project.view" or line.eft != "allow":
            continue
        holders = {line.role} | {role for role, held in closure.items() if line.role in held}
        if all(role.startswith("team:") or role == "project:owner" for role in holders):
            continue
        if "r.sub.added" in line.cond or "r.obj.visibility == 'public'" in line.cond:
            continue
        return False
    return True


def candidate_projects(state: WorldState, subject_kind: str, subject_id: str) -> set[str]:
    projects = set(state.open_projects)
    if subject_kind == "user":
        ref = f"user:{subject_id}"
        for team in state.user_teams.get(subject_id, ()):
            projects |= state.projects_by_owner.get(f"team:{team}", set())
        projects |= state.projects_by_owner.get(ref, set())
    elif subject_kind == "service_account":
        ref = f"service_account:{subject_id}"
        account = state.get("service_account", subject_id)
        if account is not None:
            projects |= state.projects_by_owner.get(f"team:{account['team']}", set())
    else:
        return projects
    projects |= {project for project, members in state.project_members.items() if ref in members}
    return projects


def _all_ids(state: WorldState, kind: str) -> Iterable[str]:
    table = {"version": "collection_version"}.get(kind, kind)
    if kind == "system":
        return ["main"]
    return (key[0] for key in state.rows[table])


def content_pages(
    decider: Decider,
    state: WorldState,
    request: Request,
    after: str,
    size: int,
    memo: dict[tuple[str, str], Decision],
) -> tuple[list[str], str]:
    """Contents of the projects the subject may view, in (project, id) order; the token names the
    last (project, id) returned. A project whose project.view is denied is skipped whole (P0)."""
    after_project, _, after_id = after.partition("/")
    projects = sorted(candidate_projects(state, request.subject_kind, request.subject_id))
    index = state.content[request.resource_kind]
    ids: list[str] = []
    for project in projects[bisect.bisect_left(projects, after_project) if after_project else 0 :]:
        members = index.get(project)
        if not members:
            continue
        gate = Request(request.subject_kind, request.subject_id, "project.view", "project", project, request.context)
        if not decider.decide(gate, memo).allowed:
            continue
        for ident in sorted(members):
            if project == after_project and ident <= after_id:
                continue
            check = Request(request.subject_kind, request.subject_id, request.action, request.resource_kind, ident,
                            request.context)  # fmt: skip
            if decider.decide(check, memo).allowed:
                ids.append(ident)
                if len(ids) == size:
                    return ids, f"{project}/{ident}"
    return ids, ""


def resource_candidates(
    decider: Decider, state: WorldState, subject_kind: str, subject_id: str, action: str, kind: str
) -> list[str]:
    engine = decider.engines.engine_for(state)
    gated = "project.view" in engine.requires(action) or action == "project.view"
    if kind == "project" and gated and project_scoped(engine.policy):
        return sorted(candidate_projects(state, subject_kind, subject_id))
    return sorted(_all_ids(state, kind))


def list_resources(
    decider: Decider,
    *,
    subject_kind: str,
    subject_id: str,
    action: str,
    kind: str,
    context: dict[str, str],
    size: int,
    token: str,
) -> Page:
    if kind not in resolver.RESOURCE_KINDS:
        raise InvalidRequest("resource_kind", f"{clip(kind)} is not one of {', '.join(resolver.RESOURCE_KINDS)}")
    validate(Request(subject_kind, subject_id, action, kind, "any", context))
    after = decode_token(token)
    size = page_size(size)
    with decider.source.reading() as state:
        memo: dict[tuple[str, str], Decision] = {}
        engine = decider.engines.engine_for(state)
        if kind in CONTENT_KINDS and "project.view" in engine.requires(action) and project_scoped(engine.policy):
            request = Request(subject_kind, subject_id, action, kind, "any", context)
            found, last = content_pages(decider, state, request, after, size, memo)
            return Page(tuple(found), encode_token(last) if last else "", state.revision, engine.policy.version)
        candidates = resource_candidates(decider, state, subject_kind, subject_id, action, kind)

        def allowed(ident: str) -> bool:
            request = Request(subject_kind, subject_id, action, kind, ident, context)
            return decider.decide(request, memo).allowed

        ids, more = _fill(candidates, after, size, allowed)
        return Page(tuple(ids), encode_token(ids[-1]) if more else "", state.revision, decider.engines.policy.version)


def _fill(candidates: list[str], after: str, size: int, allowed: Callable[[str], bool]) -> tuple[list[str], bool]:
    """The first ``size`` allowed candidates after ``after``, and whether the page is full (more
    may follow: the next page can be empty, as with most paged APIs)."""
    start = bisect.bisect_right(candidates, after) if after else 0
    ids: list[str] = []
    for ident in candidates[start:]:
        if allowed(ident):
            ids.append(ident)
            if len(ids) == size:
                return ids, True
    return ids, False


BROAD = ("anyone", "authenticated", "user", "service_account", "org:", "system:")


def subject_candidates(
    decider: Decider, state: WorldState, action: str, kind: str, ident: str, subject_kind: str
) -> list[str]:
    engine = decider.engines.engine_for(state)
    actions = [action, *engine.requires(action)]
    roles = {line.role for line in engine.policy.p_lines if line.act in actions and line.eft == "allow"}
    # Every token that holds one of those roles through the hierarchy (org admins hold
    # registry:admin, for instance) is a way in.
    closure = role_closure(engine.policy.lines)
    holders = roles | {token for token, held in closure.items() if held & roles}
    table = "user" if subject_kind == "user" else "service_account"
    if any(role.startswith(BROAD) for role in holders):
        return sorted(key[0] for key in state.rows[table])
    # Only scoped roles: the subjects related to the resource's scopes.
    target = resolver.resource(state, kind, ident)
    if target is None:
        return []
    scope = target.scope
    people: set[str] = set()
    accounts: set[str] = set()
    for team in {scope.team, scope.legacy_team} - {""}:
        people |= set(state.team_members.get(team, {}))
        accounts |= {key[0] for key, row in state.rows["service_account"].items() if row["team"] == team}
    if scope.project_owner:
        people.add(scope.project_owner.partition(":")[2])
    if kind == "user":
        people.add(ident)
    for ref, _ in state.registry_grants.get(scope.registry, {}).items() if scope.registry else ():
        member_kind, _, member = ref.partition(":")
        if member_kind == "user":
            people.add(member)
        elif member_kind == "team":
            people |= set(state.team_members.get(member, {}))
            accounts |= {key[0] for key, row in state.rows["service_account"].items() if row["team"] == member}
    return sorted(people if subject_kind == "user" else accounts)


def list_subjects(
    decider: Decider,
    *,
    action: str,
    kind: str,
    ident: str,
    subject_kind: str,
    context: dict[str, str],
    size: int,
    token: str,
) -> Page:
    if subject_kind not in ("user", "service_account"):
        raise InvalidRequest("subject_kind", f"{clip(subject_kind)} is not user or service_account")
    validate(Request(subject_kind, "any", action, kind, ident, context))
    after = decode_token(token)
    size = page_size(size)
    with decider.source.reading() as state:
        candidates = subject_candidates(decider, state, action, kind, ident, subject_kind)

        def allowed(subject: str) -> bool:
            return decider.decide(Request(subject_kind, subject, action, kind, ident, context)).allowed

        ids, more = _fill(candidates, after, size, allowed)
        return Page(tuple(ids), encode_token(ids[-1]) if more else "", state.revision, decider.engines.policy.version)


def list_actions(
    decider: Decider,
    *,
    subject_kind: str,
    subject_id: str,
    kind: str,
    ident: str,
    context: dict[str, str],
    size: int,
    token: str,
) -> Page:
    """The actions the subject may do on ``kind:ident``, in name order: every action that applies to
    the kind (its g2 lines), each checked like a Check. An unknown kind has no actions."""
    validate(Request(subject_kind, subject_id, "any.action", kind, ident, context))
    after = decode_token(token)
    size = page_size(size)
    with decider.source.reading() as state:
        engine = decider.engines.engine_for(state)
        candidates = sorted(action for action in engine.policy.actions if engine.applies(action, kind))
        memo: dict[tuple[str, str], Decision] = {}

        def allowed(action: str) -> bool:
            return decider.decide(Request(subject_kind, subject_id, action, kind, ident, context), memo).allowed

        ids, more = _fill(candidates, after, size, allowed)
        return Page(tuple(ids), encode_token(ids[-1]) if more else "", state.revision, engine.policy.version)
