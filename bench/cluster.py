"""Scale out: two store instances on one PostgreSQL, three decision services, faults mid-run.

    AUTHZ_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/cluster.py [--seconds 30] [--samples 200] [--sizing-runs 1000000]

Everything runs as processes on loopback: stores A and B (`authz store serve`, one fresh schema),
replicas R0 and R1 (`authz serve --store A,B`) and R2 (`--store B,A`). Two modes, in one run, each
on its own fresh schema: NOTIFY (the stores announce each commit and LISTEN for the others') and
polling only (`store serve --no-notify`: a Watch stream finds another instance's commit within
0.25 s). In each mode:

1. Propagation: ``--samples`` writes (a membership toggled), alternately through A and B. After
   each acknowledgement at revision N, a Check with ``min_revision`` N goes to every replica at
   once; it returns when that replica has applied N, so its return, minus the acknowledgement, is
   the write->visible delay. Split by whether the write went through the store the replica
   follows (same instance) or the other one (cross-instance: what NOTIFY is for).
2. NOTIFY mode only, faults under load for ``--seconds``. Two Check callers behave like a load
   balancer: round robin over the replicas; a call that fails is retried on the next replica and
   the one that failed is skipped for a second. Two writers write through A and B (each moves to
   the other store when its own fails) and, after each acknowledged write, ask every live replica
   with ``min_revision`` for the decision the write implies. At 1/3 of the run store A is killed
   (SIGKILL), at 1/2 replica R1. Reported: write->visible p50/p99 per replica; failover time
   (from the kill until the replica follows B and is connected, from its metric
   ``authz_replica_store_followed``, read live); decisions answered and calls failed during the
   faults; wrong decisions (an answer that is not what the acknowledged write implies); lost
   writes (at the end, read back through B: an acknowledged run missing, a deleted one back, a
   membership not as last acknowledged).

Sizing (``--sizing-runs N``): a generated world of N runs imported into another schema; one decision
service started over it: cold start (process start to SERVING), RSS, and decisions per CPU
second of the server under Check load at concurrency 16.

Results: bench/results/cluster.json and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from authz.v1 import authorizer_pb2 as apb  # noqa: E402
from authz.v1 import authorizer_pb2_grpc  # noqa: E402
from decisions_bench import (  # noqa: E402
    TOKEN,
    free_port,
    known_requests,
    load,
    messages,
    percentile,
    process,
    tree_rss_mb,
    wait_serving,
)
from import_bench import postgres_database  # noqa: E402
from store.changes import record  # noqa: E402
from store.client import StoreClient  # noqa: E402
from store.database import open_database  # noqa: E402
from store.importer import import_world  # noqa: E402
from store.schema import migrate  # noqa: E402
from store.v1 import store_pb2 as pb  # noqa: E402
from store.world import parse_world  # noqa: E402
from worldgen import generate_world  # noqa: E402

REPLICA_HEALTH = "authz.v1.Authorizer/replica"
WRITERS = 2
LIVE_RUNS = 5  # runs a writer keeps; older ones are deleted
EJECTION = 1.0  # seconds a load balancer skips a replica after a failed call (passive health checking)


def world() -> bytes:
    users = ["carol", "prop", *(f"w{i}" for i in range(WRITERS))]
    document = {
        "orgs": [{"id": "acme", "users": users}],
        "teams": [{"id": "vision", "org": "acme", "members": {"carol": "member"}}],
        "projects": [{"id": "p", "owner": "team:vision", "visibility": "team", "creator": "carol"}],
        "runs": [{"id": "keep", "project": "p", "creator": "carol"}],
    }
    return json.dumps({"world": document}).encode()


class Endpoint:
    """Plain gRPC calls to one decision service: no client-side retries (the load balancer decides)."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)
        self.stub = authorizer_pb2_grpc.AuthorizerStub(self.channel)
        self.timeout = timeout

    def check(self, subject: str, action: str, resource: str, min_revision: int = 0) -> apb.CheckResponse:
        (skind, _, sid), (rkind, _, rid) = subject.partition(":"), resource.partition(":")
        request = apb.CheckRequest(
            subject=apb.ObjectRef(kind=skind, id=sid), action=action, resource=apb.ObjectRef(kind=rkind, id=rid),
            min_revision=min_revision,
        )  # fmt: skip
        return self.stub.Check(request, timeout=self.timeout)

    def close(self) -> None:
        self.channel.close()


def ms(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"samples": 0}
    return {
        "samples": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def following(address: str) -> str:
    """The store a replica says (health) it follows, or '' when it is not connected."""
    with grpc.insecure_channel(address) as channel:
        _, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(service=REPLICA_HEALTH), timeout=2
        )
    detail = dict(call.trailing_metadata()).get("replica", "")
    prefix = "connected to "
    return str(detail)[len(prefix) :].split(";", 1)[0] if str(detail).startswith(prefix) else ""


# ---- the cluster -------------------------------------------------------------------------------


@dataclass
class Cluster:
    stores: list[str]
    replicas: list[str]
    metrics: dict[str, int]  # replica address -> its metrics port
    procs: dict[str, Any] = field(default_factory=dict)  # name (A, B, R0, ...) -> Popen

    def follows(self, replica: str, store: str) -> bool:
        """Whether ``replica`` follows ``store`` and is connected to it now (its metrics, read live)."""
        url = f"http://127.0.0.1:{self.metrics[replica]}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
        return f'authz_replica_store_followed{{store="{store}"}} 1.0' in text


@contextmanager
def cluster(database: str, tmp: Path, *, notify: bool) -> Iterator[Cluster]:
    stores = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    replicas = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    running = Cluster(stores, replicas, {address: free_port() for address in replicas})
    with ExitStack() as stack:
        for name, address in zip("AB", stores, strict=True):
            flags = [] if notify else ["--no-notify"]
            running.procs[name] = stack.enter_context(
                process("store", "serve", "--listen", address, "--database-url", database, *flags,
                        log=tmp / f"store-{name}.log")
            )  # fmt: skip
            wait_serving(address)  # A migrates the schema before B starts
        with StoreClient(stores[0], TOKEN) as client:
            loaded = client.import_world(world()).revision
        orders = [f"{stores[0]},{stores[1]}"] * 2 + [f"{stores[1]},{stores[0]}"]
        for n, (address, order) in enumerate(zip(replicas, orders, strict=True)):
            args = ["serve", "--listen", address, "--store", order, "--metrics-port", str(running.metrics[address])]
            running.procs[f"R{n}"] = stack.enter_context(process(*args, log=tmp / f"replica-{n}.log"))
        for address in replicas:
            wait_serving(address)
            replica = Endpoint(address, timeout=30)
            replica.check("user:carol", "run.view", "run:keep", min_revision=loaded)
            replica.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(following(r) for r in replicas):
            time.sleep(0.05)
        yield running


# ---- propagation ---------------------------------------------------------------------------------


def propagation(running: Cluster, samples: int) -> dict[str, Any]:
    """Write->visible on every replica, same-instance and cross-instance, ``samples`` writes."""
    followed = {r: following(r) for r in running.replicas}
    delays: dict[str, dict[str, list[float]]] = {r: {"same": [], "cross": []} for r in running.replicas}
    wrong: list[str] = []
    stores = [StoreClient(address, TOKEN) for address in running.stores]
    deciders = [Endpoint(address, timeout=30) for address in running.replicas]
    member = False
    try:
        with ThreadPoolExecutor(len(deciders)) as pool:
            for n in range(samples):
                through = n % len(stores)
                if member:
                    revision = stores[through].write("RemoveMember", pb.MembershipKey(team="vision", user="prop"))
                else:
                    revision = stores[through].write(
                        "AddMember", pb.Membership(team="vision", user="prop", role="member")
                    )
                acked = time.perf_counter()
                member = not member

                def visible(decider: Endpoint, revision: int = revision) -> tuple[float, bool, int]:
                    decision = decider.check("user:prop", "run.view", "run:keep", min_revision=revision)
                    return time.perf_counter(), decision.allowed, decision.revision

                for address, future in zip(running.replicas, [pool.submit(visible, d) for d in deciders], strict=True):
                    seen, allowed, at = future.result()
                    kind = "same" if followed[address] == running.stores[through] else "cross"
                    delays[address][kind].append(seen - acked)
                    if allowed != member or at < revision:
                        wrong.append(f"{address} at {revision}: allowed {allowed} at {at}, expected {member}")
                time.sleep(random.uniform(0.005, 0.02))  # writes at uneven moments, not in step with polls
    finally:
        for client in stores:
            client.close()
        for decider in deciders:
            decider.close()
    every: list[float] = [d for r in delays.values() for kind in r.values() for d in kind]
    cross: list[float] = [d for r in delays.values() for d in r["cross"]]
    return {
        "followed": followed,
        "all_replicas": ms(every),
        "cross_instance": ms(cross),
        "per_replica": {
            r: {"all": ms(k["same"] + k["cross"]), "same_instance": ms(k["same"]), "cross_instance": ms(k["cross"])}
            for r, k in delays.items()
        },
        "wrong_decisions": len(wrong),
        "wrong_examples": wrong[:5],
    }


# ---- faults under load -------------------------------------------------------------------------------


@dataclass
class Faults:
    """What the load saw. Counters are changed under ``lock``; lists are appended to (atomic)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    alive: frozenset[str] = frozenset()  # replicas not killed (writers check these); replaced, never changed
    fault_start: float = 0.0  # time.monotonic() of the first kill; 0 before
    answered: int = 0
    answered_during_faults: int = 0
    failed_calls: int = 0  # every replica refused the call (the load balancer had nowhere to go)
    retried_attempts: int = 0  # attempts that failed on one replica and were retried on another
    wrong: list[str] = field(default_factory=list)
    check_errors: list[str] = field(default_factory=list)
    visible: dict[str, list[float]] = field(default_factory=dict)
    acked_writes: int = 0
    unknown_writes: int = 0

    def count(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.answered += 1
                if self.fault_start:
                    self.answered_during_faults += 1
            else:
                self.failed_calls += 1


def balancer(running: Cluster, faults: Faults, seed: int) -> None:
    """Check calls spread over the replicas like a load balancer: round robin, a failed call retried elsewhere."""
    rng = random.Random(seed)
    checks = [("user:carol", "run.view", "run:keep"), ("user:prop", "run.view", "run:keep"),
              ("user:w0", "run.view", "run:keep"), ("user:carol", "project.view", "project:p")]  # fmt: skip
    clients = [Endpoint(address, timeout=5) for address in running.replicas]
    ejected = [0.0] * len(clients)  # time.monotonic() until which a replica that failed a call is skipped
    turn = seed
    try:
        while not faults.stop.is_set():
            check = rng.choice(checks)
            ok = False
            now = time.monotonic()
            order = [(turn + k) % len(clients) for k in range(len(clients))]
            for n in [n for n in order if ejected[n] <= now] or order:
                try:
                    clients[n].check(*check)
                    ok = True
                    break
                except grpc.RpcError:
                    ejected[n] = time.monotonic() + EJECTION
                    with faults.lock:
                        faults.retried_attempts += 1
            turn += 1
            faults.count(ok)
    finally:
        for client in clients:
            client.close()


class Writer:
    """Writes through its store (the other one once its own fails); checks every live replica after each write."""

    def __init__(self, index: int, running: Cluster, faults: Faults) -> None:
        self.index = index
        self.user = f"w{index}"
        self.stores = running.stores if index % 2 == 0 else running.stores[::-1]
        self.running = running
        self.faults = faults
        self.member = False
        self.runs: list[str] = []
        self.deleted: list[str] = []

    def run(self) -> None:
        stores = [StoreClient(address, TOKEN) for address in self.stores]
        deciders = {address: Endpoint(address) for address in self.running.replicas}
        current, step = 0, 0
        # One check per replica, at once after the acknowledgement: each one's return is its visibility.
        pool = ThreadPoolExecutor(len(deciders), thread_name_prefix=f"verify-{self.index}")
        try:
            while not self.faults.stop.is_set():
                step += 1
                try:
                    revision, expect = self._write(stores[current], step)
                except grpc.RpcError as exc:
                    if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        raise
                    with self.faults.lock:
                        self.faults.unknown_writes += 1
                    current = (current + 1) % len(stores)  # the store died around the call: use the other
                    self._reconcile(stores[current])
                    continue
                acked = time.perf_counter()
                with self.faults.lock:
                    self.faults.acked_writes += 1
                alive = self.faults.alive
                checks = [pool.submit(self._verify, deciders[a], revision, expect, acked) for a in alive]
                for check in checks:
                    check.result()
                time.sleep(0.01)
        finally:
            pool.shutdown()
            for client in stores:
                client.close()
            for decider in deciders.values():
                decider.close()

    def _write(self, store: StoreClient, step: int) -> tuple[int, tuple[str, str, bool]]:
        if step % 3 == 0:
            if self.member:
                revision = store.write("RemoveMember", pb.MembershipKey(team="vision", user=self.user))
            else:
                revision = store.write("AddMember", pb.Membership(team="vision", user=self.user, role="member"))
            self.member = not self.member
            return revision, (f"user:{self.user}", "run:keep", self.member)
        if len(self.runs) >= LIVE_RUNS:
            gone = self.runs[0]
            try:
                revision = store.write("DeleteRun", pb.Key(id=gone))
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                revision = store.revision()  # an earlier attempt, cut off by the kill, committed
            self.runs.pop(0)
            self.deleted.append(gone)
            return revision, ("user:carol", f"run:{gone}", False)
        run = f"b-{self.index}-{step}"  # a fresh id per attempt: an unacknowledged create may have committed
        revision = store.write("CreateRun", pb.Run(id=run, project="p", creator="user:carol"))
        self.runs.append(run)
        return revision, ("user:carol", f"run:{run}", True)

    def _verify(self, decider: Endpoint, revision: int, expect: tuple[str, str, bool], acked: float) -> None:
        subject, resource, allowed = expect
        address = decider.address
        try:
            decision = decider.check(subject, "run.view", resource, min_revision=revision)
        except grpc.RpcError as exc:
            if address in self.faults.alive:  # a replica killed meanwhile is no error of the service
                self.faults.check_errors.append(f"{address} at {revision}: {exc.code().name}")
            return
        self.faults.visible.setdefault(address, []).append(time.perf_counter() - acked)
        if decision.allowed != allowed or decision.revision < revision:
            self.faults.wrong.append(
                f"{address}: {subject} run.view {resource} after {revision}: {decision.allowed} at "
                f"{decision.revision}, expected {allowed}"
            )

    def _reconcile(self, store: StoreClient) -> None:
        self.member = exists(store, "membership", f"vision/{self.user}")


def exists(store: StoreClient, kind: str, key: str) -> bool:
    try:
        store.call("Get", pb.GetRequest(kind=kind, id=key), timeout=10)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def fault_run(running: Cluster, seconds: float) -> dict[str, Any]:
    faults = Faults(alive=frozenset(running.replicas))
    writers = [Writer(i, running, faults) for i in range(WRITERS)]
    threads = [threading.Thread(target=w.run, name=f"writer-{w.index}") for w in writers]
    threads += [threading.Thread(target=balancer, args=(running, faults, n), name=f"lb-{n}") for n in range(2)]
    store_a, replica_1 = running.stores[0], running.replicas[1]
    followers_of_a = [r for r in running.replicas if following(r) == store_a]
    failover: dict[str, float] = {}
    events: list[str] = []
    start = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(seconds / 3)
        killed_at = time.monotonic()
        running.procs["A"].send_signal(signal.SIGKILL)
        faults.fault_start = killed_at
        events.append(f"{killed_at - start:.1f}s: store A killed (SIGKILL); followed by {len(followers_of_a)} replicas")
        pending = set(followers_of_a)
        survivor = running.stores[1]
        while pending and time.monotonic() - killed_at < 30:
            for replica in list(pending):
                try:
                    followed = running.follows(replica, survivor)
                except OSError:  # a scrape that timed out on the busy cores: ask again
                    continue
                if followed:
                    failover[replica] = time.monotonic() - killed_at
                    pending.discard(replica)
            time.sleep(0.01)  # resolution 10 ms; faster polling of their metrics would load the replicas
        time.sleep(max(0.0, start + seconds / 2 - time.monotonic()))
        faults.alive = faults.alive - {replica_1}
        running.procs["R1"].send_signal(signal.SIGKILL)
        events.append(f"{time.monotonic() - start:.1f}s: replica R1 killed (SIGKILL)")
        time.sleep(max(0.0, start + seconds - time.monotonic()))
    finally:
        faults.stop.set()
        for thread in threads:
            thread.join(60)
    fault_seconds = time.monotonic() - faults.fault_start
    lost: list[str] = []
    with StoreClient(running.stores[1], TOKEN) as survivor_client:
        for w in writers:
            lost += [f"run {run} missing" for run in w.runs if not exists(survivor_client, "run", run)]
            lost += [f"run {run} back" for run in w.deleted if exists(survivor_client, "run", run)]
            if exists(survivor_client, "membership", f"vision/{w.user}") != w.member:
                lost.append(f"membership of {w.user}")
        final = survivor_client.revision()
    # Every surviving replica ends at the store's last revision with every acknowledged write.
    for address in faults.alive:
        client = Endpoint(address, timeout=30)
        for w in writers:
            for run in w.runs:
                if not client.check("user:carol", "run.view", f"run:{run}", min_revision=final).allowed:
                    faults.wrong.append(f"{address}: run {run} not visible at the end")
            if client.check(f"user:{w.user}", "run.view", "run:keep", min_revision=final).allowed != w.member:
                faults.wrong.append(f"{address}: membership of {w.user} wrong at the end")
        client.close()
    return {
        "seconds": seconds,
        "events": events,
        "failover_s": {r: round(t, 3) for r, t in failover.items()},
        "replicas_not_failed_over": sorted(set(followers_of_a) - set(failover)),
        "write_to_visible": {r: ms(v) for r, v in faults.visible.items()},
        "decisions_answered": faults.answered,
        "decisions_answered_during_faults": faults.answered_during_faults,
        "fault_window_s": round(fault_seconds, 1),
        "calls_failed": faults.failed_calls,
        "attempts_retried_on_another_replica": faults.retried_attempts,
        "writes_acknowledged": faults.acked_writes,
        "writes_cut_off_by_the_kill": faults.unknown_writes,
        "read_your_writes_check_errors": len(faults.check_errors),
        "check_error_examples": faults.check_errors[:5],
        "wrong_decisions": len(faults.wrong),
        "wrong_examples": faults.wrong[:5],
        "lost_writes": len(lost),
        "lost_examples": lost[:5],
    }


# ---- sizing -------------------------------------------------------------------------------------------


def sizing(base: str, runs: int, tmp: Path, seconds: float) -> dict[str, Any]:
    """One decision service over a world of ``runs`` runs on PostgreSQL: cold start, RSS, decisions per core."""
    document = generate_world(runs)
    _, requests = known_requests(document, 2000)
    with postgres_database(base) as database:
        db = open_database(database)
        try:
            migrate(db)
            rows = parse_world(document)
            with db.writing() as session:
                outcome = import_world(session, rows)
                record(session, outcome.changes)
        finally:
            db.dispose()
        del document, rows
        store = f"127.0.0.1:{free_port()}"
        address = f"127.0.0.1:{free_port()}"
        with process("store", "serve", "--listen", store, "--database-url", database, log=tmp / "sizing-store.log"):
            wait_serving(store)
            with process("serve", "--listen", address, "--store", store, log=tmp / "sizing-replica.log") as server:
                cold = wait_serving(address)
                rss = tree_rss_mb(server.pid)
                result = load(address, server.pid, messages(requests), 16, seconds)
    cpu_ms = result["server_cpu_ms_per_decision"]
    return {
        "runs": runs,
        "cold_start_s": round(cold, 1),
        "rss_mb": round(rss),
        "rss_mb_per_million_runs": round(rss / (runs / 1_000_000)),
        "check_c16": result,
        "decisions_per_cpu_second": round(1000 / cpu_ms) if cpu_ms else None,
    }


# ---- main -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("AUTHZ_TEST_POSTGRES_URL"), help="PostgreSQL URL")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the fault run")
    parser.add_argument("--samples", type=int, default=200, help="propagation writes per mode")
    parser.add_argument("--sizing-runs", type=int, default=0, help="also size one replica over N runs (0: skip)")
    parser.add_argument("--sizing-seconds", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "cluster.json")
    args = parser.parse_args(argv)
    if not args.postgres:
        parser.error("needs PostgreSQL: --postgres URL or $AUTHZ_TEST_POSTGRES_URL")
    results: dict[str, Any] = {
        "command": "python bench/cluster.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for mode, notify in (("notify", True), ("poll", False)):
            with postgres_database(args.postgres) as database, cluster(database, tmp, notify=notify) as running:
                results[mode] = {"propagation": propagation(running, args.samples)}
                print(mode, "propagation", json.dumps(results[mode]["propagation"]), flush=True)
                if notify:
                    results[mode]["faults"] = fault_run(running, args.seconds)
                    print(mode, "faults", json.dumps(results[mode]["faults"]), flush=True)
        if args.sizing_runs:
            results["sizing"] = sizing(args.postgres, args.sizing_runs, tmp, args.sizing_seconds)
            print("sizing", json.dumps(results["sizing"]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    faults = results["notify"]["faults"]
    bad = faults["wrong_decisions"] + faults["lost_writes"] + faults["calls_failed"]
    bad += sum(results[mode]["propagation"]["wrong_decisions"] for mode in ("notify", "poll"))
    return 0 if bad == 0 and not faults["replicas_not_failed_over"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
