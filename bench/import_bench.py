"""Bulk import benchmark: a generated world of N runs into a fresh SQLite and PostgreSQL store.

    .venv/bin/python bench/import_bench.py [--runs 1000000] [--sqlite PATH] [--postgres URL]

For each backend: a fresh database, migrated; the world generated (bench/worldgen.py), parsed
and validated (``store.world.parse_world``), then imported the way the store's ImportWorld
does it: ``import_world`` and ``changes.record`` in one ``db.writing()`` transaction, committed.
Each step is timed on its own; rows/s is entity rows written per second of the import step
(parsed rows to commit, the change log included). Prints a markdown table and writes JSON to
bench/results/import.json.

PostgreSQL gets a new schema (``bench_<random>``) that is dropped afterwards; its URL comes
from --postgres or $AUTHZ_TEST_POSTGRES_URL, and --no-postgres skips it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.exc import ArgumentError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from store.changes import record  # noqa: E402
from store.database import open_database  # noqa: E402
from store.importer import import_world  # noqa: E402
from store.models import ChangeRecord  # noqa: E402
from store.schema import migrate  # noqa: E402
from store.world import parse_world  # noqa: E402
from worldgen import generate_world  # noqa: E402

PG_ENV = "AUTHZ_TEST_POSTGRES_URL"
RESULTS = HERE / "results"


@dataclass
class Result:
    backend: str
    server_version: str
    pragmas: list[str]
    runs: int
    entity_rows: int
    change_rows: int
    generate_s: float
    parse_s: float
    import_s: float
    total_s: float
    rows_per_s: float
    revision: int
    rows_by_kind: dict[str, int] = field(default_factory=dict)
    reimport_s: float | None = None
    # CPU seconds this process spent in the import step (SQLite works in-process, PostgreSQL in its server),
    # and the 1-minute load average before and after it: other jobs on the cores skew the figures.
    import_cpu_s: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0


@contextmanager
def sqlite_database(path: Path, *, keep: bool) -> Iterator[str]:
    """A new SQLite file at ``path`` (an old one is removed), deleted at the end unless ``keep``."""
    files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
    path.parent.mkdir(parents=True, exist_ok=True)
    for file in files:
        file.unlink(missing_ok=True)
    try:
        yield f"sqlite:///{path}"
    finally:
        if not keep:
            for file in files:
                file.unlink(missing_ok=True)


@contextmanager
def postgres_database(base: str) -> Iterator[str]:
    """A new schema on the server at ``base``, dropped at the end."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_backend(
    backend: str, url: str, runs: int, seed: int, *, reimport: bool, pragmas: list[str] | None = None
) -> Result:
    db = open_database(url)
    try:
        migrate(db)
        with db.reading() as session:
            if backend == "sqlite":
                version = str(session.execute(text("select sqlite_version()")).scalar_one())
            else:
                version = str(session.execute(text("show server_version")).scalar_one())

        gc.collect()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        document = generate_world(runs, seed)
        generated = time.perf_counter()
        rows = parse_world(document)
        parsed = time.perf_counter()
        cpu_parsed = time.process_time()
        del document
        with db.writing() as session:
            for pragma in pragmas or ():
                session.connection().exec_driver_sql(f"PRAGMA {pragma}")
            outcome = import_world(session, rows)
            revision = record(session, outcome.changes)
        imported = time.perf_counter()
        import_cpu_s = time.process_time() - cpu_parsed
        load_after = os.getloadavg()[0]

        change_rows = len(outcome.changes)
        with db.reading() as session:
            logged = session.execute(select(func.count()).select_from(ChangeRecord)).scalar_one()
        if logged != change_rows:
            raise RuntimeError(f"{backend}: change log holds {logged} rows, expected {change_rows}")
        by_kind = Counter(row.kind for row in rows)
        del outcome

        reimport_s = None
        if reimport:
            # Loading the same world again finds every row unchanged and writes nothing.
            start = time.perf_counter()
            with db.writing() as session:
                again = import_world(session, rows)
                same_revision = record(session, again.changes)
            reimport_s = time.perf_counter() - start
            if again.created or same_revision != revision:
                raise RuntimeError(f"{backend}: re-import created {again.created} rows")

        import_s = imported - parsed
        return Result(
            backend=backend,
            server_version=version,
            pragmas=list(pragmas or ()),
            runs=runs,
            entity_rows=len(rows),
            change_rows=change_rows,
            generate_s=round(generated - started, 3),
            parse_s=round(parsed - generated, 3),
            import_s=round(import_s, 3),
            total_s=round(imported - started, 3),
            rows_per_s=round(len(rows) / import_s),
            revision=revision,
            rows_by_kind=dict(by_kind),
            reimport_s=None if reimport_s is None else round(reimport_s, 3),
            import_cpu_s=round(import_cpu_s, 3),
            load_before=round(load_before, 2),
            load_after=round(load_after, 2),
        )
    finally:
        db.dispose()


def table(results: list[Result]) -> str:
    lines = [
        "| backend | entity rows | change rows | generate s | parse s | import s | total s | rows/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        backend = " ".join([r.backend, r.server_version.split()[0], *(f"(PRAGMA {p})" for p in r.pragmas)])
        lines.append(
            f"| {backend} | {r.entity_rows:,} | {r.change_rows:,} | {r.generate_s:.1f} | {r.parse_s:.1f} | "
            f"{r.import_s:.1f} | {r.total_s:.1f} | {r.rows_per_s:,.0f} |"
        )
    return "\n".join(lines)


def _redacted(argument: str) -> str:
    """A command-line argument, with the password of a database URL hidden."""
    if "://" not in argument:
        return argument
    try:
        return make_url(argument).render_as_string(hide_password=True)
    except ArgumentError:
        return argument


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs in the generated world (default 1000000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world generator (default 0)")
    parser.add_argument(
        "--sqlite", type=Path, default=RESULTS / "import.db", help="SQLite file, recreated (default %(default)s)"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file afterwards (deleted by default)")
    parser.add_argument(
        "--sqlite-pragma",
        action="append",
        default=[],
        metavar="PRAGMA",
        help="run 'PRAGMA <PRAGMA>' on the import's connection first, e.g. cache_size=-65536 (repeatable)",
    )
    parser.add_argument("--postgres", default=os.environ.get(PG_ENV), help=f"PostgreSQL URL (default ${PG_ENV})")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--reimport", action="store_true", help="also time loading the same world a second time")
    parser.add_argument("--json", type=Path, default=RESULTS / "import.json", help="results file (default %(default)s)")
    args = parser.parse_args(argv)
    arguments = sys.argv[1:] if argv is None else argv

    results: list[Result] = []
    if not args.no_sqlite:
        with sqlite_database(args.sqlite, keep=args.keep) as url:
            print(f"sqlite: {args.sqlite}, {args.runs:,} runs ...", file=sys.stderr, flush=True)
            results.append(
                run_backend("sqlite", url, args.runs, args.seed, reimport=args.reimport, pragmas=args.sqlite_pragma)
            )
    if not args.no_postgres:
        if not args.postgres:
            print(f"postgresql: skipped (no --postgres and no ${PG_ENV})", file=sys.stderr)
        else:
            with postgres_database(args.postgres) as url:
                print(f"postgresql: {args.runs:,} runs ...", file=sys.stderr, flush=True)
                results.append(run_backend("postgresql", url, args.runs, args.seed, reimport=args.reimport))

    print(table(results))
    if any(r.reimport_s is not None for r in results):
        print()
        for r in results:
            print(f"re-import of the same world ({r.backend}): {r.reimport_s:.1f} s, nothing written")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join([Path(sys.executable).name, "bench/import_bench.py", *map(_redacted, arguments)])
    report = {"command": command, "machine": machine(), "results": [asdict(r) for r in results]}
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
