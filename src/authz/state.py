"""The decision service's in-memory copy of the store: rows by kind and key, plus the indexes
the resolver walks (team members, project members, registry grants, model-registry admins).

A WorldState is mutated only by its Replica's follower thread, under the replica's lock;
readers hold the same lock (see :mod:`authz.replica`). The decider reads states through the
small :class:`StateSource` protocol: the replica is one, :class:`FixedState` (a world that never
changes: tests, tools, the playground) another.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from store.kinds import CONTENT_KINDS, KINDS, Key, Row, key_of


class ContentRow:
    """A run, sweep, report or artifact, kept compactly: these are most of a large world.

    Slots instead of a dict, and the repeated strings (project, creator, type) shared through
    sys.intern, so a million runs hold one copy of each project and creator name. Reads like the
    mapping rows of other kinds (``row["project"]``, ``row.get("attributed_to", "")``).
    """

    __slots__ = ("aliases", "attributed_to", "creator", "id", "project", "type")

    def __init__(self, row: Row) -> None:
        for name, value in row.items():
            setattr(self, name, value if name == "id" or not isinstance(value, str) else sys.intern(value))

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    def keys(self) -> list[str]:
        return [name for name in self.__slots__ if hasattr(self, name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ContentRow | dict):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def items(self) -> list[tuple[str, Any]]:
        return [(name, getattr(self, name)) for name in self.keys()]


def _compact(row: Row) -> Row:
    return ContentRow(row)  # type: ignore[return-value]


class WorldState:
    """Rows and indexes at one store revision."""

    def __init__(self) -> None:
        self.revision = 0
        self.rows: dict[str, dict[Key, Row]] = {kind: {} for kind in KINDS}
        self.team_members: dict[str, dict[str, str]] = defaultdict(dict)  # team -> user -> role
        self.user_teams: dict[str, set[str]] = defaultdict(set)  # user -> teams
        self.project_members: dict[str, set[str]] = defaultdict(set)  # project -> member refs
        self.model_admins: dict[str, set[str]] = defaultdict(set)  # team -> users (MRA)
        self.registry_grants: dict[str, dict[str, str]] = defaultdict(dict)  # registry -> ref -> role
        self.projects_by_owner: dict[str, set[str]] = defaultdict(set)  # "team:x" / "user:y" -> projects
        self.open_projects: set[str] = set()  # public and open projects: anyone may view them
        # project -> ids of its runs, sweeps, reports, artifacts
        self.content: dict[str, dict[str, set[str]]] = {kind: defaultdict(set) for kind in CONTENT_KINDS}
        self.custom_roles_version = 0  # bumped on every custom-role change; engines remember theirs
        # What the resolver derives once per project (its facts and scopes, the owning team's members):
        # kept until the project, its owning team or user, or that team's memberships change (apply).
        self.project_parts: dict[str, Any] = {}

    def get(self, kind: str, ident: str) -> Row | None:
        return self.rows[kind].get((ident,))

    def count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def apply(self, op: str, kind: str, row: Row) -> None:
        """Apply one change of the feed: ``upsert`` (whole row), ``delete``, or ``reset``."""
        if op == "reset":
            version = self.custom_roles_version
            self.__init__()  # type: ignore[misc]
            self.custom_roles_version = version + 1
            return
        table = self.rows[kind]
        key = key_of(kind, row)
        old = table.pop(key, None)
        if old is not None:
            self._unindex(kind, old)
        if op == "upsert":
            if kind in CONTENT_KINDS:
                row = _compact(row)
            table[key] = row
            self._index(kind, row)
        if kind == "custom_role":
            self.custom_roles_version += 1
        if self.project_parts:
            self._forget_parts(kind, row)

    def _forget_parts(self, kind: str, row: Row) -> None:
        """Drop the derived project facts a change of ``kind`` (to ``row``, by key) may have made stale."""
        if kind == "project":
            self.project_parts.pop(row["id"], None)
            return
        if kind in {"team", "membership"}:
            owner = f"team:{row['id'] if kind == 'team' else row['team']}"
        elif kind == "user":
            owner = f"user:{row['id']}"
        else:
            return
        for project in self.projects_by_owner.get(owner, ()):
            self.project_parts.pop(project, None)

    def _index(self, kind: str, row: Row) -> None:
        if kind == "membership":
            self.team_members[row["team"]][row["user"]] = row["role"]
            self.user_teams[row["user"]].add(row["team"])
        elif kind == "project_member":
            self.project_members[row["project"]].add(row["member"])
        elif kind == "model_registry_admin":
            self.model_admins[row["team"]].add(row["user"])
        elif kind == "registry_member":
            self.registry_grants[row["registry"]][row["member"]] = row["role"]
        elif kind == "project":
            self.projects_by_owner[row["owner"]].add(row["id"])
            if row["visibility"] in ("public", "open"):
                self.open_projects.add(row["id"])
        elif kind in CONTENT_KINDS:
            self.content[kind][row["project"]].add(row["id"])

    def _unindex(self, kind: str, row: Row) -> None:
        if kind == "membership":
            self.team_members[row["team"]].pop(row["user"], None)
            self.user_teams[row["user"]].discard(row["team"])
        elif kind == "project_member":
            self.project_members[row["project"]].discard(row["member"])
        elif kind == "model_registry_admin":
            self.model_admins[row["team"]].discard(row["user"])
        elif kind == "registry_member":
            self.registry_grants[row["registry"]].pop(row["member"], None)
        elif kind == "project":
            self.projects_by_owner[row["owner"]].discard(row["id"])
            self.open_projects.discard(row["id"])
        elif kind in CONTENT_KINDS:
            self.content[kind][row["project"]].discard(row["id"])


class StateSource(Protocol):
    """Where the decider reads the world: a state held still while read, its revision, a wait."""

    @property
    def revision(self) -> int: ...

    @property
    def ready(self) -> bool:
        """True once a first state is loaded (before that, decisions would know nobody)."""
        ...

    def reading(self) -> AbstractContextManager[WorldState]:
        """The current state, unchanged for the length of the block."""
        ...

    def wait_for(self, revision: int, timeout: float | None) -> bool:
        """Block until ``revision`` is reached or ``timeout`` seconds pass; True if reached."""
        ...


class FixedState:
    """A :class:`StateSource` over one state that never changes."""

    def __init__(self, state: WorldState) -> None:
        self.state = state

    @property
    def revision(self) -> int:
        return self.state.revision

    @property
    def ready(self) -> bool:
        return True

    @contextmanager
    def reading(self) -> Iterator[WorldState]:
        yield self.state

    def wait_for(self, revision: int, timeout: float | None) -> bool:
        return self.state.revision >= revision
