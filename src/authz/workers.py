"""Running the decision service as a process: one server, or N worker processes sharing one port.

* :func:`serve_one` serves in this process until SIGINT or SIGTERM; SIGHUP reopens the audit log.
* :func:`run_workers` is the supervisor of ``authz serve --workers N``: it spawns N processes
  (multiprocessing ``spawn``), each with its own replica and its own metrics port (PORT, PORT+1,
  ...), sharing the listening port with each other only (SO_REUSEPORT); it forwards SIGHUP to
  every worker (each reopens its own audit log), and stops them all when one stops, so that a
  supervisor of the service sees it instead of a service serving on with fewer workers.
* :func:`wait_for_signal` is how every server process of the command line waits for its end.

Nothing here parses flags or prints errors: the callers (the ``authz`` command line) render
:class:`StartError` and :class:`WorkerStopped`. Only a worker process, which has no caller to
report to, prints its own start error (``Error: ...``) and exits with code 1.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authz.server import ServerConfig

WHAT = "the decision service"


class StartError(Exception):
    """A server that did not start (a taken address, an audit log it cannot open, ...): one line."""

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"{what} did not start: {cause}")


class WorkerStopped(Exception):
    """A worker process of :func:`run_workers` stopped on its own, so the service was stopped."""

    def __init__(self, name: str, exit_code: int | None) -> None:
        super().__init__(f"worker {name} stopped with exit code {exit_code}; the service stopped")
        self.name = name
        self.exit_code = exit_code


def wait_for_signal(on_hangup: Callable[[], object] | None = None, done: Callable[[], bool] | None = None) -> None:
    """Block until SIGINT or SIGTERM, or until ``done()`` (asked every half second) is true.

    SIGHUP never stops a server (its default action would kill it): it is how logrotate asks a
    daemon to reopen its logs, so it calls ``on_hangup`` (reopen the audit log) or is ignored.
    The handlers only note the signal; the work runs here, in the main thread, between waits.
    """
    received: list[int] = []
    wake = threading.Event()

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        wake.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, note)
    while True:
        wake.wait(None if done is None else 0.5)
        wake.clear()
        while received:
            if received.pop(0) != signal.SIGHUP:
                return
            if on_hangup is not None:
                on_hangup()
        if done is not None and done():
            return


def _say(line: str, level: int = logging.INFO) -> None:
    from servicekit import logs

    logs.say("authz.workers", line, level)


def serve_one(config: ServerConfig) -> None:
    """One decision-service process: serve until SIGINT or SIGTERM; SIGHUP reopens the audit log.

    Raises :class:`StartError` when the server cannot start.
    """
    from authz.server import create_server

    try:
        server = create_server(config)
    except (ValueError, OSError, RuntimeError) as exc:
        raise StartError(WHAT, exc) from None
    _say(f"decision service listening on {config.listen.rsplit(':', 1)[0]}:{server.port}")
    if server.http_server is not None:
        _say(f"AuthZEN over HTTP on {server.http_server.url}")
    wait_for_signal(server.reopen_audit_log)
    server.stop(grace=2)


def run_workers(config: ServerConfig, workers: int, *, setup_logging: Callable[[], object] | None = None) -> None:
    """Serve ``config`` with ``workers`` processes on its port until SIGINT or SIGTERM.

    Worker ``n`` serves its metrics on the port of ``config.metrics_address`` plus ``n`` (when set). ``setup_logging``
    (picklable: a module-level function or a partial of one) configures logging in each worker,
    which starts with none. Raises :class:`StartError` before any worker starts for what would stop
    them all (an address another server holds, an audit log that cannot be opened), and
    :class:`WorkerStopped` after stopping the others when a worker stopped on its own (it could
    not start, it crashed).
    """
    import multiprocessing

    from authz.audit import AuditLog
    from servicekit import tls

    if config.listen.endswith(":0") or (config.http is not None and config.http.endswith(":0")):
        raise ValueError("several workers need a fixed port")
    # The workers share their address with each other only.
    try:
        tls.check_free(config.listen)
        if config.http is not None:  # AuthZEN over HTTP: its port is shared by the workers too
            tls.check_free(config.http)
        if config.audit_log is not None:
            AuditLog(config.audit_log).close()
    except OSError as exc:
        raise StartError(WHAT, exc) from None
    context = multiprocessing.get_context("spawn")
    shared = dataclasses.replace(config, reuse_port=True)
    from servicekit.metrics import offset

    base = config.metrics_address
    children = [
        context.Process(
            target=_serve_child,
            args=(
                dataclasses.replace(shared, metrics=None if base is None else offset(base, n), metrics_port=None),
                setup_logging,
            ),
            name=f"authz-{n}",
        )
        for n in range(workers)
    ]
    for child in children:
        child.start()
    _say(f"decision service: {workers} workers on {config.listen}")

    def hangup() -> None:  # each worker reopens its own audit log
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGHUP)

    try:
        wait_for_signal(hangup, done=lambda: any(child.exitcode is not None for child in children))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(10)
    failed = [child for child in children if child.exitcode not in (0, -signal.SIGTERM, None)]
    if failed:
        raise WorkerStopped(failed[0].name, failed[0].exitcode)


def _serve_child(config: ServerConfig, setup_logging: Callable[[], object] | None) -> None:
    """A worker process of :func:`run_workers`: a start error is one line and exit code 1."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until serve_one handles it: never die of it
    if setup_logging is not None and not logging.getLogger().handlers:
        setup_logging()
    try:
        serve_one(config)
    except StartError as exc:
        _say(f"Error: {exc}", logging.ERROR)
        sys.exit(1)
