"""The grpcio floor, measured with a load generator written in C: server CPU per call, no Python client.

    .venv/bin/python bench/floor.py [--seconds 4] [--workers 1] [--threads 32] [--rounds 2]

decisions_bench.py's load generator is Python (grpc.aio): it shares the two cores with the servers
and costs about as much per call as they do. This drives the same two servers, the decision
service (`authz serve`, demo world, decision cache off: every call decides) and the dict ceiling
(bench/ceiling.py, the same responses from a dict), with `h2load` (nghttp2, C; Debian package
`nghttp2-client`) speaking gRPC over HTTP/2: one connection, 16 streams in flight, the same
framed request repeated for `--seconds`. Check sends one request; BatchCheck the first 50 of the
benchmark's requests. Before those, Check one call at a time (concurrency 1): p50 and p99 of the
call times h2load logs, a latency the client adds almost nothing to. Server CPU per decision is
utime+stime of the server's processes from /proc over the measurement; every call must answer
grpc-status 0 (h2load counts a gRPC error as an HTTP success, so the script first checks each
body once with a Python client).

Results go to bench/results/floor.json and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ceiling
import decisions_bench as bench
from authz.v1 import authorizer_pb2 as pb
from authz.v1 import authorizer_pb2_grpc
from store.world import load_document

OUTPUT = bench.ROOT / "bench" / "results" / "floor.json"
CALLS = (("Check", 1), ("BatchCheck", 50))


def framed(message: Any) -> bytes:
    """A gRPC message on the wire: not compressed, its length, its bytes."""
    data = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(data)) + data


def h2load(port: int, method: str, body: Path, seconds: int, streams: int = 16) -> tuple[float, int, int]:
    """(calls/s, calls answered, calls failed) from h2load's summary."""
    out = subprocess.run(
        ["h2load", "-c", "1", "-m", str(streams), "-D", str(seconds), "-d", str(body),
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         f"http://127.0.0.1:{port}/authz.v1.Authorizer/{method}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    rate = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out.stdout)
    done = re.search(r"(\d+) succeeded, (\d+) failed", out.stdout)
    if rate is None or done is None:
        raise RuntimeError(f"h2load gave no summary: {out.stdout[-400:]} {out.stderr[-400:]}")
    return float(rate.group(1)), int(done.group(1)), int(done.group(2))


def latency(port: int, body: Path, seconds: int, log: Path) -> dict[str, Any]:
    """Check one call at a time (concurrency 1): p50 and p99 of each call's time, from h2load's log."""
    log.unlink(missing_ok=True)
    done = subprocess.run(
        ["h2load", "-c", "1", "-m", "1", "-D", str(seconds), "-d", str(body), "--log-file", str(log),
         "-H", "content-type: application/grpc", "-H", "te: trailers", f"http://127.0.0.1:{port}/authz.v1.Authorizer/Check"],
        capture_output=True, check=False,
    )  # fmt: skip
    # Columns: start (µs since the epoch), HTTP status (-1: the stream failed), µs until the response ended.
    rows = [line.split() for line in log.read_text().splitlines() if line.strip()]
    times = sorted(int(row[2]) for row in rows if row[1] == "200")
    if done.returncode != 0 or not times:
        raise RuntimeError(f"h2load (exit {done.returncode}): {len(times)} of {len(rows)} calls answered")
    return {
        "calls": len(times),
        "p50_ms": bench.percentile(times, 0.5) / 1e3,
        "p99_ms": bench.percentile(times, 0.99) / 1e3,
    }


def measure(address: str, pid: int, bodies: dict[str, Path], seconds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"Check c=1": latency(int(address.rsplit(":", 1)[1]), bodies["Check"], seconds,
                                                bodies["Check"].with_suffix(".log"))}  # fmt: skip
    for method, per_call in CALLS:
        before = bench.tree_cpu(pid)
        rate, answered, failed = h2load(int(address.rsplit(":", 1)[1]), method, bodies[method], seconds)
        cpu = bench.tree_cpu(pid) - before
        out[method] = {
            "decisions_per_s": round(rate * per_call),
            "server_cpu_ms_per_decision": round(cpu / max(answered * per_call, 1) * 1e3, 4),
            "calls": answered, "failed": failed,
        }  # fmt: skip
    return out


def check_answers(address: str, requests: dict[str, Any]) -> None:
    """The bodies h2load sends are answered with grpc-status 0 (a gRPC error would look like a success)."""
    with grpc.insecure_channel(address) as channel:
        stub = authorizer_pb2_grpc.AuthorizerStub(channel)
        stub.Check(requests["Check"], timeout=10)
        stub.BatchCheck(requests["BatchCheck"], timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="processes of each server (SO_REUSEPORT)")
    parser.add_argument("--threads", type=int, default=32, help="threads per process, both servers")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if shutil.which("h2load") is None:
        print("floor.py needs h2load (Debian: apt-get install nghttp2-client)", file=sys.stderr)
        return 2
    _, requests = bench.known_requests(load_document(bench.DEMO.read_bytes(), str(bench.DEMO)), 2000)
    checks = bench.messages(requests)
    asked = {"Check": checks[0], "BatchCheck": pb.BatchCheckRequest(checks=checks[:50])}
    results: dict[str, Any] = {
        "command": "python bench/floor.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "rounds": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bodies = {method: tmp / f"{method}.bin" for method, _ in CALLS}
        for method, path in bodies.items():
            path.write_bytes(framed(asked[method]))
        serve_args = ("--decision-cache=0", "--threads", str(args.threads))
        with bench.stack(f"sqlite:///{tmp / 'demo.db'}", bench.DEMO.read_bytes(), args.workers, tmp,
                         serve_args=serve_args) as (address, _store, pid, _):  # fmt: skip
            with grpc.insecure_channel(address) as channel:
                responses = (
                    authorizer_pb2_grpc.AuthorizerStub(channel)
                    .BatchCheck(pb.BatchCheckRequest(checks=checks[:1000]), timeout=30)
                    .results
                )
            answers = tmp / "answers.bin"
            ceiling.write_answers(answers, checks[:1000], list(responses))
            with bench.ceiling_server(answers, args.workers, tmp, args.threads) as (dict_address, dict_pid):
                check_answers(address, asked)
                check_answers(dict_address, asked)
                for round_ in range(args.rounds):
                    row = {"authz": measure(address, pid, bodies, args.seconds),
                           "ceiling": measure(dict_address, dict_pid, bodies, args.seconds)}  # fmt: skip
                    results["rounds"].append(row)
                    ours, top = row["authz"]["Check c=1"], row["ceiling"]["Check c=1"]
                    print(f"(floor) round {round_ + 1} Check c=1  authz p50 {ours['p50_ms']:.3f} p99 "
                          f"{ours['p99_ms']:.3f} ms | ceiling p50 {top['p50_ms']:.3f} p99 {top['p99_ms']:.3f} ms",
                          flush=True)  # fmt: skip
                    for method, _ in CALLS:
                        ours, top = row["authz"][method], row["ceiling"][method]
                        print(f"(floor) round {round_ + 1} {method:<10} authz {ours['decisions_per_s']:>7}/s cpu "
                              f"{ours['server_cpu_ms_per_decision']:.4f} ms | ceiling {top['decisions_per_s']:>7}/s "
                              f"cpu {top['server_cpu_ms_per_decision']:.4f} ms", flush=True)  # fmt: skip
                    time.sleep(0.2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
