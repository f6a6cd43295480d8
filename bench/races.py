"""Racing writers: pairs of store writes that contend for one domain rule, run at the same instant.

    .venv/bin/python bench/races.py [--pairs 200] [--database-url URL]...

For each rule, each pair sets up its own fresh entities, then two threads released by one
barrier send the two writes to a running store over gRPC. Afterwards the store is read back
and the pair is judged:

* orphans: a row naming an entity that no longer exists (a registry grant to a deleted team,
  a project member who was deleted, a membership of a deleted team);
* rules broken: a set-once bucket set twice (T8), an acknowledged accepted type missing (G-R7);
* unclear losers: a refused write whose status is not FAILED_PRECONDITION, ABORTED or NOT_FOUND,
  or whose message does not name the entity it was refused for.

`tests/store/test_races.py` runs these scenarios on SQLite and PostgreSQL in CI; this script
runs more pairs and prints the table quoted in RELIABILITY.md (bench/results/races.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from store.client import StoreClient
from store.v1 import store_pb2 as pb

CLEAR_CODES = frozenset({grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND})
ORG = "race-org"
REGISTRY = "race-registry"
PROJECT = "race-project"

Write = tuple[str, object]  # (RPC name, request)


@dataclass
class Call:
    """One write of a racing pair and what came back."""

    method: str
    request: object
    revision: int = 0
    code: grpc.StatusCode | None = None
    details: str = ""

    @property
    def ok(self) -> bool:
        return self.code is None


@dataclass
class Tally:
    """What one rule's racing pairs gave."""

    rule: str
    pairs: int = 0
    both_acknowledged: int = 0
    one_refused: int = 0
    orphans: int = 0
    broken: int = 0
    loser_codes: Counter[str] = field(default_factory=Counter)
    unclear: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule, "pairs": self.pairs, "both_acknowledged": self.both_acknowledged,
            "one_refused": self.one_refused, "orphans": self.orphans, "broken": self.broken,
            "loser_codes": dict(self.loser_codes), "unclear": self.unclear[:5],
        }  # fmt: skip


def _exists(client: StoreClient, kind: str, ident: str) -> bool:
    try:
        client.call("Get", pb.GetRequest(kind=kind, id=ident))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def _get(client: StoreClient, kind: str, ident: str) -> object:
    entity = client.call("Get", pb.GetRequest(kind=kind, id=ident)).entity
    return getattr(entity, kind)


def _race(client: StoreClient, first: Write, second: Write) -> tuple[Call, Call]:
    calls = (Call(*first), Call(*second))
    barrier = threading.Barrier(2)

    def send(call: Call) -> None:
        barrier.wait()
        try:
            call.revision = client.write(call.method, call.request)
        except grpc.RpcError as exc:
            call.code, call.details = exc.code(), exc.details() or ""

    threads = [threading.Thread(target=send, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return calls


@dataclass(frozen=True)
class Scenario:
    """A rule, the setup of pair ``i``, its two racing writes, and the judge of the result.

    ``judge(client, i, calls)`` returns (orphans, rules broken) for the pair; ``names(i)`` are
    the ids a refusal must mention.
    """

    rule: str
    setup: Callable[[StoreClient, int], None]
    writes: Callable[[int], tuple[Write, Write]]
    judge: Callable[[StoreClient, int, tuple[Call, Call]], tuple[int, int]]
    names: Callable[[int], tuple[str, ...]]


def _team(i: int) -> str:
    return f"race-team-{i}"


def _user(i: int) -> str:
    return f"race-user-{i}"


def _account(i: int) -> str:
    return f"race-sa-{i}"


def _grant_vs_team_delete() -> Scenario:
    def setup(client: StoreClient, i: int) -> None:
        client.write("CreateTeam", pb.Team(id=_team(i), org=ORG))

    def writes(i: int) -> tuple[Write, Write]:
        grant = pb.RegistryMember(registry=REGISTRY, member=f"team:{_team(i)}", role="admin")
        return ("AddRegistryMember", grant), ("DeleteTeam", pb.Key(id=_team(i)))

    def judge(client: StoreClient, i: int, calls: tuple[Call, Call]) -> tuple[int, int]:
        grant = f"{REGISTRY}/team:{_team(i)}"
        orphan = not _exists(client, "team", _team(i)) and _exists(client, "registry_member", grant)
        # A team re-created with the same id must not inherit a grant made to the deleted one.
        if not _exists(client, "team", _team(i)):
            client.write("CreateTeam", pb.Team(id=_team(i), org=ORG))
            orphan = orphan or _exists(client, "registry_member", grant)
        return int(orphan), 0

    return Scenario("registry grant to a team vs DeleteTeam", setup, writes, judge, lambda i: (_team(i),))


def _membership_vs_team_delete() -> Scenario:
    def setup(client: StoreClient, i: int) -> None:
        client.write("CreateTeam", pb.Team(id=_team(i), org=ORG))
        client.write("CreateUser", pb.User(id=_user(i), org=ORG, role="member"))

    def writes(i: int) -> tuple[Write, Write]:
        member = pb.Membership(team=_team(i), user=_user(i), role="admin")
        return ("AddMember", member), ("DeleteTeam", pb.Key(id=_team(i)))

    def judge(client: StoreClient, i: int, calls: tuple[Call, Call]) -> tuple[int, int]:
        orphan = not _exists(client, "team", _team(i)) and _exists(client, "membership", f"{_team(i)}/{_user(i)}")
        return int(orphan), 0

    return Scenario("team membership vs DeleteTeam", setup, writes, judge, lambda i: (_team(i),))


def _project_member_vs_user_delete() -> Scenario:
    def setup(client: StoreClient, i: int) -> None:
        client.write("CreateUser", pb.User(id=_user(i), org=ORG, role="member"))

    def writes(i: int) -> tuple[Write, Write]:
        member = pb.ProjectMember(project=PROJECT, member=f"user:{_user(i)}")
        return ("AddProjectMember", member), ("DeleteUser", pb.Key(id=_user(i)))

    def judge(client: StoreClient, i: int, calls: tuple[Call, Call]) -> tuple[int, int]:
        key = f"{PROJECT}/user:{_user(i)}"
        orphan = not _exists(client, "user", _user(i)) and _exists(client, "project_member", key)
        if not _exists(client, "user", _user(i)):
            client.write("CreateUser", pb.User(id=_user(i), org=ORG, role="member"))
            orphan = orphan or _exists(client, "project_member", key)
        return int(orphan), 0

    return Scenario("project member vs DeleteUser", setup, writes, judge, lambda i: (_user(i),))


def _project_member_vs_account_delete() -> Scenario:
    def setup(client: StoreClient, i: int) -> None:
        client.write("CreateServiceAccount", pb.ServiceAccount(id=_account(i), team="race-home"))

    def writes(i: int) -> tuple[Write, Write]:
        member = pb.ProjectMember(project=PROJECT, member=f"service_account:{_account(i)}")
        return ("AddProjectMember", member), ("DeleteServiceAccount", pb.Key(id=_account(i)))

    def judge(client: StoreClient, i: int, calls: tuple[Call, Call]) -> tuple[int, int]:
        key = f"{PROJECT}/service_account:{_account(i)}"
        orphan = not _exists(client, "service_account", _account(i)) and _exists(client, "project_member", key)
        return int(orphan), 0

    return Scenario("project member vs DeleteServiceAccount", setup, writes, judge, lambda i: (_account(i),))


def _bucket_set_once() -> Scenario:
    def setup(client: StoreClient, i: int) -> None:
        client.write("CreateTeam", pb.Team(id=_team(i), org=ORG))

    def writes(i: int) -> tuple[Write, Write]:
        return (
            ("SetStorageBucket", pb.SetStorageBucketRequest(team=_team(i), bucket=f"bucket-a-{i}")),
            ("SetStorageBucket", pb.SetStorageBucketRequest(team=_team(i), bucket=f"bucket-b-{i}")),
        )

    def judge(client: StoreClient, i: int, calls: tuple[Call, Call]) -> tuple[int, int]:
        bucket = _get(client, "team", _team(i)).storage_bucket  # type: ignore[attr-defined]
        acked = [call.request.bucket for call in calls if call.ok]  # type: ignore[attr-defined]
        # T8: set once. Two acknowledged sets, or a bucket other than the one acknowledged, break it.
        return 0, int(len(acked) != 1 or acked[0] != bucket)

    return Scenario("T8 storage bucket set once", setup, writes, judge, lambda i: (_team(i),))


def _accepted_types_grow() -> Scenario:
    def setup(client: StoreClient, i: int) -> None:
        client.write(
            "CreateRegistry",
            pb.Registry(id=f"race-reg-{i}", org=ORG, visibility="organization", restrict_types=True,
                        accepted_types=["model"]),
        )  # fmt: skip

    def writes(i: int) -> tuple[Write, Write]:
        def update(extra: str) -> Write:
            registry = pb.Registry(
                id=f"race-reg-{i}", visibility="organization", restrict_types=True, accepted_types=["model", extra]
            )
            return "UpdateRegistry", registry

        return update("dataset"), update("code")

    def judge(client: StoreClient, i: int, calls: tuple[Call, Call]) -> tuple[int, int]:
        saved = set(_get(client, "registry", f"race-reg-{i}").accepted_types)  # type: ignore[attr-defined]
        acked = {t for call in calls if call.ok for t in call.request.accepted_types}  # type: ignore[attr-defined]
        # G-R7: a type, once saved (acknowledged), is never removed.
        return 0, int(not acked <= saved)

    return Scenario("G-R7 accepted types only grow", setup, writes, judge, lambda i: (f"race-reg-{i}",))


SCENARIOS: tuple[Callable[[], Scenario], ...] = (
    _grant_vs_team_delete,
    _membership_vs_team_delete,
    _project_member_vs_user_delete,
    _project_member_vs_account_delete,
    _bucket_set_once,
    _accepted_types_grow,
)


def prepare(client: StoreClient) -> None:
    """The shared entities every scenario's pairs use."""
    client.write("CreateOrg", pb.Org(id=ORG))
    client.write("CreateTeam", pb.Team(id="race-home", org=ORG))
    client.write("CreateRegistry", pb.Registry(id=REGISTRY, org=ORG, visibility="organization"))
    client.write("CreateProject", pb.Project(id=PROJECT, owner="team:race-home", visibility="restricted", creator=""))


def run_scenario(client: StoreClient, scenario: Scenario, pairs: int, offset: int = 0) -> Tally:
    tally = Tally(scenario.rule)
    for n in range(pairs):
        i = offset + n
        scenario.setup(client, i)
        calls = _race(client, *scenario.writes(i))
        tally.pairs += 1
        refused = [call for call in calls if not call.ok]
        if not refused:
            tally.both_acknowledged += 1
        else:
            tally.one_refused += 1
        for call in refused:
            assert call.code is not None
            tally.loser_codes[call.code.name] += 1
            named = any(name in call.details for name in scenario.names(i))
            if call.code not in CLEAR_CODES or not named:
                tally.unclear.append(f"{call.method}: {call.code.name}: {call.details}")
        orphans, broken = scenario.judge(client, i, calls)
        tally.orphans += orphans
        tally.broken += broken
    return tally


def run_all(client: StoreClient, pairs: int) -> list[Tally]:
    prepare(client)
    return [run_scenario(client, make(), pairs, offset=k * 100_000) for k, make in enumerate(SCENARIOS)]


def _store(url: str, tmp: Path) -> tuple[object, StoreClient]:
    from store.server import StoreConfig, create_server

    token = "race-token"  # noqa: S105 - a throwaway store on loopback
    server = create_server(StoreConfig(listen="127.0.0.1:0", database_url=url, token=token))
    return server, StoreClient(f"127.0.0.1:{server.port}", token)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200, help="racing pairs per rule and database")
    parser.add_argument("--database-url", action="append", default=[], help="databases to race on (repeatable)")
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        urls = args.database_url or [f"sqlite:///{tmp}/races.db"]
        if not args.database_url and os.environ.get("AUTHZ_TEST_POSTGRES_URL"):
            urls.append(_fresh_schema(os.environ["AUTHZ_TEST_POSTGRES_URL"]))
        for url in urls:
            server, client = _store(url, Path(tmp))
            try:
                tallies = run_all(client, args.pairs)
            finally:
                client.close()
                server.stop(0)  # type: ignore[attr-defined]
            backend = url.split(":", 1)[0].split("+", 1)[0]
            results[backend] = [t.as_dict() for t in tallies]
            print(f"\n{backend}: {args.pairs} racing pairs per rule")
            print(f"{'rule':44} {'pairs':>6} {'both ok':>8} {'refused':>8} {'orphans':>8} {'broken':>7} {'unclear':>8}")
            for t in tallies:
                print(f"{t.rule:44} {t.pairs:6} {t.both_acknowledged:8} {t.one_refused:8} {t.orphans:8} "
                      f"{t.broken:7} {len(t.unclear):8}")  # fmt: skip
                for line in t.unclear[:3]:
                    print(f"    unclear: {line}")
    out = Path(__file__).resolve().parent / "results" / "races.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    bad = any(t["orphans"] or t["broken"] or t["unclear"] for rows in results.values() for t in rows)
    return 1 if bad else 0


def _fresh_schema(base: str) -> str:
    """A new empty schema on the PostgreSQL server (left behind for inspection)."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"races_{uuid.uuid4().hex[:8]}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


if __name__ == "__main__":
    sys.exit(main())
