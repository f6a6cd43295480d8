"""A live replica of the store: bootstrap from Snapshot, follow Watch, reconnect with backoff.

Threads: one follower thread applies changes; gRPC handler threads read. Both go through
``lock``: the follower holds it while it applies one revision (so a reader never sees half a
revision), readers hold it for the length of one decision. A snapshot is loaded into a new
WorldState off the lock and swapped in with one assignment. ``wait_for`` lets a caller block
until a revision is applied (min_revision, read-your-writes).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from authz.state import WorldState
from store import convert
from store.client import StoreClient
from store.v1 import store_pb2

log = logging.getLogger("authz.replica")

BACKOFF_START = 0.1
BACKOFF_MAX = 5.0


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

    def __init__(self, client: StoreClient | None = None, *, on_change: Callable[[WorldState], None] | None = None):
        self.client = client
        self.state = WorldState()
        self.lock = threading.RLock()
        self._advanced = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._call: Any = None  # the open Snapshot or Watch stream, cancelled by stop()
        self._on_change = on_change
        self.synced = threading.Event()  # set once the first snapshot is applied
        self.connected = False
        self.last_contact = 0.0  # time.monotonic() of the last message from the store
        self.last_error = ""
        self.store_revision = 0  # highest revision the store is known to have

    @property
    def revision(self) -> int:
        return self.state.revision

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
        state = state_from_snapshot(chunks)
        state.custom_roles_version = self.state.custom_roles_version + 1
        with self._advanced:
            self.state = state
            self._changed(state)
            self._advanced.notify_all()
        self.synced.set()
        log.info("replica loaded a snapshot at revision %d (%d rows)", state.revision, state.count())

    def apply_watch(self, response: store_pb2.WatchResponse) -> None:
        """Apply one part of a revision; the revision counts as applied with its last part."""
        with self._advanced:
            state = self.state
            for change in response.changes:
                op = convert.change_op(change)
                if op == "reset":
                    state.apply("reset", "", {})
                    continue
                kind, row = convert.entity_row(change.entity)
                state.apply(op, kind, row)
            if response.revision_complete:
                state.revision = response.revision
                self._changed(state)
                self._advanced.notify_all()

    def _changed(self, state: WorldState) -> None:
        if self._on_change is not None:
            self._on_change(state)

    # -- following --

    def start(self) -> None:
        if self.client is None:
            raise RuntimeError("a replica without a store client cannot follow")
        self._thread = threading.Thread(target=self._follow, name="replica", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()  # unblock the follower waiting on the stream
        if self._thread is not None:
            self._thread.join(10)

    def stopping(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True once stop() was called."""
        return self._stop.wait(timeout)

    def _follow(self) -> None:
        assert self.client is not None
        backoff = BACKOFF_START
        while not self._stop.is_set():
            try:
                if not self.synced.is_set():
                    self._call = self.client.snapshot()
                    self.load_snapshot(self._call)
                self.connected = True
                self.last_contact = time.monotonic()
                self.last_error = ""
                backoff = BACKOFF_START
                self._call = self.client.watch(self.revision)
                if self._stop.is_set():
                    return
                for response in self._call:
                    self.last_contact = time.monotonic()
                    self.store_revision = max(self.store_revision, response.revision)
                    self.apply_watch(response)
                    if self._stop.is_set():
                        return
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                self.connected = False
                code = exc.code()
                self.last_error = f"{code.name}: {exc.details()}"
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    # The store no longer keeps the history we need: start over from a snapshot.
                    log.warning("replica fell behind the change log; reloading a snapshot")
                    self.synced.clear()
                    continue
                log.warning("store unavailable (%s); retrying in %.1fs", self.last_error, backoff)
            except Exception as exc:
                self.connected = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("replica error; retrying in %.1fs", backoff)
            self._stop.wait(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def staleness(self) -> float:
        """Seconds since the last message from the store (0 while connected and streaming)."""
        if self.connected:
            return 0.0
        if not self.last_contact:
            return float("inf")
        return time.monotonic() - self.last_contact
