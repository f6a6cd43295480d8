"""`authz registry migrate`: parse the flags, run :func:`authz.migration_proof.migrate_registry`,
render its outcome (a table, or JSON) and its exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
import grpc

from authz.cli.options import (
    DEFAULT_STORE,
    engine_option,
    fail_rpc,
    read_policies_option,
    store_token,
    token_file_option,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from authz.migration_proof import MigrationOutcome

COUNTS = ("registry_created", "models", "versions", "collections_created", "versions_created",
          "collections_unchanged", "versions_unchanged")  # fmt: skip


@click.group()
def registry() -> None:
    """Registries: migrate a team's legacy model registry into the org's model registry (MG1-MG4)."""


@registry.command("migrate")
@click.argument("team")
@click.option("--dry-run", is_flag=True, help="Plan and prove only; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan, the proof and the outcome as JSON.")
@click.option("--force", is_flag=True, help="Migrate even when the proof finds decisions that would change.")
@click.option("--store", "store_address", default=DEFAULT_STORE, show_default=True, help="Store address.")
@read_policies_option
@engine_option
@token_file_option
def registry_migrate(
    team: str, dry_run: bool, as_json: bool, force: bool, store_address: str, policies: Path, engine: str,
    token_file: Path | None,
) -> None:  # fmt: skip
    """Migrate TEAM's legacy model registry into model-<org>, after proving that no decision changes.

    Takes a snapshot, asks the store for the plan (a dry run), and compares, for every user of the
    org except org admins and every model, view, download, link and adding an alias before and
    after (MG2). Without --dry-run it then migrates, only if nothing differs (or with --force).
    Exits 1 when a decision would change and nothing was forced.
    """
    from rich.console import Console

    from authz import migration_proof
    from authz.policy import load_policy
    from store.client import StoreClient

    try:
        policy = load_policy(policies)
    except Exception as exc:  # noqa: BLE001 - report any policy problem as a usage error
        raise click.ClickException(f"the policy does not load: {exc}") from None
    err = Console(stderr=True)
    with StoreClient(store_address, store_token(token_file)) as client, _proof_progress(err) as progress:
        try:
            outcome = migration_proof.migrate_registry(
                client, team, policy=policy, engine=engine, dry_run=dry_run, force=force, progress=progress
            )
        except grpc.RpcError as exc:
            raise fail_rpc(exc) from None
        except migration_proof.ProofError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        _print_json(outcome)
    else:
        _print_table(outcome)
    if not outcome.matches:
        click.echo("warning: the store changed between the plan and the migration; what was committed differs "
                   "from the proved plan: run again with --dry-run to prove the result", err=True)  # fmt: skip
    if outcome.refused:
        sys.exit(1)


@contextmanager
def _proof_progress(err: Console) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar of the proof on a terminal, shown from its start until it is complete."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]proving MG2"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )  # fmt: skip
    task: list[TaskID] = []

    def advance(n: int, total: int) -> None:
        if not task:
            bar.start()
            task.append(bar.add_task("decisions", total=total))
        bar.advance(task[0], n)
        if bar.tasks[0].completed >= total:
            bar.stop()

    try:
        yield advance
    finally:
        bar.stop()


def _print_json(outcome: MigrationOutcome) -> None:
    import json

    plan, done = outcome.plan, outcome.done
    click.echo(json.dumps({
        "team": outcome.team, "registry": plan.registry, "revision": plan.revision, "dry_run": outcome.dry_run,
        "state_before": plan.state_before, "plan": {**{name: getattr(plan, name) for name in COUNTS},
                                                    "changes": len(plan.changes)},
        "proof": outcome.proof.summary(),
        "migrated": None if done is None else {"revision": done.revision, "matches_plan": outcome.matches,
                                               **{name: getattr(done, name) for name in COUNTS}},
    }, indent=2))  # fmt: skip


def _print_table(outcome: MigrationOutcome) -> None:
    from rich.console import Console
    from rich.table import Table

    plan, proof, done = outcome.plan, outcome.proof, outcome.done
    out = Console(width=200)
    table = Table(show_header=False, title=f"team {outcome.team}: legacy model registry -> {plan.registry}")
    for label, value in (
        ("legacy state", plan.state_before), ("plan at revision", plan.revision),
        ("registry", "created" if plan.registry_created else "exists"), ("models", plan.models),
        ("versions", plan.versions),
        ("collections created / unchanged", f"{plan.collections_created} / {plan.collections_unchanged}"),
        ("versions created / unchanged", f"{plan.versions_created} / {plan.versions_unchanged}"),
        ("users compared (org admins excluded)", f"{proof.users} ({proof.org_admins_excluded})"),
        ("decisions compared", proof.decisions), ("differences", len(proof.differences)),
    ):  # fmt: skip
        table.add_row(label, str(value))
    out.print(table)
    if proof.differences:
        shown = proof.differences[:50]
        diffs = Table("user", "model", "check", "before", "after", title="decisions that would change")
        for d in shown:
            diffs.add_row(d.user, d.model, d.check,
                          f"{d.before_action} {d.before_resource}: {'allow' if d.before else 'deny'}",
                          f"{d.after_action} {d.after_resource}: {'allow' if d.after else 'deny'}")  # fmt: skip
        out.print(diffs)
        if len(proof.differences) > len(shown):
            click.echo(f"... and {len(proof.differences) - len(shown)} more (--json lists them all)")
    if outcome.dry_run:
        click.echo("dry run: nothing changed")
    elif done is None:
        click.echo("not migrated: the proof found decisions that would change (--force migrates anyway)")
    elif not done.changes:
        click.echo(f"already migrated: nothing changed (revision {done.revision})")
    else:
        click.echo(f"migrated at revision {done.revision}: {done.collections_created} collections, "
                   f"{done.versions_created} versions created")  # fmt: skip
