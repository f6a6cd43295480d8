"""Soak: mixed load for a set time, with a store restart and policy reloads in the middle.

    .venv/bin/python bench/soak.py [--minutes 10]

Runs a store and a decision service as processes on loopback (SQLite, demo world), then for the
whole duration: Check and BatchCheck callers, and store writers (memberships toggled, runs
created). Halfway, the store is killed with SIGKILL and restarted; every minute a policy file
is edited (a valid edit, and once a broken one that is then reverted).

Every few seconds the writers pause and the soak compares a sample of decisions, made by the
service at revision R with policy version V, against the reference evaluation (pycasbin's
Enforcer, in this process, on a replica at R with the same policy files). It reports requests,
errors by status, decisions that disagree with the reference, writes acknowledged but missing at
the end, and the service's memory growth. Results: bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from authz.decider import Decider  # noqa: E402
from authz.decision import Request  # noqa: E402
from authz.engines import engine_factory  # noqa: E402
from authz.engines.holder import EngineHolder  # noqa: E402
from authz.policy import load_policy  # noqa: E402
from authz.replica import Replica  # noqa: E402
from authz.testing import random_requests, state_from_file  # noqa: E402
from authz.v1 import authorizer_pb2 as pb  # noqa: E402
from authz.v1 import authorizer_pb2_grpc  # noqa: E402
from decisions_bench import TOKEN, free_port, messages, process, tree_rss_mb, wait_serving  # noqa: E402
from store.client import StoreClient  # noqa: E402
from store.v1 import store_pb2  # noqa: E402

DEMO = ROOT / "examples" / "demo-world.yaml"
PEOPLE = ["trent", "rupert", "sybil"]
LIVE_RUNS = 50  # runs each writer keeps; older ones are deleted


class Soak:
    def __init__(self, tmp: Path, minutes: float) -> None:
        self.tmp = tmp
        self.seconds = minutes * 60
        self.policies = tmp / "policies"
        shutil.copytree(ROOT / "policies", self.policies)
        self.store_port, self.port = free_port(), free_port()
        self.store = f"127.0.0.1:{self.store_port}"
        self.address = f"127.0.0.1:{self.port}"
        self.stop = threading.Event()
        self.pause = threading.Event()  # set: writers hold off
        self.idle = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.acked: list[str] = []  # runs whose creation was acknowledged and not yet deleted
        self.deleted: list[str] = []  # runs whose deletion was acknowledged
        self.created = 0
        self.wrong: list[str] = []
        self.compared = 0
        state = state_from_file(DEMO)
        self.requests = [
            r for r in random_requests(random.Random(7), state, load_policy(self.policies), 3000)
            if r.subject_id != "ghost" and r.resource_id != "missing"
        ]  # fmt: skip

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def error(self, call: str, exc: grpc.RpcError) -> None:
        with self.lock:
            self.errors[f"{call} {exc.code().name}"] += 1

    # -- load --

    def checker(self, seed: int, batch: bool) -> None:
        rng = random.Random(seed)
        checks = messages(self.requests)
        with grpc.insecure_channel(self.address) as channel:
            stub = authorizer_pb2_grpc.AuthorizerStub(channel)
            while not self.stop.is_set():
                try:
                    if batch:
                        stub.BatchCheck(pb.BatchCheckRequest(checks=rng.sample(checks, 50)), timeout=10)
                        self.count("batch_checks")
                        self.count("decisions", 50)
                    else:
                        stub.Check(rng.choice(checks), timeout=10)
                        self.count("checks")
                        self.count("decisions")
                except grpc.RpcError as exc:
                    self.error("BatchCheck" if batch else "Check", exc)

    def writer(self, seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        mine: list[str] = []  # this writer's runs that exist, oldest first
        with StoreClient(self.store, TOKEN) as client:
            while not self.stop.is_set():
                if self.pause.is_set():
                    self.idle.release()
                    while self.pause.is_set() and not self.stop.is_set():
                        time.sleep(0.01)
                    continue
                try:
                    if rng.random() < 0.5:
                        person = PEOPLE[seed % len(PEOPLE)]  # one person per writer: no write races
                        try:
                            client.write("AddMember", store_pb2.Membership(team="vision", user=person, role="member"))
                        except grpc.RpcError as exc:
                            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                                raise
                            client.write("RemoveMember", store_pb2.MembershipKey(team="vision", user=person))
                    elif len(mine) >= LIVE_RUNS:
                        # Keep the world's size steady, so memory growth means a leak, not data.
                        oldest = mine[0]
                        client.write("DeleteRun", store_pb2.Key(id=oldest))
                        mine.pop(0)
                        with self.lock:
                            self.acked.remove(oldest)
                            self.deleted.append(oldest)
                    else:
                        # A new id for every attempt: a write committed just before the store was
                        # killed, but never acknowledged, must not block this writer.
                        run = f"soak-{seed}-{n}"
                        n += 1
                        client.write(
                            "CreateRun", store_pb2.Run(id=run, project="vision-detection", creator="user:carol")
                        )
                        mine.append(run)
                        with self.lock:
                            self.acked.append(run)
                            self.created += 1
                    self.count("writes")
                except grpc.RpcError as exc:
                    self.error("write", exc)  # UNAVAILABLE while the store is down is expected
                    time.sleep(0.05)
                time.sleep(0.005)

    # -- comparison with the reference --

    def compare(self, reference: Replica) -> None:
        self.pause.set()
        for _ in range(2):
            self.idle.acquire(timeout=5)
        try:
            with StoreClient(self.store, TOKEN) as client:
                revision = client.revision()
            if not reference.wait_for(revision, 10):
                return
            policy = load_policy(self.policies)
            decider = Decider(reference, EngineHolder(policy, engine_factory("casbin")))
            sample = random.sample(self.requests, 40)
            with grpc.insecure_channel(self.address) as channel:
                stub = authorizer_pb2_grpc.AuthorizerStub(channel)
                for request, message in zip(sample, messages(sample), strict=True):
                    message.min_revision = revision
                    got = stub.Check(message, timeout=10)
                    if got.revision != revision or got.policy_version != policy.version:
                        continue  # not the same revision and policy: nothing to compare
                    want = decider.check(
                        Request(request.subject_kind, request.subject_id, request.action, request.resource_kind,
                                request.resource_id, request.context)
                    )  # fmt: skip
                    self.compared += 1
                    if want.allowed != got.allowed or list(want.rules) != list(got.rules):
                        self.wrong.append(f"{request} at {revision}: service {got.allowed} {list(got.rules)}, "
                                          f"reference {want.allowed} {list(want.rules)}")  # fmt: skip
        except grpc.RpcError as exc:
            self.error("compare", exc)
        finally:
            self.pause.clear()

    # -- the run --

    def run(self) -> dict[str, Any]:
        db = f"sqlite:///{self.tmp / 'soak.db'}"
        store = process("store", "serve", "--listen", self.store, "--database-url", db, log=self.tmp / "store.log")
        store_proc = store.__enter__()
        wait_serving(self.store)
        with StoreClient(self.store, TOKEN) as client:
            client.import_world(DEMO.read_bytes())
        events: list[str] = []
        with process("serve", "--listen", self.address, "--store", self.store, "--policies", str(self.policies),
                     log=self.tmp / "authz.log") as server:  # fmt: skip
            wait_serving(self.address)
            reference = Replica(StoreClient(self.store, TOKEN))
            reference.start()
            threads = [threading.Thread(target=self.checker, args=(i, i == 2)) for i in range(3)]
            threads += [threading.Thread(target=self.writer, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            time.sleep(5)
            rss_start = tree_rss_mb(server.pid)
            start = time.monotonic()
            next_compare, next_policy, restarted, minute = start, start + 60, False, 0
            while time.monotonic() - start < self.seconds:
                now = time.monotonic()
                if now >= next_compare:
                    self.compare(reference)
                    next_compare = now + 5
                if not restarted and now - start >= self.seconds / 2:
                    store_proc.send_signal(signal.SIGKILL)
                    store_proc.wait(10)
                    time.sleep(2)
                    store.__exit__(None, None, None)
                    store = process("store", "serve", "--listen", self.store, "--database-url", db,
                                    log=self.tmp / "store.log")  # fmt: skip
                    store_proc = store.__enter__()
                    wait_serving(self.store)
                    restarted = True
                    events.append(f"{now - start:.0f}s: store killed and restarted")
                if now >= next_policy:
                    minute += 1
                    self.edit_policy(minute, events, now - start)
                    next_policy = now + 60
                time.sleep(0.2)
            rss_end = tree_rss_mb(server.pid)
            self.stop.set()
            for thread in threads:
                thread.join(30)
            reference.stop()
        with StoreClient(self.store, TOKEN) as client:
            missing = [run for run in self.acked if _missing(client, run)]
            missing += [run for run in self.deleted if not _missing(client, run)]  # a delete undone
        store.__exit__(None, None, None)
        return {
            "minutes": self.seconds / 60,
            "requests": dict(self.counts),
            "errors_by_status": dict(self.errors),
            "decisions_compared_with_reference": self.compared,
            "wrong_decisions": len(self.wrong),
            "wrong_examples": self.wrong[:5],
            "runs_created_acknowledged": self.created,
            "runs_deleted_acknowledged": len(self.deleted),
            "writes_lost": len(missing),
            "rss_mb_start": round(rss_start, 1),
            "rss_mb_end": round(rss_end, 1),
            "memory_growth_percent": round((rss_end - rss_start) / rss_start * 100, 1),
            "events": events,
        }

    def edit_policy(self, minute: int, events: list[str], at: float) -> None:
        path = self.policies / "reports.csv"
        text = path.read_text()
        if minute == 3:
            path.write_text(text + "p, RP3, report.edit, team:member, r.obj.creator ==, allow\n")
            time.sleep(2)
            path.write_text(text)
            events.append(f"{at:.0f}s: broken policy edit, then reverted")
        else:
            path.write_text(text + f"# soak edit {minute}\n")
            events.append(f"{at:.0f}s: valid policy edit (new version)")


def _missing(client: StoreClient, run: str) -> bool:
    try:
        client.call("Get", store_pb2.GetRequest(kind="run", id=run))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return True
        raise
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = Soak(Path(tmp), args.minutes).run()
    result["command"] = "python bench/soak.py " + " ".join(sys.argv[1:] if argv is None else argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    ok = result["wrong_decisions"] == 0 and result["writes_lost"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
