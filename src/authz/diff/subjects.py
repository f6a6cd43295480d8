"""Subjects for a policy diff: the few a resource's scope relates to, one by one; everyone else in classes.

For a resource, the resolver gives a subject role tokens from the scopes the resource lives in
(its team, project, registry, org). A subject the scopes do not name (an *outsider*) gets only
its kind, ``system:admin`` when it is one, and its role in the resource's org; so outsiders with
the same kind, admin flag, org role (in that org or not) and the other facts the lines read are
decided alike, and one of them stands for all. *Insiders* (members and service accounts of the
scope's team, a project's added members and owner, a registry's grantees, a user for their own
subjects a line names by a literal) are looked at one by one; so is a user on their own user
resource, for which alone they hold ``self``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from authz.resolver import Scope
from authz.state import WorldState

Subject = tuple[str, str]  # (kind, id); anonymous is ("anonymous", "")
ANONYMOUS: Subject = ("anonymous", "")


def ref(subject: Subject) -> str:
    return "anonymous" if subject[0] == "anonymous" else f"{subject[0]}:{subject[1]}"


@dataclass(frozen=True)
class OutsiderClass:
    """Outsiders of one scope's org that the lines cannot tell apart."""

    key: tuple[object, ...]
    members: tuple[Subject, ...]  # every subject of the class, insiders of a given scope included
    member_set: frozenset[Subject]


class Subjects:
    """Every subject of a world, indexed for finding insiders and outsider classes quickly."""

    def __init__(self, state: WorldState, *, teams_matter: bool, literals: set[str]) -> None:
        self.state = state
        self.accounts_of: dict[str, list[str]] = defaultdict(list)
        for key, row in state.rows["service_account"].items():
            self.accounts_of[row["team"]].append(key[0])
        self.all: list[Subject] = [("user", key[0]) for key in state.rows["user"]]
        self.all += [("service_account", key[0]) for key in state.rows["service_account"]]
        self.all.append(ANONYMOUS)
        # Subjects a line names by a literal (r.sub.ref == 'user:bob'): every scope looks at them alone.
        self.named: set[Subject] = {s for s in self.all if s[1] in literals or ref(s) in literals}
        if "\0any" in literals:
            self.named = set(self.all)
        self._by_org: dict[str, list[OutsiderClass]] = {}
        self._partitions: dict[tuple[object, ...], list[Subject]] = defaultdict(list)
        for subject in self.all:
            self._partitions[self._partition(subject, teams_matter)].append(subject)

    def _partition(self, subject: Subject, teams_matter: bool) -> tuple[object, ...]:
        kind, ident = subject
        if kind != "user":
            return (kind, False, "", "", frozenset())
        user = self.state.get("user", ident)
        assert user is not None
        teams = frozenset(self.state.user_teams.get(ident, ())) if teams_matter else frozenset()
        return (kind, bool(user["system_admin"]), user["org"], user["role"] if user["org"] else "", teams)

    def outsider_classes(self, org: str) -> list[OutsiderClass]:
        """Classes of subjects alike for any scope in ``org`` that does not name them."""
        found = self._by_org.get(org)
        if found is None:
            merged: dict[tuple[object, ...], list[Subject]] = defaultdict(list)
            for (kind, admin, their_org, role, teams), members in self._partitions.items():
                merged[(kind, admin, bool(org) and their_org == org, role, teams)].extend(members)
            found = self._by_org[org] = [
                OutsiderClass(key, tuple(members), frozenset(members)) for key, members in merged.items()
            ]
        return found

    def insiders(self, scope: Scope, kind: str, ident: str) -> set[Subject]:
        """The subjects the scope of resource ``kind:ident`` relates to, and those named by literals."""
        state = self.state
        found = set(self.named)
        for team in {scope.team, scope.legacy_team} - {""}:
            found |= {("user", user) for user in state.team_members.get(team, {})}
            found |= {("service_account", account) for account in self.accounts_of.get(team, ())}
        if scope.project:
            for member in state.project_members.get(scope.project, ()):
                member_kind, _, member_id = member.partition(":")
                found.add((member_kind, member_id))
        if scope.project_owner:
            found.add(("user", scope.project_owner.partition(":")[2]))
        if scope.registry:
            for member in state.registry_grants.get(scope.registry, {}):
                member_kind, _, member_id = member.partition(":")
                if member_kind == "team":
                    found |= {("user", user) for user in state.team_members.get(member_id, {})}
                    found |= {("service_account", account) for account in self.accounts_of.get(member_id, ())}
                else:
                    found.add((member_kind, member_id))
        return found

    def matching(self, value: object, fact: str) -> set[Subject]:
        """Subjects whose ``fact`` (id or ref) equals ``value``, or is in it when it is a set."""
        values = value if isinstance(value, frozenset | set) else {value}
        found: set[Subject] = set()
        for item in values:
            if not isinstance(item, str) or not item:
                continue
            if fact == "ref":
                kind, sep, ident = item.partition(":")
                if item == "anonymous":
                    found.add(ANONYMOUS)
                elif sep and kind in ("user", "service_account") and self.state.get(kind, ident):
                    found.add((kind, ident))
            else:
                found |= {(kind, item) for kind in ("user", "service_account") if self.state.get(kind, item)}
        return found
