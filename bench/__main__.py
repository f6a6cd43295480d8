"""All benchmarks, one command: `./run bench` (or `.venv/bin/python -m bench`).

Runs the bulk-import benchmark (SQLite and, with $AUTHZ_TEST_POSTGRES_URL, PostgreSQL) and the
decision benchmarks, writing bench/results/*.json; BENCHMARKS.md quotes those figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import decisions_bench
import import_bench


def main() -> int:
    status = import_bench.main([])
    return status or decisions_bench.main([])


if __name__ == "__main__":
    raise SystemExit(main())
