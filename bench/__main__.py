"""All benchmarks, one command: `./run bench` (or `.venv/bin/python -m bench`).

Runs the bulk-import benchmark (SQLite and, with $AUTHZ_TEST_POSTGRES_URL, PostgreSQL), the
decision benchmarks, the policy-diff benchmark (demo and 1,000,000-run worlds), with h2load
installed the grpcio floor (bench/floor.py) and, with $AUTHZ_TEST_POSTGRES_URL, the scale-out
benchmark (two stores and three decision services on PostgreSQL, with faults), writing
bench/results/*.json; BENCHMARKS.md quotes those figures.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cluster
import decisions_bench
import diff_bench
import floor
import import_bench


def main() -> int:
    status = import_bench.main([]) or decisions_bench.main([]) or diff_bench.main([])
    if not status:
        status = decisions_bench.main(["--vs-ceiling", "--uncached", "--workers", "1", "--seconds", "4"])
    if not status and shutil.which("h2load"):
        status = floor.main([])
    if not status and os.environ.get("AUTHZ_TEST_POSTGRES_URL"):
        status = cluster.main(["--sizing-runs", "1000000"])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
