"""Serve the AuthZEN app with uvicorn, on a thread of its own, beside the gRPC server.

Bound the way the gRPC server is (:mod:`servicekit.tls`): TLS with the service's certificate and
key, mutual TLS when a client CA is given (a client certificate it signed is required); plain
text only on loopback, or anywhere with ``insecure`` (logged as a WARNING); the address is this
server's alone unless ``reuse_port`` (the workers of ``serve --workers N`` share it, as they
share the gRPC port). The socket is bound and the TLS files are read here, before the thread
starts, so a taken address, an insecure address or a bad certificate refuses the start with one
line, and the port is known at once (port 0 picks a free one).

Threads: uvicorn's event loop runs on the ``authz-http`` thread (a loop of its own, so nothing
here touches the process's event loop policy or signal handlers); :meth:`HttpServer.stop`, from
any thread, asks it to finish (answers in flight are completed within ``grace``) and joins it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from servicekit import tls

log = logging.getLogger("authz.http.server")

START_TIMEOUT = 10.0  # seconds for the event loop to start serving


@dataclass(frozen=True)
class HttpConfig:
    listen: str  # HOST:PORT
    cert: Path | None = None
    key: Path | None = None
    client_ca: Path | None = None
    insecure: bool = False
    reuse_port: bool = False


class HttpServer:
    """A running AuthZEN HTTP server; :attr:`port` is the one bound."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket, url: str) -> None:
        self._server = server
        self._thread = thread
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        self.url = url

    def __repr__(self) -> str:
        return f"HttpServer({self.url!r})"

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting, finish answers in flight within ``grace`` seconds, and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=(grace or 0.0) + 5.0)
        if self._thread.is_alive():  # a connection that would not finish: cut it
            self._server.force_exit = True
            self._thread.join(timeout=5.0)
        self._socket.close()


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as host and port; ValueError naming the address otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or not host:
        raise ValueError(f"{listen!r} is not an HTTP listen address HOST:PORT (such as 127.0.0.1:8080)")
    return host.strip("[]"), int(port)


def _bind(listen: str, host: str, port: int, reuse_port: bool) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        raise OSError(f"cannot listen on {listen}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a connection in TIME_WAIT is no obstacle
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    return sock


def serve_http(app: ASGIApp, config: HttpConfig) -> HttpServer:
    """Start serving ``app`` at ``config.listen``. Raises InsecureListen (a ValueError) for plain text
    off loopback without ``insecure``, AddressInUse (an OSError) for a taken address, OSError or
    ssl.SSLError for TLS files that do not load, RuntimeError when the loop does not start."""
    tls.check_listen(config.listen, cert=config.cert, key=config.key, client_ca=config.client_ca,
                     insecure=config.insecure)  # fmt: skip
    host, port = split_listen(config.listen)
    tls.check_free(config.listen, reuse_port=config.reuse_port)
    sock = _bind(config.listen, host, port, config.reuse_port)
    try:
        settings = uvicorn.Config(
            app, http="httptools", loop="asyncio", lifespan="off", ws="none", log_config=None, access_log=False,
            proxy_headers=False, server_header=False, timeout_graceful_shutdown=5,
            ssl_certfile=config.cert, ssl_keyfile=config.key, ssl_ca_certs=config.client_ca,
            ssl_cert_reqs=ssl.CERT_REQUIRED if config.client_ca is not None else ssl.CERT_NONE,
        )  # fmt: skip
        settings.load()  # reads the TLS files now: a bad one refuses the start here, in the caller's thread
    except BaseException:
        sock.close()
        raise
    server = uvicorn.Server(settings)
    failures: list[BaseException] = []
    thread = threading.Thread(target=_run, args=(server, sock, failures), name="authz-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5.0)
            sock.close()
            why = f"{type(failures[0]).__name__}: {failures[0]}" if failures else "it did not start in time"
            raise RuntimeError(f"the AuthZEN HTTP server on {config.listen} did not start: {why}")
        time.sleep(0.005)
    scheme = "https" if config.cert is not None else "http"
    if config.cert is None and not tls.is_loopback(config.listen):
        log.warning(
            "INSECURE: AuthZEN HTTP listens on %s in plain text (--insecure): requests, answers and tokens cross "
            "the network unencrypted; use --tls-cert and --tls-key", config.listen,
        )  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    return HttpServer(server, thread, sock, f"{scheme}://{shown}:{sock.getsockname()[1]}")


def _run(server: uvicorn.Server, sock: socket.socket, failures: list[BaseException]) -> None:
    """The ``authz-http`` thread: uvicorn's loop until asked to stop."""
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except BaseException as exc:  # reported to the starting thread, or logged
        failures.append(exc)
        if server.started:
            log.exception("the AuthZEN HTTP server stopped")
