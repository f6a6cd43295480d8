"""A small Python client for store.v1.Store: adds the bearer token, streams worlds in chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import Message

from servicekit.tls import Pem, open_channel
from store.v1 import store_pb2, store_pb2_grpc

CHUNK = 1 << 20
# Reconnect quickly when the store comes back (gRPC's default backoff grows to two minutes).
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class StoreClient:
    """``StoreClient("127.0.0.1:50052", token)``; use as a context manager to close the channel.

    TLS: ``ca`` (root certificate to trust, PEM bytes or a file), ``cert`` and ``key`` (a client
    certificate for mutual TLS) or ``tls=True`` (the system's roots) make the channel secure.
    """

    def __init__(
        self,
        address: str,
        token: str,
        *,
        channel: grpc.Channel | None = None,
        ca: Pem | None = None,
        cert: Pem | None = None,
        key: Pem | None = None,
        tls: bool = False,
    ) -> None:
        self.address = address
        self.channel = channel or open_channel(address, ca=ca, cert=cert, key=key, tls=tls, options=CHANNEL_OPTIONS)
        self.stub = store_pb2_grpc.StoreStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def call(self, method: str, request: Message, *, timeout: float | None = 30.0) -> Any:
        """Call a unary RPC by name, e.g. ``call("CreateTeam", store_pb2.Team(id="t", org="o"))``."""
        return getattr(self.stub, method)(request, metadata=self.metadata, timeout=timeout)

    def write(self, method: str, request: Message, *, timeout: float | None = 30.0) -> int:
        """Call a write RPC and return the revision it committed at."""
        return int(self.call(method, request, timeout=timeout).revision)

    def import_world(
        self,
        document: bytes,
        *,
        name: str = "world",
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
        timeout: float | None = None,
    ) -> store_pb2.ImportWorldResponse:
        """Send a world document (YAML or JSON) in chunks; ``progress(n)`` after each n bytes sent."""

        def requests() -> Iterator[store_pb2.ImportWorldRequest]:
            for offset in range(0, max(len(document), 1), CHUNK):
                part = document[offset : offset + CHUNK]
                first = offset == 0
                yield store_pb2.ImportWorldRequest(chunk=part, replace=replace and first, name=name if first else "")
                if progress is not None:
                    progress(len(part))

        response: store_pb2.ImportWorldResponse = self.stub.ImportWorld(
            requests(), metadata=self.metadata, timeout=timeout
        )
        return response

    def watch(self, after_revision: int, *, timeout: float | None = None) -> Iterator[store_pb2.WatchResponse]:
        stream: Iterator[store_pb2.WatchResponse] = self.stub.Watch(
            store_pb2.WatchRequest(after_revision=after_revision), metadata=self.metadata, timeout=timeout
        )
        return stream

    def snapshot(self, *, timeout: float | None = None) -> Iterator[store_pb2.SnapshotChunk]:
        stream: Iterator[store_pb2.SnapshotChunk] = self.stub.Snapshot(
            store_pb2.SnapshotRequest(), metadata=self.metadata, timeout=timeout
        )
        return stream

    def revision(self) -> int:
        return int(self.call("GetRevision", store_pb2.RevisionRequest()).revision)
