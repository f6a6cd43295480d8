"""A live replica of the store: bootstrap from Snapshot, follow Watch, fail over, reconnect with backoff.

Stores: one or more instances of the store on one database (``authz serve --store A,B``). The
replica follows one at a time, the first reachable in the order given; when its stream fails it
moves to the next one at once and resumes Watch after its own revision, so no revision is missed
or applied twice (revision order is commit order on the database, the same for every instance).
Only after every store has failed in a row does it back off. It never goes backwards: a store
whose revision is below the replica's (another database, a restored backup) is left for the next.

Threads: one follower thread reads the store's streams and applies what they carry; gRPC
handler threads read; a watchdog thread gives up on a stream that has gone silent.

* ``state`` and everything in it is changed or replaced only by the follower, under ``lock``;
  readers hold ``lock`` for the length of one decision. A revision is applied whole or not at
  all: the parts of a revision bigger than one Watch message are converted and kept aside
  (``_pending``) and applied together, under the lock, when the last part arrives. A revision
  that begins with a reset (a replaced world) and a snapshot are built into a new WorldState off
  the lock (``_building``) and swapped in with one assignment, so readers keep the old state at
  the old revision (never revision 0) until the new one is complete. ``_pending``,
  ``_building`` and ``_partial`` belong to the follower (``apply_watch`` is called by one thread
  at a time) and need no lock.
* ``wait_for`` lets a caller block on the lock's condition until a revision is applied
  (min_revision, read-your-writes).
* ``connected``, ``last_contact``, ``last_error``, ``store_revision``, ``attempts``, ``failovers``
  and ``_current`` (so ``client`` and ``following``: the store followed, or being tried) are
  written by the follower only and read without a lock by health and metrics (one attribute at a
  time).
  Only a message from the store (changes, a snapshot chunk or a heartbeat) counts as contact:
  opening a stream contacts nobody, since gRPC connects lazily.
* ``_call`` (the open stream), ``_waiting_since`` (when the follower began waiting for its next
  message), ``_silence`` and ``_silenced`` are shared by the follower, the watchdog and
  ``stop()``, under ``_call_lock``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import grpc

from authz.state import WorldState
from store import convert
from store.client import StoreClient
from store.kinds import Row
from store.v1 import store_pb2

log = logging.getLogger("authz.replica")

BACKOFF_START = 0.1
BACKOFF_MAX = 5.0
# The store sends a heartbeat on an idle Watch stream every second (store.service.WATCH_HEARTBEAT):
# three missed in a row mean the stream is dead (a half-open connection, a hung store), not quiet.
SILENCE_TIMEOUT = 3.0
# Snapshot streams have no heartbeats, but a chunk comes every 2000 rows: far longer than this
# without one means the store is gone.
SNAPSHOT_SILENCE = 30.0
WATCHDOG_TICK = 0.25


class StoreBehind(Exception):
    """A store's revision is below the replica's: following it would go backwards."""


def state_from_snapshot(chunks: Iterable[store_pb2.SnapshotChunk]) -> WorldState:
    """The world of a store Snapshot stream, at its revision."""
    state = WorldState()
    for chunk in chunks:
        for entity in chunk.entities:
            kind, row = convert.entity_row(entity)
            state.apply("upsert", kind, row)
        state.revision = chunk.revision
        if chunk.last:
            break
    return state


class Replica:
    """The store's data in memory, at ``revision``."""

    def __init__(
        self,
        client: StoreClient | Sequence[StoreClient] | None = None,
        *,
        on_change: Callable[[WorldState], None] | None = None,
    ):
        # The store instances to follow, in order of preference (one database behind them all).
        self.clients: list[StoreClient] = (
            [] if client is None else [client] if isinstance(client, StoreClient) else list(client)
        )
        self._current = 0  # index in clients of the store followed (or being tried)
        self._failed = 0  # stores that failed in a row since the last message from one
        self.state = WorldState()
        self.lock = threading.RLock()
        self._advanced = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._on_change = on_change
        self.synced = threading.Event()  # set once the first snapshot is applied
        self.connected = False  # a message came on the open stream, and it has not failed since
        self.last_contact = 0.0  # time.monotonic() of the last message from the store
        self.last_error = ""
        self.store_revision = 0  # highest revision the store is known to have
        self.attempts = 0  # streams opened (Snapshot or Watch): connection attempts
        self.failovers = 0  # moves from one store to another after a failure
        self._backoff = BACKOFF_START  # the next wait after a failure; back to the start on contact
        # The revision being received in parts: its number, its changes so far (applied with the
        # last part), or the new world it builds when it began with a reset.
        self._partial: int | None = None
        self._pending: list[tuple[str, str, Row]] = []
        self._building: WorldState | None = None
        self._call_lock = threading.Lock()
        self._call: Any = None  # the open Snapshot or Watch stream, cancelled by stop() or the watchdog
        self._waiting_since: float | None = None  # the follower is blocked on _call for its next message
        self._silence = SILENCE_TIMEOUT  # how long _call may stay silent
        self._silenced = False  # the watchdog cancelled _call

    @property
    def client(self) -> StoreClient | None:
        """The store client followed (or being tried); None for a replica fed by hand."""
        return self.clients[self._current] if self.clients else None

    @property
    def following(self) -> str:
        """The address of the store followed (or being tried), for health and metrics."""
        client = self.client
        return client.address if client is not None else ""

    @property
    def revision(self) -> int:
        return self.state.revision

    @property
    def ready(self) -> bool:
        return self.synced.is_set()

    @contextmanager
    def reading(self) -> Iterator[WorldState]:
        """The current state, unchanged for the length of the block."""
        with self.lock:
            yield self.state

    def wait_for(self, revision: int, timeout: float | None) -> bool:
        """Block until ``revision`` is applied or ``timeout`` seconds pass; True if reached."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._advanced:
            while self.state.revision < revision:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._advanced.wait(remaining if remaining is None else min(remaining, 1.0))
        return True

    # -- loading --

    def load_snapshot(self, chunks: Iterator[store_pb2.SnapshotChunk]) -> None:
        """Build a new state from a snapshot stream and swap it in."""
        self.discard_partial()
        state = state_from_snapshot(chunks)
        self._swap(state)
        self.synced.set()
        log.info("replica loaded a snapshot at revision %d (%d rows)", state.revision, state.count())

    def apply_watch(self, response: store_pb2.WatchResponse) -> None:
        """Take one part of a revision; the revision is applied, whole, with its last part.

        Parts are converted as they come (off the lock); a heartbeat carries no revision and
        changes nothing. One thread at a time (the follower).
        """
        if response.heartbeat:
            return
        if response.revision <= self.state.revision:
            # Already applied (Watch resumes after our revision, so only a misbehaving store sends
            # this): applying it again would repeat changes.
            log.warning("ignored revision %d from the store: the replica is at %d", response.revision,
                        self.state.revision)  # fmt: skip
            self.discard_partial()
            return
        if response.revision != self._partial:
            self.discard_partial()  # parts of another revision, from a stream that broke, are void
            self._partial = response.revision
        for change in response.changes:
            op = convert.change_op(change)
            if op == "reset":
                # Everything held so far goes: the rest of the revision builds a new world.
                self._building = WorldState()
                self._pending = []
                continue
            kind, row = convert.entity_row(change.entity)
            if self._building is not None:
                self._building.apply(op, kind, row)
            else:
                self._pending.append((op, kind, row))
        if not response.revision_complete:
            return
        building, pending = self._building, self._pending
        self.discard_partial()
        if building is not None:
            building.revision = response.revision
            self._swap(building)
            return
        with self._advanced:
            state = self.state
            for op, kind, row in pending:
                state.apply(op, kind, row)
            state.revision = response.revision
            self._changed(state)
            self._advanced.notify_all()

    def discard_partial(self) -> None:
        """Forget the parts of an incomplete revision (its stream is gone; a new one resends them)."""
        self._partial = None
        self._pending = []
        self._building = None

    def _swap(self, state: WorldState) -> None:
        """Make a state built off the lock the current one, in one assignment."""
        with self._advanced:
            # A new world may hold other custom roles: engines rebuild theirs when this changes.
            state.custom_roles_version = self.state.custom_roles_version + 1
            self.state = state
            self._changed(state)
            self._advanced.notify_all()

    def _changed(self, state: WorldState) -> None:
        if self._on_change is not None:
            self._on_change(state)

    # -- following --

    def start(self) -> None:
        if not self.clients:
            raise RuntimeError("a replica without a store client cannot follow")
        self._threads = [
            threading.Thread(target=self._follow, name="replica", daemon=True),
            threading.Thread(target=self._watchdog, name="replica-watchdog", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._call_lock:
            call = self._call
        if call is not None:
            call.cancel()  # unblock the follower waiting on the stream
        for thread in self._threads:
            thread.join(10)

    def stopping(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True once stop() was called."""
        return self._stop.wait(timeout)

    def _follow(self) -> None:
        while not self._stop.is_set():
            client = self.clients[self._current]
            where = client.address
            try:
                if not self.synced.is_set():
                    self.load_snapshot(self._stream(client.snapshot, SNAPSHOT_SILENCE))
                self.discard_partial()  # a new stream resends a revision from its first part
                for response in self._stream(partial(self._watch, client), SILENCE_TIMEOUT):
                    self.apply_watch(response)
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
                self._lost(f"{where} ended the Watch stream")
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                code = exc.code()
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    # The store no longer keeps the history we need: start over from a snapshot.
                    log.warning("replica fell behind the change log; reloading a snapshot from %s", where)
                    self.synced.clear()
                    continue
                with self._call_lock:
                    silenced, self._silenced = self._silenced, False
                if silenced and code == grpc.StatusCode.CANCELLED:
                    self._lost(f"no message from {where} for over {self._silence:.0f}s")
                else:
                    self._lost(f"{where}: {code.name}: {exc.details()}")
            except StoreBehind as exc:
                if self._stop.is_set():
                    return
                self._lost(str(exc))
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.exception("replica error")
                self._lost(f"{where}: {type(exc).__name__}: {exc}")
            self._next_store()

    def _watch(self, client: StoreClient) -> Iterator[store_pb2.WatchResponse]:
        """A Watch stream of ``client`` resuming after the replica's revision: no gap, no revision twice."""
        return client.watch(self.revision)

    def _next_store(self) -> None:
        """After a failure: the next store at once, or, once every store failed in a row, a backoff."""
        self._failed += 1
        if len(self.clients) > 1:
            self._current = (self._current + 1) % len(self.clients)
            self.failovers += 1
            if self._failed < len(self.clients):
                log.warning("store unavailable (%s); trying %s", self.last_error, self.following)
                return
        self._failed = 0
        # Exponential backoff with jitter, capped; only a message from a store resets it.
        delay = self._backoff * random.uniform(0.5, 1.0)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        log.warning("store unavailable (%s); retrying %s in %.1fs", self.last_error, self.following, delay)
        self._stop.wait(delay)

    def _stream(self, open_call: Callable[[], Any], silence: float) -> Iterator[Any]:
        """The messages of a new stream; each one is contact with the store, unless it is behind us (StoreBehind)."""
        with self._call_lock:
            if self._stop.is_set():
                return
            self.attempts += 1
            call = open_call()
            self._call, self._silence, self._silenced = call, silence, False
        try:
            while True:
                with self._call_lock:
                    self._waiting_since = time.monotonic()
                try:
                    message = next(call)
                except StopIteration:
                    return
                finally:
                    # Time spent applying what came is not silence: only waiting for it is.
                    with self._call_lock:
                        self._waiting_since = None
                if message.revision < self.state.revision:
                    # A snapshot or a heartbeat below our revision: this store is behind us (a
                    # lagging or other database). Following it would go backwards; it is no contact.
                    raise StoreBehind(
                        f"{self.following} is behind this replica: it is at revision {message.revision}, "
                        f"the replica at {self.state.revision}"
                    )
                self._contact(message.revision)
                yield message
        finally:
            call.cancel()  # a stream given up on (an error applying it, say) must not stay open
            with self._call_lock:
                if self._call is call:
                    self._call = None

    def _contact(self, revision: int) -> None:
        self.last_contact = time.monotonic()
        self.store_revision = max(self.store_revision, revision)
        self.last_error = ""
        self.connected = True
        self._backoff = BACKOFF_START
        self._failed = 0

    def _lost(self, error: str) -> None:
        self.connected = False
        self.last_error = error

    def _watchdog(self) -> None:
        """Cancel the open stream when nothing came on it for too long (the follower reconnects)."""
        while not self._stop.wait(WATCHDOG_TICK):
            with self._call_lock:
                since, call = self._waiting_since, self._call
                if since is None or call is None or time.monotonic() - since <= self._silence:
                    continue
                self._silenced = True
                self._waiting_since = None
            log.warning("no message from the store for %.1fs; reconnecting", time.monotonic() - since)
            call.cancel()

    def staleness(self) -> float:
        """Seconds since the last message from the store (0 while connected: messages keep coming)."""
        if self.connected:
            return 0.0
        if not self.last_contact:
            return float("inf")
        return time.monotonic() - self.last_contact
