"""Decision benchmarks (issue: compiled engine and baselines), all figures from one run.

    .venv/bin/python bench/decisions_bench.py [--runs 1000000] [--seconds 5] [--workers 2]

(a) in-process decisions/s, compiled vs pycasbin, on the demo world and the large world, as a
    ratio measured in the same run;
(b) gRPC Check at concurrency 1, 16 and 64, and BatchCheck of 100: decisions/s, p50/p99 latency,
    and the server's CPU time per decision (utime+stime of its processes from /proc);
(c) the decision service's RSS and cold-start time (start to SERVING) over the large world, and
    Check latency there against the demo world;
(d) store write -> decision visible: p50/p99 of the delay between a write's acknowledgement and
    the first Check (without min_revision) that sees it;
(e) AuthZEN over HTTP (`serve --http`) next to gRPC, same servers, same requests, same run:
    evaluation vs Check at concurrency 16, evaluations vs BatchCheck of 50 at concurrency 16
    (`--http-only` runs just this, on the demo world);
(f) `--vs-ceiling` runs just this: the decision service against the Python ceiling (bench/ceiling.py,
    a minimal grpc server answering the same Check/BatchCheck from a dict, as many processes as
    `--workers` of `--threads` threads), same load generator, same requests, same run, alternating:
    Check at concurrency 1 and 16, BatchCheck of 50 at concurrency 16; each figure and its ratio to
    the ceiling's. `--uncached` also measures a service with its decision cache off in the same rows.

Servers run as separate processes on loopback; the load generator is this process (grpc.aio; for
HTTP a raw asyncio HTTP/1.1 client, one keep-alive connection per concurrent caller), sharing the
machine's cores with them. Results go to bench/results/decisions.json and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from authz import listing  # noqa: E402
from authz.decision import Request  # noqa: E402
from authz.testing import decider_for, random_requests, state_from_document  # noqa: E402
from authz.v1 import authorizer_pb2 as pb  # noqa: E402
from authz.v1 import authorizer_pb2_grpc  # noqa: E402
from store.client import StoreClient  # noqa: E402
from store.v1 import store_pb2  # noqa: E402
from store.world import load_document  # noqa: E402
from worldgen import generate_world  # noqa: E402

TOKEN = "bench-token"  # noqa: S105 - a throwaway token for servers this script starts
DEMO = ROOT / "examples" / "demo-world.yaml"
TICKS = os.sysconf("SC_CLK_TCK")
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "decisions.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ---- (a) in process -------------------------------------------------------------------------


def known_requests(document: dict[str, Any], count: int, seed: int = 1) -> tuple[Any, list[Request]]:
    state = state_from_document(document)
    decider = decider_for(state)
    requests = [
        r for r in random_requests(random.Random(seed), state, decider.engines.policy, count * 2)
        if r.subject_id != "ghost" and r.resource_id != "missing"
    ][:count]  # fmt: skip
    return state, requests


def in_process(state: Any, requests: list[Request], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for engine in ("compiled", "casbin"):
        decider = decider_for(state, engine=engine)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for request in requests[:200] if engine == "casbin" else requests:
                decider.check(request)
                done += 1
                if engine == "casbin" and time.perf_counter() - start >= seconds:
                    break
        elapsed = time.perf_counter() - start
        out[engine] = {"decisions_per_s": round(done / elapsed, 1), "us_per_decision": round(elapsed / done * 1e6, 2)}
    out["ratio"] = round(out["compiled"]["decisions_per_s"] / out["casbin"]["decisions_per_s"], 1)
    return out


def list_runs(state: Any, users: int = 8) -> list[dict[str, Any]]:
    """ListResources(run.view, run) for users who see little and users who see much: the first page
    of 100, and the full listing, against the number of runs each may view."""
    decider = decider_for(state)
    people = sorted(key[0] for key in state.rows["user"])
    by_teams = sorted(people, key=lambda u: len(state.user_teams.get(u, ())))
    chosen = by_teams[:: max(1, len(by_teams) // users)][:users]
    rows = []
    for user in chosen:

        def page(token: str, size: int = 100, who: str = user) -> listing.Page:
            return listing.list_resources(
                decider, subject_kind="user", subject_id=who, action="run.view", kind="run", context={},
                size=size, token=token,
            )  # fmt: skip

        start = time.perf_counter()
        first = page("")
        first_ms = (time.perf_counter() - start) * 1000
        start, total, token = time.perf_counter(), len(first.ids), first.next_token
        while token:
            nxt = page(token, 1000)
            total += len(nxt.ids)
            token = nxt.next_token
        full_ms = (time.perf_counter() - start) * 1000 + first_ms
        rows.append({
            "user": user, "teams": len(state.user_teams.get(user, ())), "visible_runs": total,
            "first_page_ms": round(first_ms, 2), "full_listing_ms": round(full_ms, 1),
            "us_per_visible_run": round(full_ms * 1000 / max(total, 1), 1),
        })  # fmt: skip
    return rows


# ---- servers --------------------------------------------------------------------------------


def wait_serving(address: str, timeout: float = 600) -> float:
    start = time.monotonic()
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() - start < timeout:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - start
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise TimeoutError(address)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user+system) of a process and its children, from /proc."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def tree_rss_mb(pid: int) -> float:
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


@contextmanager
def spawned(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` running (output appended to ``log``) for the block; SIGTERM after, then SIGKILL at 30 s."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def process(*args: str, log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`authz ARGS...` with the benchmark's store token."""
    with spawned([sys.executable, "-m", "authz.cli", *args], log, {"AUTHZ_STORE_TOKEN": TOKEN, **(env or {})}) as proc:
        yield proc


@contextmanager
def stack(
    database: str, world: bytes | None, workers: int, tmp: Path, http_port: int | None = None,
    serve_args: tuple[str, ...] = (), serve_env: dict[str, str] | None = None,
) -> Iterator[tuple[str, str, int, float]]:  # fmt: skip
    store_port, port = free_port(), free_port()
    store = f"127.0.0.1:{store_port}"
    address = f"127.0.0.1:{port}"
    http = ("--http", f"127.0.0.1:{http_port}") if http_port is not None else ()
    with process("store", "serve", "--listen", store, "--database-url", database, log=tmp / "store.log"):
        wait_serving(store)
        if world is not None:
            with StoreClient(store, TOKEN) as client:
                client.import_world(world, timeout=3600)
        start = time.monotonic()
        serve = ("serve", "--listen", address, "--store", store, "--workers", str(workers), *http, *serve_args)
        with process(*serve, log=tmp / "authz.log", env=serve_env) as server:
            cold = wait_serving(address)
            _ = start
            yield address, store, server.pid, cold


# ---- (b) load ---------------------------------------------------------------------------------


def messages(requests: list[Request]) -> list[pb.CheckRequest]:
    return [
        pb.CheckRequest(
            subject=pb.ObjectRef(kind=r.subject_kind, id=r.subject_id), action=r.action,
            resource=pb.ObjectRef(kind=r.resource_kind, id=r.resource_id), context=dict(r.context),
        )
        for r in requests
    ]  # fmt: skip


async def _load(
    address: str, checks: list[pb.CheckRequest], concurrency: int, seconds: float, batch: int
) -> dict[str, Any]:
    latencies: list[float] = []
    decisions = 0
    errors = 0
    deadline = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        stub = authorizer_pb2_grpc.AuthorizerStub(channel)

        async def worker(offset: int) -> None:
            nonlocal decisions, errors
            i = offset
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    if batch:
                        items = [checks[(i + k) % len(checks)] for k in range(batch)]
                        await stub.BatchCheck(pb.BatchCheckRequest(checks=items), timeout=10)
                        decisions += batch
                    else:
                        await stub.Check(checks[i % len(checks)], timeout=10)
                        decisions += 1
                except grpc.RpcError:
                    errors += 1
                latencies.append(time.perf_counter() - start)
                i += concurrency

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return {"latencies": latencies, "decisions": decisions, "errors": errors}


def load(
    address: str, pid: int, checks: list[pb.CheckRequest], concurrency: int, seconds: float, batch: int = 0
) -> dict[str, Any]:
    asyncio.run(_load(address, checks, concurrency, 0.5, batch))  # warm up
    cpu_before, start = tree_cpu(pid), time.perf_counter()
    result = asyncio.run(_load(address, checks, concurrency, seconds, batch))
    elapsed, cpu = time.perf_counter() - start, tree_cpu(pid) - cpu_before
    latencies = result["latencies"]
    return {
        "concurrency": concurrency,
        "batch": batch or 1,
        "decisions_per_s": round(result["decisions"] / elapsed),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "server_cpu_ms_per_decision": round(cpu / max(result["decisions"], 1) * 1000, 4),
        "errors": result["errors"],
    }


# ---- (d) propagation ---------------------------------------------------------------------------


def propagation(address: str, store: str, samples: int) -> dict[str, Any]:
    delays = []
    check = pb.CheckRequest(
        subject=pb.ObjectRef(kind="user", id="trent"), action="report.view",
        resource=pb.ObjectRef(kind="report", id="rep-weekly-vision"),
    )  # fmt: skip
    with StoreClient(store, TOKEN) as client, grpc.insecure_channel(address) as channel:
        stub = authorizer_pb2_grpc.AuthorizerStub(channel)
        member = False
        for _ in range(samples):
            if member:
                client.write("RemoveMember", store_pb2.MembershipKey(team="vision", user="trent"))
            else:
                client.write("AddMember", store_pb2.Membership(team="vision", user="trent", role="view_only"))
            acked = time.perf_counter()
            member = not member
            while stub.Check(check, timeout=5).allowed != member:
                pass
            delays.append(time.perf_counter() - acked)
    return {
        "samples": samples,
        "p50_ms": round(percentile(delays, 0.5) * 1000, 2),
        "p99_ms": round(percentile(delays, 0.99) * 1000, 2),
        "max_ms": round(max(delays) * 1000, 2),
    }


# ---- (e) AuthZEN over HTTP, next to gRPC ------------------------------------------------------------


def authzen_calls(requests: list[Request], path: str, batch: int) -> list[bytes]:
    """Whole HTTP/1.1 requests (headers and JSON body) for ``path``: one evaluation each, or ``batch``."""

    def item(r: Request) -> dict[str, Any]:
        body: dict[str, Any] = {
            "subject": {"type": r.subject_kind, "id": r.subject_id}, "action": {"name": r.action},
            "resource": {"type": r.resource_kind, "id": r.resource_id},
        }  # fmt: skip
        if r.context:
            body["context"] = dict(r.context)
        return body

    if batch:
        documents = [
            {"evaluations": [item(requests[(i + k) % len(requests)]) for k in range(batch)]}
            for i in range(0, len(requests), batch)
        ]
    else:
        documents = [item(r) for r in requests]
    calls = []
    for document in documents:
        body = json.dumps(document).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        calls.append(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return calls


async def _http_load(port: int, calls: list[bytes], concurrency: int, seconds: float, per_call: int) -> dict[str, Any]:
    latencies: list[float] = []
    decisions = 0
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal decisions, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(calls[i % len(calls)])
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                if status.startswith(b"HTTP/1.1 200"):
                    decisions += per_call
                else:
                    errors += 1
                latencies.append(time.perf_counter() - start)
                i += concurrency
        finally:
            writer.close()

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return {"latencies": latencies, "decisions": decisions, "errors": errors}


def http_load(
    port: int, pid: int, calls: list[bytes], concurrency: int, seconds: float, batch: int = 0
) -> dict[str, Any]:
    per_call = batch or 1
    asyncio.run(_http_load(port, calls, concurrency, 0.5, per_call))  # warm up
    cpu_before, start = tree_cpu(pid), time.perf_counter()
    result = asyncio.run(_http_load(port, calls, concurrency, seconds, per_call))
    elapsed, cpu = time.perf_counter() - start, tree_cpu(pid) - cpu_before
    latencies = result["latencies"]
    return {
        "concurrency": concurrency,
        "batch": per_call,
        "decisions_per_s": round(result["decisions"] / elapsed),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "server_cpu_ms_per_decision": round(cpu / max(result["decisions"], 1) * 1000, 4),
        "errors": result["errors"],
    }


def http_vs_grpc(
    address: str, http_port: int, pid: int, requests: list[Request], seconds: float
) -> list[dict[str, Any]]:
    """The four rows of (e), in one run against the same server processes."""
    checks = messages(requests)
    rows = [
        {"call": "gRPC Check", **load(address, pid, checks, 16, seconds)},
        {"call": "HTTP evaluation", **http_load(http_port, pid, authzen_calls(requests, "/access/v1/evaluation", 0),
                                                16, seconds)},
        {"call": "gRPC BatchCheck", **load(address, pid, checks, 16, seconds, batch=50)},
        {"call": "HTTP evaluations", **http_load(http_port, pid, authzen_calls(requests, "/access/v1/evaluations", 50),
                                                 16, seconds, batch=50)},
    ]  # fmt: skip
    for row in rows:
        print("(e)", row, flush=True)
    return rows


# ---- (f) against the Python ceiling --------------------------------------------------------------


@contextmanager
def ceiling_server(answers: Path, workers: int, tmp: Path, threads: int = 32) -> Iterator[tuple[str, int]]:
    """bench/ceiling.py on a free port with ``workers`` processes of ``threads`` threads: (address, pid)."""
    address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, str(ROOT / "bench" / "ceiling.py"), "--listen", address, "--answers", str(answers),
               "--workers", str(workers), "--max-workers", str(threads)]  # fmt: skip
    with spawned(command, tmp / "ceiling.log") as proc:
        wait_serving(address, 60)
        yield address, proc.pid


def brief(row: dict[str, Any]) -> str:
    return (f"{row['decisions_per_s']:>7}/s p50 {row['p50_ms']:.3f} p99 {row['p99_ms']:.3f} ms "
            f"cpu {row['server_cpu_ms_per_decision']:.4f} ms")  # fmt: skip


CEILING_ROWS = (("Check", 1, 0), ("Check", 16, 0), ("BatchCheck", 16, 50))


def vs_ceiling(
    requests: list[Request],
    workers: int,
    seconds: float,
    rounds: int,
    serve_args: tuple[str, ...],
    baseline: Path | None = None,
    threads: int = 32,
    uncached: bool = False,
) -> dict[str, Any]:
    """(f): the decision service and the dict ceiling, one after the other for each row, ``rounds`` times.

    Both run ``workers`` processes of ``threads`` threads. With ``uncached``, a second decision service
    with its decision cache off (every call decides) is measured in the same rows; with ``baseline`` (a
    copy of src/ with older code), that code's service too.
    """
    import ceiling

    checks = messages(requests)
    if threads != 32:  # `serve`'s default; older code (--baseline-src) may not have the option
        serve_args = ("--threads", str(threads), *serve_args)
    out: dict[str, Any] = {"workers": workers, "threads": threads, "serve_args": list(serve_args), "rows": []}
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as servers:
        tmp = Path(tmp_name)
        others: list[tuple[str, str, int]] = []  # (label, address, pid) of the services measured besides
        if baseline is not None:
            (tmp / "old").mkdir()
            env = {"PYTHONPATH": str(baseline.resolve())}
            before = servers.enter_context(stack(f"sqlite:///{tmp / 'old' / 'demo.db'}", DEMO.read_bytes(), workers,
                                                 tmp / "old", serve_args=serve_args, serve_env=env))  # fmt: skip
            others.append(("baseline", before[0], before[2]))
        if uncached:
            (tmp / "uncached").mkdir()
            database = f"sqlite:///{tmp / 'uncached' / 'demo.db'}"
            bare = servers.enter_context(stack(database, DEMO.read_bytes(), workers, tmp / "uncached",
                                               serve_args=(*serve_args, "--decision-cache=0")))  # fmt: skip
            others.append(("uncached", bare[0], bare[2]))
        demo = f"sqlite:///{tmp / 'demo.db'}"
        with stack(demo, DEMO.read_bytes(), workers, tmp, serve_args=serve_args) as (address, _store, pid, _):
            # The ceiling answers with the real service's own responses (the same bytes on the wire).
            with grpc.insecure_channel(address) as channel:
                stub = authorizer_pb2_grpc.AuthorizerStub(channel)
                responses = [
                    r for i in range(0, len(checks), 1000)
                    for r in stub.BatchCheck(pb.BatchCheckRequest(checks=checks[i : i + 1000]), timeout=30).results
                ]  # fmt: skip
            answers = tmp / "answers.bin"
            ceiling.write_answers(answers, checks, responses)
            with ceiling_server(answers, workers, tmp, threads) as (dict_address, dict_pid):
                for round_ in range(rounds):
                    for method, concurrency, batch in CEILING_ROWS:
                        real = load(address, pid, checks, concurrency, seconds, batch)
                        top = load(dict_address, dict_pid, checks, concurrency, seconds, batch)
                        row = {
                            "round": round_ + 1, "call": method, "concurrency": concurrency, "batch": batch or 1,
                            "authz": real, "ceiling": top,
                            "ratio_decisions_per_s": round(real["decisions_per_s"] / max(top["decisions_per_s"], 1), 3),
                            "ratio_cpu_per_decision": round(
                                real["server_cpu_ms_per_decision"] / max(top["server_cpu_ms_per_decision"], 1e-9), 3
                            ),
                        }  # fmt: skip
                        line = (f"(f) {method:<10} c={concurrency:<3} batch={batch or 1:<3} authz {brief(real)} | "
                                f"ceiling {brief(top)} | ratio {row['ratio_decisions_per_s']:.2f}x")  # fmt: skip
                        for label, other_address, other_pid in others:
                            measured = load(other_address, other_pid, checks, concurrency, seconds, batch)
                            ratio = round(measured["decisions_per_s"] / max(top["decisions_per_s"], 1), 3)
                            row[label], row[f"{label}_ratio_decisions_per_s"] = measured, ratio
                            line += f" | {label} {brief(measured)} ({ratio:.2f}x)"
                        out["rows"].append(row)
                        print(line, flush=True)
    return out


def large_replica(big_doc: dict[str, Any], workers: int, seconds: float) -> dict[str, Any]:
    """(c) alone: cold start (process start to SERVING) and RSS per process once SERVING, over the large
    world on SQLite; then Check at concurrency 1 on it."""
    _, big_requests = known_requests(big_doc, 2000)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        big_yaml = json.dumps(big_doc).encode()
        with stack(f"sqlite:///{tmp / 'big.db'}", big_yaml, workers, tmp) as (address, _store, pid, cold):
            rss = tree_rss_mb(pid)
            one = load(address, pid, messages(big_requests), 1, seconds)
            out = {
                "cold_start_s": round(cold, 1), "rss_mb_all_processes": round(rss), "workers": workers,
                "rss_mb_per_worker": round(rss / max(workers, 1)), "check_c1": one,
            }  # fmt: skip
    print("(c)", out, flush=True)
    return out


# ---- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs in the large world")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load measurement")
    parser.add_argument("--workers", type=int, default=2, help="decision-service processes (SO_REUSEPORT)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--http-only", action="store_true", help="only (e): AuthZEN over HTTP next to gRPC")
    parser.add_argument("--vs-ceiling", action="store_true", help="only (f): against a dict-answering grpc server")
    parser.add_argument("--large-only", action="store_true", help="only (c): cold start and RSS over the large world")
    parser.add_argument("--rounds", type=int, default=1, help="(f): times each pair of rows is measured")
    parser.add_argument("--baseline-src", type=Path, help="(f): also serve from this copy of src/ (older code)")
    parser.add_argument("--threads", type=int, default=32, help="(f): threads per process, service and ceiling alike")
    parser.add_argument(
        "--uncached", action="store_true", help="(f): also measure a service with its decision cache off"
    )
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="(f): an extra argument of `authz serve` (repeatable)"
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "command": "python bench/decisions_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    demo_doc = load_document(DEMO.read_bytes(), str(DEMO))
    demo_state, demo_requests = known_requests(demo_doc, 2000)
    if args.vs_ceiling:
        results["vs_ceiling_demo"] = vs_ceiling(
            demo_requests, args.workers, args.seconds, args.rounds, tuple(args.serve_arg), args.baseline_src,
            args.threads, args.uncached,
        )  # fmt: skip
        output = args.output if args.output != DEFAULT_OUTPUT else DEFAULT_OUTPUT.with_name("ceiling.json")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2))
        return 0
    if args.http_only:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp, http_port = Path(tmp_name), free_port()
            with stack(f"sqlite:///{tmp / 'demo.db'}", DEMO.read_bytes(), args.workers, tmp, http_port) as running:
                address, _store, pid, _ = running
                results["http_vs_grpc_demo"] = http_vs_grpc(address, http_port, pid, demo_requests, args.seconds)
        output = args.output if args.output != DEFAULT_OUTPUT else DEFAULT_OUTPUT.with_name("http.json")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2))
        return 0
    results["in_process_demo"] = in_process(demo_state, demo_requests, args.seconds)
    print("(a) demo", results["in_process_demo"], flush=True)

    if args.large_only:
        results["large_replica"] = large_replica(generate_world(args.runs), args.workers, args.seconds)
        output = args.output if args.output != DEFAULT_OUTPUT else DEFAULT_OUTPUT.with_name("large.json")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2))
        return 0
    big_doc = generate_world(args.runs)
    start = time.perf_counter()
    big_state, big_requests = known_requests(big_doc, 2000)
    results["large_world"] = {
        "runs": args.runs,
        "rows": big_state.count(),
        "build_s": round(time.perf_counter() - start, 1),
    }
    results["in_process_large"] = in_process(big_state, big_requests, args.seconds)
    print("(a) large", results["in_process_large"], flush=True)
    results["list_resources_large"] = list_runs(big_state)
    for row in results["list_resources_large"]:
        print("(list)", row, flush=True)
    del big_state

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        http_port = free_port()
        demo_db = f"sqlite:///{tmp / 'demo.db'}"
        with stack(demo_db, DEMO.read_bytes(), args.workers, tmp, http_port) as (address, store, pid, _):
            checks = messages(demo_requests)
            grpc_results = [load(address, pid, checks, c, args.seconds) for c in (1, 16, 64)]
            grpc_results.append(load(address, pid, checks, 4, args.seconds, batch=100))
            results["grpc_demo"] = grpc_results
            for row in grpc_results:
                print("(b)", row, flush=True)
            results["propagation"] = propagation(address, store, 200)
            print("(d)", results["propagation"], flush=True)
            results["http_vs_grpc_demo"] = http_vs_grpc(address, http_port, pid, demo_requests, args.seconds)
        big_yaml = json.dumps(big_doc).encode()  # JSON is YAML, and much faster to write and read
        with stack(f"sqlite:///{tmp / 'big.db'}", big_yaml, args.workers, tmp) as (address, _store, pid, cold):
            rss = tree_rss_mb(pid)
            big_checks = messages(big_requests)
            one = load(address, pid, big_checks, 1, args.seconds)
            results["large_replica"] = {
                "cold_start_s": round(cold, 1), "rss_mb_all_workers": round(rss), "workers": args.workers,
                "rss_mb_per_worker": round(rss / max(args.workers, 1)), "check_c1": one,
                "latency_ratio_vs_demo_p50": round(one["p50_ms"] / results["grpc_demo"][0]["p50_ms"], 2),
            }  # fmt: skip
            print("(c)", results["large_replica"], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
