"""The policy diff's cost: one-line edits on the demo world and on a generated world (default 1M runs).

    .venv/bin/python bench/diff_bench.py [--runs 1000000] [--edit NAME ...] [--check-brute-force]

For each edit it prints the diff's wall time, the decisions it asked of each policy against the
size of the cross product it stands for (subjects x resources x actions of the affected kinds),
the changes found and the process's peak RSS. The world is built once (its time is printed apart:
it is the store's snapshot load, not the diff). Writes bench/results/diff.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from authz.diff import diff_policies  # noqa: E402
from authz.engines.index import ActionIndex  # noqa: E402
from authz.policy import Policy, build_policy, read_files  # noqa: E402
from authz.state import WorldState  # noqa: E402
from authz.testing import state_from_document, state_from_file  # noqa: E402
from worldgen import generate_world  # noqa: E402

POLICIES = ROOT / "policies"
DEMO = ROOT / "examples" / "demo-world.yaml"
RESULTS = Path(__file__).resolve().parent / "results"
TABLES = {"version": "collection_version"}

# One-line edits of the kinds authors make: (name, file, old line, new line).
EDITS = {
    "report-admin-line": ("reports.csv", "p, RP3, report.edit, team:admin, True, allow\n",
                          "p, RP3, report.edit, team:member, True, allow\n"),
    "run-creator-condition": ("runs.csv", "r.obj.creator == r.sub.ref", "r.obj.creator != r.sub.ref"),
    "project-view-role": ("projects.csv",
                          "p, P1, project.view, team:view_only,", "p, P1, project.view, team:member,"),
    "role-hierarchy": ("roles.csv", "g, team:member, team:view_only",
                       "g, team:member, team:view_only\ng, org:admin, team:admin"),
    "alias-condition": ("model_registry.csv", "r.ctx.alias in r.obj.protected_aliases",
                        "r.ctx.alias not in r.obj.protected_aliases"),
}  # fmt: skip


def edited(files: dict[str, bytes], name: str) -> Policy:
    file, old, new = EDITS[name]
    changed = dict(files)
    text = changed[file].decode()
    if old not in text:
        raise SystemExit(f"edit {name}: {file} no longer has {old!r}")
    changed[file] = text.replace(old, new, 1).encode()
    return build_policy(changed, POLICIES)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cross_product(state: WorldState, base: Policy, head: Policy, actions: tuple[str, ...]) -> int:
    """How many (subject, action, resource) triples the affected actions span (context values aside)."""
    subjects = len(state.rows["user"]) + len(state.rows["service_account"]) + 1
    total = 0
    for action in actions:
        kinds = dict.fromkeys((*ActionIndex(base).applies_to(action), *ActionIndex(head).applies_to(action)))
        for kind in kinds:
            total += subjects * (1 if kind == "system" else len(state.rows[TABLES.get(kind, kind)]))
    return total


def measure(label: str, state: WorldState, base: Policy, edits: list[str], files: dict[str, bytes]) -> list[dict]:
    rows = []
    for name in edits:
        head = edited(files, name)
        started = time.perf_counter()
        outcome = diff_policies(state, base, head, limit=100)
        seconds = time.perf_counter() - started
        changed = sum(n for counts in outcome.counts.values() for n in counts.values())
        row = {
            "world": label, "edit": name, "seconds": round(seconds, 3), "affected_actions": len(outcome.affected),
            "decided": outcome.decided, "cross_product": cross_product(state, base, head, outcome.affected),
            "changes": changed, "peak_rss_mb": round(rss_mb()),
        }  # fmt: skip
        rows.append(row)
        print(f"  {label:<10} {name:<22} {seconds:8.2f} s  affected {row['affected_actions']:>3}  "
              f"decided {outcome.decided:>9,}  of {row['cross_product']:>15,}  changes {changed:>11,}  "
              f"peak RSS {row['peak_rss_mb']:>6,} MB", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs of the generated world (0: demo only)")
    parser.add_argument("--edit", action="append", choices=sorted(EDITS), help="edits to measure (default: all)")
    args = parser.parse_args(argv)
    edits = args.edit or list(EDITS)
    files = read_files(POLICIES)
    base = build_policy(files, POLICIES)
    print(f"policy diff benchmark: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    rows = measure("demo", state_from_file(DEMO), base, edits, files)
    world: dict[str, object] = {}
    if args.runs:
        started = time.perf_counter()
        state = state_from_document(generate_world(args.runs))
        world = {"runs": args.runs, "build_seconds": round(time.perf_counter() - started, 1),
                 "rss_after_build_mb": round(rss_mb())}  # fmt: skip
        print(
            f"  world of {args.runs:,} runs built in {world['build_seconds']} s, "
            f"peak RSS {world['rss_after_build_mb']} MB"
        )
        rows += measure(f"{args.runs // 1000}k-runs", state, base, edits, files)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "diff.json").write_text(json.dumps({"world": world, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
