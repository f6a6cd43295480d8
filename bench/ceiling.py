"""The Python ceiling: a minimal authz.v1.Authorizer that answers Check and BatchCheck from a dict.

    .venv/bin/python bench/ceiling.py --listen 127.0.0.1:PORT --answers FILE [--workers N] [--max-workers 32]
        [--mode threads|aio|uvloop] [--work dict|decide]

``decisions_bench.py --vs-ceiling`` starts it as a separate process, like the real server, and
drives both with the same load generator in the same run. ``FILE`` is a serialized
``BatchCheckResponse`` followed by the requests it answers (a ``BatchCheckRequest``), written by
the benchmark from the real decider's answers, so the responses carry the same bytes as the real
server's. A request it has no answer for gets a fixed deny.

What it does per call is what any Python gRPC service must do: grpcio's thread-pool server
(the same kind and options as `authz serve`), protobuf parsing and serialization, one dict
lookup. No interceptors, validation, lock, metrics or audit. ``--workers N`` runs N processes on
one port (SO_REUSEPORT), as `authz serve --workers N` does; the first is the parent of the others.
``--mode aio`` (or ``uvloop``: grpc.aio on uvloop's event loop) answers from coroutines on a
grpc.aio server instead, to compare the two server models at their floor. ``--work decide`` makes
the same servers do the real work instead of the dict lookup (the decision service's servicer and
decider over the demo world held still in memory, with its interceptors and metrics; for aio, the
same steps in a coroutine, deciding on the event loop), to compare the server models with it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from authz.v1 import authorizer_pb2 as pb
from authz.v1 import authorizer_pb2_grpc

Key = tuple[str, str, str, str, str]


def key_of(message: pb.CheckRequest) -> Key:
    return (message.subject.kind, message.subject.id, message.action, message.resource.kind, message.resource.id)


def write_answers(path: Path, requests: list[pb.CheckRequest], responses: list[pb.CheckResponse]) -> None:
    answers = pb.BatchCheckResponse(results=responses).SerializeToString()
    asked = pb.BatchCheckRequest(checks=requests).SerializeToString()
    path.write_bytes(len(answers).to_bytes(8, "big") + answers + asked)


def read_answers(path: Path) -> dict[Key, pb.CheckResponse]:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "big")
    answers = pb.BatchCheckResponse.FromString(data[8 : 8 + size])
    asked = pb.BatchCheckRequest.FromString(data[8 + size :])
    return {key_of(q): a for q, a in zip(asked.checks, answers.results, strict=True)}


class DictAuthorizer(authorizer_pb2_grpc.AuthorizerServicer):
    def __init__(self, answers: dict[Key, pb.CheckResponse]) -> None:
        self.answers = answers
        self.deny = pb.CheckResponse(allowed=False, reason="denied: not in the dict")

    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:
        return self.answers.get(key_of(request), self.deny)

    def BatchCheck(self, request: pb.BatchCheckRequest, context: grpc.ServicerContext) -> pb.BatchCheckResponse:
        answers, deny = self.answers, self.deny
        return pb.BatchCheckResponse(results=[answers.get(key_of(item), deny) for item in request.checks])


def demo_servicer() -> authorizer_pb2_grpc.AuthorizerServicer:
    """The decision service's own servicer over the demo world, held still (no replica, no store)."""
    from authz.metrics import DecisionMetrics
    from authz.service import AuthorizerServicer
    from authz.testing import decider_for, state_from_document
    from store.world import load_document

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo-world.yaml"
    decider = decider_for(state_from_document(load_document(demo.read_bytes(), str(demo))))
    return AuthorizerServicer(decider, metrics=DecisionMetrics.create())


class AsyncDeciding(authorizer_pb2_grpc.AuthorizerServicer):
    """The steps of the real servicer's Check and BatchCheck, in coroutines, deciding on the loop."""

    def __init__(self) -> None:
        self.inner = demo_servicer()

    async def Check(self, request: pb.CheckRequest, context: grpc.aio.ServicerContext) -> pb.CheckResponse:  # type: ignore[override]
        import time

        from authz.service import request_of, response_of

        started = time.perf_counter()
        inner = self.inner
        check = request_of(request)
        decision = inner.decider.check(check, timeout=10)
        inner.metrics.observe("Check", time.perf_counter() - started)
        inner.metrics.record(check.action, decision.allowed)
        return response_of(decision)

    async def BatchCheck(  # type: ignore[override]
        self, request: pb.BatchCheckRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchCheckResponse:
        import time

        from authz.service import request_of, response_of

        started = time.perf_counter()
        inner = self.inner
        checks = [request_of(item) for item in request.checks]
        decisions = inner.decider.check_many(checks, timeout=10)
        inner.metrics.observe("BatchCheck", time.perf_counter() - started)
        for check, decision in zip(checks, decisions, strict=True):
            inner.metrics.record(check.action, decision.allowed)
        return pb.BatchCheckResponse(results=[response_of(d) for d in decisions])


def serve(listen: str, answers: Path, max_workers: int, work: str = "dict") -> None:
    interceptors: list[grpc.ServerInterceptor] = []
    if work == "decide":
        from servicekit.guard import DecodeGuard
        from servicekit.logs import CallLog

        interceptors = [CallLog("authz.access"), DecodeGuard()]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers), options=[("grpc.so_reuseport", 1)],
        interceptors=interceptors,
    )  # fmt: skip
    servicer = demo_servicer() if work == "decide" else DictAuthorizer(read_answers(answers))
    authorizer_pb2_grpc.add_AuthorizerServicer_to_server(servicer, server)
    checker = health.HealthServicer()
    checker.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    server.add_insecure_port(listen)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()


class AsyncDictAuthorizer(DictAuthorizer):
    async def Check(self, request: pb.CheckRequest, context: grpc.aio.ServicerContext) -> pb.CheckResponse:  # type: ignore[override]
        return self.answers.get(key_of(request), self.deny)

    async def BatchCheck(  # type: ignore[override]
        self, request: pb.BatchCheckRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchCheckResponse:
        answers, deny = self.answers, self.deny
        return pb.BatchCheckResponse(results=[answers.get(key_of(item), deny) for item in request.checks])


def serve_aio(listen: str, answers: Path, use_uvloop: bool, work: str = "dict") -> None:
    import asyncio

    async def run() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
        servicer = AsyncDeciding() if work == "decide" else AsyncDictAuthorizer(read_answers(answers))
        authorizer_pb2_grpc.add_AuthorizerServicer_to_server(servicer, server)
        checker = health.aio.HealthServicer()
        await checker.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        server.add_insecure_port(listen)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await server.stop(1)

    if use_uvloop:
        import uvloop

        uvloop.run(run())
    else:
        asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--answers", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-workers", type=int, default=32)
    parser.add_argument("--mode", choices=("threads", "aio", "uvloop"), default="threads")
    parser.add_argument("--work", choices=("dict", "decide"), default="dict")
    args = parser.parse_args(argv)
    base = [sys.executable, __file__, "--listen", args.listen, "--answers", str(args.answers), "--mode", args.mode,
            "--work", args.work]  # fmt: skip
    children = [
        subprocess.Popen([*base, "--max-workers", str(args.max_workers)]) for _ in range(args.workers - 1)
    ]  # fmt: skip
    try:
        if args.mode == "threads":
            serve(args.listen, args.answers, args.max_workers, args.work)
        else:
            serve_aio(args.listen, args.answers, args.mode == "uvloop", args.work)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(10)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
