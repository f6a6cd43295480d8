"""The engine that serves: built for the current policy and the store's custom roles, swapped whole.

Shared between the reloader thread (:meth:`EngineHolder.set_policy`) and decision threads
(:meth:`EngineHolder.engine_for`, called with the state source's read lock held). Engines are
immutable; the holder replaces its reference under its own lock, so a decision uses one engine
from start to end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from authz.engines import Engine, engine_factory
from authz.policy import Policy, custom_role_lines
from authz.state import WorldState


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
        # Lines that raised while deciding under the policy serving: a broken policy that lint let
        # through. Counted for metrics; the last one kept for health (/policy NOT_SERVING). A new
        # policy starts clean.
        self.runtime_errors = 0
        self.runtime_error = ""

    @property
    def policy(self) -> Policy:
        return self._policy

    def set_policy(self, policy: Policy) -> None:
        """Swap in a new policy (already validated); custom-role lines are generated for it."""
        engine = self._factory(policy.with_lines(custom_role_lines(policy, self._roles)))
        with self._lock:
            self._policy = policy
            self._engine = engine
            self.runtime_error = ""

    def failed(self, message: str) -> None:
        """A line raised while deciding under the serving policy (see ``runtime_error``)."""
        with self._lock:
            self.runtime_errors += 1
            self.runtime_error = message

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
