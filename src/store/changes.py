"""Revisions and the change log: record a write's changes, read them back, compact, snapshot.

Revision order is commit order. The last statement of every write transaction increments the
single ``store_state`` row; on PostgreSQL that row lock is held until commit, on SQLite the
database write lock is, so revision N+1 cannot commit before N has. A reader that has seen
revision N therefore never misses a revision <= N that commits later.

:class:`Notifier` is shared by the writer threads and the Watch streams of one process; it only
wakes waiters early, and streams also poll, so writes made by other processes are seen too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from store.entities import SPECS
from store.errors import RevisionCompacted
from store.models import ChangeRecord, StoreState
from store.repository import Change, iter_rows

INSERT_BATCH = 5000


def current(session: Session) -> tuple[int, int]:
    """(last committed revision, oldest revision Watch can resume after)."""
    state = session.execute(select(StoreState.revision, StoreState.oldest_retained)).first()
    if state is None:
        return 0, 0
    return int(state[0]), int(state[1])


def record(session: Session, changes: list[Change]) -> int:
    """Give ``changes`` the next revision and log them; with no changes, the current revision."""
    if not changes:
        return current(session)[0]
    revision = session.execute(
        update(StoreState)
        .where(StoreState.id == 1)
        .values(revision=StoreState.revision + 1)
        .returning(StoreState.revision)
    ).scalar_one()
    now = int(time.time() * 1000)
    batch: list[dict[str, object]] = []
    for seq, change in enumerate(changes):
        batch.append(
            {
                "revision": revision, "seq": seq, "op": change.op, "kind": change.kind,
                "data": json.dumps(change.data, separators=(",", ":")), "committed_at": now,
            }
        )  # fmt: skip
        if len(batch) >= INSERT_BATCH:
            session.execute(insert(ChangeRecord), batch)
            batch = []
    if batch:
        session.execute(insert(ChangeRecord), batch)
    return int(revision)


@dataclass(frozen=True)
class LoggedChange:
    revision: int
    seq: int
    change: Change


def read_after(session: Session, after_revision: int, limit: int = 5000) -> list[LoggedChange]:
    """Up to ``limit`` logged changes after ``after_revision``, in order (a revision may be split).

    Raises RevisionCompacted when the log no longer holds every revision after ``after_revision``.
    """
    return read_from(session, after_revision, -1, limit)


def read_from(session: Session, after_revision: int, after_seq: int, limit: int = 5000) -> list[LoggedChange]:
    """Like :func:`read_after`, resuming inside revision ``after_revision + 1`` after ``after_seq``."""
    _, oldest = current(session)
    if after_revision < oldest:
        raise RevisionCompacted(
            f"revision {after_revision} is older than the change log keeps (it resumes after revision "
            f"{oldest}); take a Snapshot and watch from its revision"
        )
    query = (
        select(ChangeRecord.revision, ChangeRecord.seq, ChangeRecord.op, ChangeRecord.kind, ChangeRecord.data)
        .where(
            (ChangeRecord.revision > after_revision + 1)
            | ((ChangeRecord.revision == after_revision + 1) & (ChangeRecord.seq > after_seq))
        )
        .order_by(ChangeRecord.revision, ChangeRecord.seq)
        .limit(limit)
    )
    return [
        LoggedChange(int(rev), int(seq), Change(op, kind, json.loads(data)))
        for rev, seq, op, kind, data in session.execute(query)
    ]


def compact(session: Session, keep_after: int) -> int:
    """Forget the changes of revisions <= ``keep_after``; Watch must then start after it. Returns rows deleted."""
    last, oldest = current(session)
    keep_after = min(keep_after, last)
    if keep_after <= oldest:
        return 0
    result = session.execute(delete(ChangeRecord).where(ChangeRecord.revision <= keep_after))
    session.execute(update(StoreState).where(StoreState.id == 1).values(oldest_retained=keep_after))
    return int(result.rowcount)  # type: ignore[attr-defined]


def snapshot(session: Session) -> tuple[int, Iterator[tuple[str, dict[str, object]]]]:
    """The revision and every entity at it; ``session`` must be a consistent read."""
    revision = current(session)[0]

    def rows() -> Iterator[tuple[str, dict[str, object]]]:
        for kind in SPECS:
            for row in iter_rows(session, kind):
                yield kind, row

    return revision, rows()


class Notifier:
    """Wakes Watch streams of this process when a write commits."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._revision = 0

    def committed(self, revision: int) -> None:
        with self._condition:
            self._revision = max(self._revision, revision)
            self._condition.notify_all()

    def wait_beyond(self, revision: int, timeout: float) -> None:
        """Return when a revision > ``revision`` committed here, or after ``timeout`` seconds."""
        with self._condition:
            if self._revision <= revision:
                self._condition.wait(timeout)
