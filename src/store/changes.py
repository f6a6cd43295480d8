"""Revisions and the change log: record a write's changes, read them back, compact, snapshot.

Revision order is commit order. The last statement of every write transaction increments the
single ``store_state`` row; on PostgreSQL that row lock is held until commit, on SQLite the
database write lock is, so revision N+1 cannot commit before N has. A reader that has seen
revision N therefore never misses a revision <= N that commits later.

:class:`Notifier` is shared by the writer threads and the Watch streams of one process (and, on
PostgreSQL, the listener of store.notify, which passes on other instances' commits); it only wakes
waiters early, and streams also poll, so writes made by other processes are seen regardless.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from store.entities import SPECS
from store.errors import RevisionCompacted
from store.models import ChangeRecord, StoreState
from store.repository import Change, iter_rows

INSERT_BATCH = 5000
CHANGE_COLUMNS = ("revision", "seq", "op", "kind", "data", "committed_at")


def _data_encoder() -> Callable[[Any], str]:
    """``json.dumps(data, separators=(",", ":"))``, with the C encoder built once instead of per call.

    Entity rows are flat (strings, numbers, booleans, lists of strings), so the circular
    reference check json.dumps makes is not needed; the text is the same.
    """
    options = json.JSONEncoder(separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return options.encode
    try:
        encoder = make(None, options.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    except TypeError:  # pragma: no cover - a Python whose C encoder takes other arguments
        return options.encode
    return lambda data: "".join(encoder(data, 0))


_encode_data = _data_encoder()


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
    insert_many(
        session,
        ChangeRecord.__table__,  # type: ignore[arg-type]
        CHANGE_COLUMNS,
        ((revision, seq, change.op, change.kind, _encode_data(change.data), now) for seq, change in enumerate(changes)),
    )
    return int(revision)


def insert_many(session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert ``rows`` (values of ``columns``, in that order) into ``table`` in bulk, in the session's transaction.

    The values go through the bind processors of the column types, exactly as with
    ``session.execute(insert(table), dicts)`` (JSON lists become the same text, booleans the
    same values), without SQLAlchemy's per-row work: SQLite gets one ``executemany`` of plain
    tuples, PostgreSQL a ``COPY ... FROM STDIN``. Driver errors are raised as SQLAlchemy's
    exceptions (``IntegrityError`` for a taken key), as from any other statement.
    """
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name not in ("sqlite", "postgresql"):  # pragma: no cover - the store runs on these two
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(dict(zip(columns, row, strict=True)))
            if len(batch) >= INSERT_BATCH:
                session.execute(insert(table), batch)
                batch = []
        if batch:
            session.execute(insert(table), batch)
        return
    processors = [
        (index, processor)
        for index, name in enumerate(columns)
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]
    if processors:
        rows = _processed(rows, processors)
    if dialect.name == "sqlite":
        statement = str(insert(table).compile(dialect=dialect, column_keys=list(columns)))
    else:
        preparer = dialect.identifier_preparer
        names = ", ".join(preparer.quote(name) for name in columns)
        statement = f"COPY {preparer.format_table(table)} ({names}) FROM STDIN"
    cursor: Any = connection.connection.cursor()
    error = dialect.loaded_dbapi.Error
    try:
        if dialect.name == "sqlite":
            cursor.executemany(statement, rows)
        else:
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
    except error as exc:
        raise DBAPIError.instance(statement, None, exc, error, dialect=dialect) from exc
    finally:
        cursor.close()


def _processed(
    rows: Iterable[Sequence[Any]], processors: Sequence[tuple[int, Callable[[Any], Any]]]
) -> Iterator[list[Any]]:
    for row in rows:
        values = list(row)
        for index, processor in processors:
            values[index] = processor(values[index])
        yield values


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

    @property
    def revision(self) -> int:
        """The highest revision this process was told of (its own writes, other instances' notifications)."""
        return self._revision

    def committed(self, revision: int) -> None:
        with self._condition:
            self._revision = max(self._revision, revision)
            self._condition.notify_all()

    def wait_beyond(self, revision: int, timeout: float) -> None:
        """Return when a revision > ``revision`` committed here, or after ``timeout`` seconds."""
        with self._condition:
            if self._revision <= revision:
                self._condition.wait(timeout)
