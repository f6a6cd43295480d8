"""Revision wake-ups across store instances on one PostgreSQL database: LISTEN/NOTIFY.

Several store instances may serve one database. A Watch stream of instance B learns of a commit
made by instance A by polling the change log (every 0.25 s at most: store.service.Watch), which
stays the correctness backstop. On PostgreSQL each write transaction also sends
``pg_notify(channel, '<revision>')``, delivered by the database at commit (never for a rolled
back transaction, in commit order), and every instance listens on the channel and tells its
in-process :class:`store.changes.Notifier`, which wakes its Watch streams at once. The
notification carries only the revision: the streams read what changed from the log, as always.

The channel is ``authz_revision:<schema>``: NOTIFY is per database, the store's tables per
schema, and stores on two schemas of one database must not wake each other (a foreign revision
ahead of ours would make the Notifier's waits return at once, turning waits into busy polling).

Threads: one listener thread per store process owns its psycopg connection (autocommit, LISTEN)
and is the only caller of it; it feeds the Notifier (thread-safe) and writes ``listening``,
``backend_pid`` and the metrics, read by others one value at a time. Announcing runs on the
writer threads, inside their write transactions, which the store_state row lock already runs one
at a time, so notifications go out in revision order. ``stop()`` sets an event the listener checks at
least every ``POLL`` seconds. A lost connection is logged and reopened with capped, jittered
backoff; while it is down, Watch streams wake by polling. After each (re)connect the listener
reads the current revision and wakes the streams, so a commit made while it was not listening
waits no longer than a poll.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.changes import Notifier
from store.database import Database
from store.metrics import StoreMetrics
from store.models import StoreState

log = logging.getLogger("store.notify")

CHANNEL_PREFIX = "authz_revision:"
MAX_CHANNEL_BYTES = 63  # PostgreSQL's identifier limit (NAMEDATALEN - 1)
POLL = 0.25  # the listener checks for stop() this often while no notification comes
BACKOFF_START = 0.1
BACKOFF_MAX = 5.0
# Notice a connection that died silently (no RST: a partitioned network) within about half a minute.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
CONNECT_TIMEOUT = 10
APPLICATION = "authz-store-listen"  # in pg_stat_activity


def channel_for(schema: str) -> str:
    """The channel of the store whose tables live in ``schema``."""
    name = CHANNEL_PREFIX + schema
    if len(name.encode()) <= MAX_CHANNEL_BYTES:
        return name
    return CHANNEL_PREFIX + hashlib.sha256(schema.encode()).hexdigest()[:32]


class RevisionChannel:
    """Announce revisions in write transactions; listen for other instances' announcements."""

    def __init__(self, db: Database, notifier: Notifier, *, metrics: StoreMetrics | None = None) -> None:
        if db.dialect != "postgresql":
            raise ValueError(f"LISTEN/NOTIFY needs PostgreSQL, not {db.dialect}")
        self.db = db
        self.notifier = notifier
        self.metrics = metrics
        with db.reading() as session:
            self.channel = channel_for(str(session.execute(select(func.current_schema())).scalar_one()))
        self.listening = False  # LISTEN is active on a live connection (written by the listener only)
        self.backend_pid = 0  # the listening connection's server process (0 while none)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = BACKOFF_START  # the next wait after a failure; back to the start once listening

    def announce(self, session: Session, revision: int) -> None:
        """Tell every listening instance about ``revision`` when ``session``'s transaction commits."""
        session.execute(select(func.pg_notify(self.channel, str(revision))))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._listen, name="store-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _connect(self) -> psycopg.Connection[Any]:
        engine = self.db.write_engine
        args, params = engine.dialect.create_connect_args(engine.url)
        # The URL's own settings win over our keepalive defaults.
        options = {**KEEPALIVES, "connect_timeout": CONNECT_TIMEOUT, "application_name": APPLICATION, **params}
        return psycopg.connect(*args, **options, autocommit=True)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
                return  # stopped
            except Exception as exc:
                if self._stop.is_set():
                    return
                delay = self._backoff * random.uniform(0.5, 1.0)
                self._backoff = min(self._backoff * 2, BACKOFF_MAX)
                if isinstance(exc, psycopg.Error):  # the database or the network: expected, one line
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    log.warning("revision notifications lost (%s); Watch streams poll; listening again in %.1fs",
                                first, delay)  # fmt: skip
                else:
                    log.exception("revision listener failed; Watch streams poll; listening again in %.1fs", delay)
                self._stop.wait(delay)
            finally:
                self._set_listening(False)

    def _follow(self) -> None:
        """LISTEN on a new connection and pass every revision on, until stop() or a database error."""
        with self._connect() as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            table = sql.Identifier(str(StoreState.__tablename__))
            row = conn.execute(sql.SQL("SELECT revision FROM {} WHERE id = 1").format(table)).fetchone()
            self.backend_pid = conn.info.backend_pid
            self._set_listening(True)
            self._backoff = BACKOFF_START
            if row is not None:
                self.notifier.committed(int(row[0]))  # whatever committed while nobody listened
            while not self._stop.is_set():
                for notify in conn.notifies(timeout=POLL):
                    self._received(notify.payload)

    def _received(self, payload: str) -> None:
        try:
            revision = int(payload)
        except ValueError:
            log.warning("ignored a notification on %s that is not a revision: %.40r", self.channel, payload)
            return
        if self.metrics is not None:
            self.metrics.notifications.inc()
        self.notifier.committed(revision)

    def _set_listening(self, listening: bool) -> None:
        self.listening = listening
        if not listening:
            self.backend_pid = 0
        if self.metrics is not None:
            self.metrics.listening.set(1 if listening else 0)
