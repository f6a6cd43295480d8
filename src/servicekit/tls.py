"""Transport security for both services' servers and clients: TLS, channels and binding.

* Servers: :func:`bind` adds a listening port. With a certificate and key it is TLS; with a
  client CA as well it is mutual TLS (callers must present a certificate that CA signed). Without
  a certificate it listens in plain text, which is allowed on loopback only, or anywhere with an
  explicit ``insecure=True`` (``--insecure``), logged as a WARNING at start.
* One server per address: every server is built with :func:`server_options`, which turns off
  gRPC's default SO_REUSEPORT, so a second server (another store on another database, say) cannot
  bind an address a running one holds and take half its connections; :func:`bind` refuses a taken
  address with :class:`AddressInUse` naming it. Only the worker processes of
  ``authz serve --workers N`` pass ``reuse_port=True`` and share their port with each other.
* Clients: :func:`open_channel` (and :func:`open_aio_channel`, for asyncio) is a secure channel
  when a root CA, a client certificate or ``tls=True`` is given, a plain one otherwise.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger("servicekit.tls")

# A PEM source: bytes are the PEM itself; a str or Path names the file holding it.
Pem = bytes | str | Path


class InsecureListen(ValueError):
    """Plain text on an address other than loopback, without ``--insecure``."""


class AddressInUse(OSError):
    """Another server already listens on the address (its message names it, on one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.EADDRINUSE


# ---- TLS --------------------------------------------------------------------------------------


def read_pem(source: Pem, what: str = "file") -> bytes:
    """The PEM bytes of ``source`` (read from the file when it is a path)."""
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {source}: {exc.strerror or exc}") from None


def server_credentials(cert: Pem, key: Pem, client_ca: Pem | None = None) -> grpc.ServerCredentials:
    """TLS with ``cert``/``key``; with ``client_ca``, mutual TLS (a client certificate it signed is required)."""
    pair = (read_pem(key, "TLS key"), read_pem(cert, "TLS certificate"))
    roots = read_pem(client_ca, "client CA") if client_ca is not None else None
    return grpc.ssl_server_credentials([pair], root_certificates=roots, require_client_auth=roots is not None)


def channel_credentials(
    *, ca: Pem | None = None, cert: Pem | None = None, key: Pem | None = None, tls: bool = False
) -> grpc.ChannelCredentials | None:
    """TLS credentials for a client, or None for a plain channel (nothing given and ``tls`` false).

    ``ca``: root certificate(s) to trust (default: the system's); ``cert`` and ``key``: the client's
    certificate for mutual TLS.
    """
    if (cert is None) != (key is None):
        raise ValueError("a client certificate and its key go together (--cert and --key)")
    if ca is None and cert is None and not tls:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(ca, "CA certificate") if ca is not None else None,
        private_key=read_pem(key, "client key") if key is not None else None,
        certificate_chain=read_pem(cert, "client certificate") if cert is not None else None,
    )


def open_channel(
    address: str,
    *,
    ca: Pem | None = None,
    cert: Pem | None = None,
    key: Pem | None = None,
    tls: bool = False,
    options: Sequence[tuple[str, Any]] | None = None,
) -> grpc.Channel:
    """A secure channel when TLS settings are given, else a plain one."""
    credentials = channel_credentials(ca=ca, cert=cert, key=key, tls=tls)
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)


def open_aio_channel(
    address: str,
    *,
    ca: Pem | None = None,
    cert: Pem | None = None,
    key: Pem | None = None,
    tls: bool = False,
    options: Sequence[tuple[str, Any]] | None = None,
) -> grpc.aio.Channel:
    """:func:`open_channel` for asyncio (grpc.aio): the same credentials, an asyncio channel."""
    credentials = channel_credentials(ca=ca, cert=cert, key=key, tls=tls)
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)


def listen_host(address: str) -> str:
    """The host part of a listen address: ``[::1]:50051`` -> ``::1``, ``0.0.0.0:0`` -> ``0.0.0.0``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        host = address
    return host.strip("[]")


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (and Unix sockets); false for every other host."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = listen_host(address)
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name may resolve to anything; an empty host is every interface
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def check_listen(
    listen: str,
    *,
    cert: Pem | None = None,
    key: Pem | None = None,
    client_ca: Pem | None = None,
    insecure: bool = False,
) -> None:
    """Raise ValueError for TLS settings that do not fit together, InsecureListen for plain text on an
    address other than loopback without ``insecure``."""
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if client_ca is not None and cert is None:
        raise ValueError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
    if cert is None and not insecure and not is_loopback(listen):
        raise InsecureListen(
            f"refusing to listen on {listen} without TLS: it is not a loopback address. Give --tls-cert "
            "and --tls-key (and --tls-client-ca for mutual TLS), or --insecure to accept plain text"
        )


def server_options(*, reuse_port: bool = False) -> list[tuple[str, Any]]:
    """The gRPC options every server here is built with (pass the same ``reuse_port`` to :func:`bind`).

    gRPC sets SO_REUSEPORT on its listeners unless told otherwise, and then a second server of the
    same user binds an address a running one holds and the kernel splits connections between them
    (writes between two databases). So the port is exclusive unless ``reuse_port``: the worker
    processes of ``authz serve --workers N``, which share it on purpose.
    """
    return [("grpc.so_reuseport", 1 if reuse_port else 0)]


def check_free(listen: str, *, reuse_port: bool = False) -> None:
    """Raise AddressInUse when a server already listens on ``listen`` (with ``reuse_port``, one that
    shares its port is no obstacle).

    Asked just before gRPC binds, so a taken address is one clear line naming it rather than
    gRPC's core log line and its "Failed to bind" RuntimeError. It also catches a name such as
    ``localhost`` whose addresses are taken only in part, which gRPC would half bind. gRPC's own
    refusal stays the backstop for the moment between this probe and its bind.
    """
    if listen.startswith(("unix:", "unix-abstract:")):
        return
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) == 0:
        return  # gRPC reports a malformed address; port 0 is always free
    host = host.strip("[]")
    try:
        addresses = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        return  # a name that does not resolve is gRPC's to report
    for family, kind, proto, _, sockaddr in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As gRPC does: a connection in TIME_WAIT is no obstacle, a listener is.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise AddressInUse(
                        f"cannot listen on {listen}: {exc.strerror} (is another server listening there?)"
                    ) from None
                # Anything else (an address family this host lacks, say) is left to gRPC.


def bind(
    server: grpc.Server,
    listen: str,
    *,
    cert: Pem | None = None,
    key: Pem | None = None,
    client_ca: Pem | None = None,
    insecure: bool = False,
    service: str = "service",
    reuse_port: bool = False,
) -> int:
    """Add ``listen`` to ``server``: TLS when a certificate is given, plain text on loopback or with
    ``insecure`` (a WARNING). Raises InsecureListen for plain text elsewhere, AddressInUse (an
    OSError) when another server holds the address; returns the bound port.

    ``server`` must have been built with :func:`server_options` and the same ``reuse_port``.
    """
    check_listen(listen, cert=cert, key=key, client_ca=client_ca, insecure=insecure)
    check_free(listen, reuse_port=reuse_port)
    credentials = server_credentials(cert, key, client_ca) if cert is not None and key is not None else None
    try:
        if credentials is not None:
            port = server.add_secure_port(listen, credentials)
            mode = "mutual TLS" if client_ca is not None else "TLS"
        else:
            if not is_loopback(listen):
                log.warning(
                    "INSECURE: the %s listens on %s in plain text (--insecure): requests, answers and tokens "
                    "cross the network unencrypted; use --tls-cert and --tls-key",
                    service, listen,
                )  # fmt: skip
            port = server.add_insecure_port(listen)
            mode = "plain text"
    except RuntimeError:  # gRPC's "Failed to bind to address ..."; its core has logged why
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {listen}: the address is taken or not available on this host")
    log.debug("%s bound to %s (%s)", service, listen, mode)
    return port
