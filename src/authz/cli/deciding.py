"""`authz check` (one decision from a running service) and `authz test` (decision test files)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import grpc

from authz.cli.options import (
    DEFAULT_SERVER,
    check_client_tls,
    context_option,
    decision_token_file_option,
    engine_option,
    fail_rpc,
    parse_context,
    read_policies_option,
    store_token,
    tls_client_options,
    token_file_option,
)


@click.command("check")
@click.argument("subject")
@click.argument("action")
@click.argument("resource")
@context_option
@click.option("--explain", is_flag=True, help="Show the facts and every rule considered.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.option("--server", default=DEFAULT_SERVER, show_default=True, help="Decision service address.")
@click.option("--min-revision", type=int, default=0, help="Wait until the service has this store revision.")
@decision_token_file_option
@tls_client_options("", "decision service")
def check(
    subject: str, action: str, resource: str, context: tuple[str, ...], explain: bool, as_json: bool, server: str,
    min_revision: int, token_file: Path | None, ca_file: Path | None, cert_file: Path | None,
    key_file: Path | None, tls: bool,
) -> None:  # fmt: skip
    """Ask whether SUBJECT (user:bob, service_account:ci, anonymous) may do ACTION on RESOURCE (kind:id).

    Exits 0 when allowed, 3 when denied (an unknown resource too), 2 for a usage error (an unknown
    action, resource kind or subject among them, with the closest known name), 1 for any other error.
    """
    import json

    from authz.client import Client
    from authz.reasons import is_unknown_name
    from authz.security import read_token

    check_client_tls(cert_file, key_file)
    values = parse_context(context)
    try:
        with Client(server, token=read_token(token_file), ca=ca_file, cert=cert_file, key=key_file, tls=tls) as client:
            decision = client.check(subject, action, resource, values, min_revision=min_revision, explain=explain)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except grpc.RpcError as exc:
        raise fail_rpc(exc) from None
    if is_unknown_name(decision):  # a mistake in the question, not an answer about real things
        raise click.UsageError(decision.reason.removeprefix("denied: "))
    if as_json:
        click.echo(json.dumps({
            "allowed": decision.allowed, "reason": decision.reason, "rules": list(decision.rules),
            "policy_lines": list(decision.policy_lines), "revision": decision.revision,
            "policy_version": decision.policy_version, **({"explanation": decision.explanation} if explain else {}),
        }, indent=2))  # fmt: skip
    else:
        verdict = (
            click.style("ALLOWED", fg="green", bold=True)
            if decision.allowed
            else click.style("DENIED", fg="red", bold=True)
        )
        click.echo(f"{verdict}  {subject} {action} {resource}")
        click.echo(f"  reason:   {decision.reason}")
        click.echo(f"  rules:    {', '.join(decision.rules) or '-'}")
        click.echo(f"  policy:   {', '.join(decision.policy_lines) or '-'}")
        click.echo(f"  at:       store revision {decision.revision}, policy version {decision.policy_version}")
        if explain and decision.explanation:
            click.echo("  explanation:")
            for line in decision.explanation.splitlines():
                click.echo(f"    {line}")
    sys.exit(0 if decision.allowed else 3)


@click.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--server", default=None, help="Run end to end against this decision service (needs --store).")
@click.option("--store", "store_address", default=None, help="Store to load each world into (with --server).")
@click.option("--json", "as_json", is_flag=True, help="Print every result as JSON.")
@read_policies_option
@token_file_option
@engine_option
def test(
    paths: tuple[Path, ...], server: str | None, store_address: str | None, as_json: bool, policies: Path,
    token_file: Path | None, engine: str,
) -> None:  # fmt: skip
    """Run decision test files (a world and expected decisions) and report failures.

    In-process by default, each file with a fresh world. With --server and --store, each file's
    world replaces the store's content (the store needs --allow-test-reset) and the cases go
    over gRPC. Exits 1 if any case fails.
    """
    import json

    from authz import harness
    from authz.policy import load_policy

    if (server is None) != (store_address is None):
        raise click.UsageError("--server and --store go together")
    files = harness.collect(paths)
    results: list[harness.Result] = []
    broken: list[str] = []
    remote = None
    if server is not None and store_address is not None:
        from authz.client import Client
        from store.client import StoreClient

        remote = (StoreClient(store_address, store_token(token_file)), Client(server))
        policy = None
    else:
        try:
            policy = load_policy(policies)
        except Exception as exc:  # noqa: BLE001 - report any policy problem as a usage error
            raise click.ClickException(f"the policy does not load: {exc}") from None
    try:
        for path in files:
            try:
                loaded = harness.load_file(path)
                run = harness.run_remote(loaded, *remote) if remote else harness.run_in_process(loaded, policy, engine)
                results.extend(run)
            except harness.CaseFileError as exc:
                broken.append(str(exc))
    finally:
        if remote is not None:
            remote[0].close()
            remote[1].close()
    failed = [r for r in results if not r.passed]
    passed = len(results) - len(failed)
    if as_json:
        click.echo(json.dumps({
            "passed": passed, "failed": len(failed) + len(broken), "file_errors": broken,
            "results": [{
                "file": r.case.file, "line": r.case.line, "where": r.case.where, "case": r.case.index,
                "subject": r.case.subject, "action": r.case.action,
                "resource": r.case.resource, "context": r.case.context, "expected": "allow" if r.case.allow else "deny",
                "rule": r.case.rule, "got": r.got, "passed": r.passed,
                "rules": list(r.decision.rules) if r.decision else [],
                "reason": r.decision.reason if r.decision else r.error,
            } for r in results],
        }, indent=2))  # fmt: skip
    else:
        _print_failures(failed, broken)
        click.echo(f"{passed} passed, {len(failed) + len(broken)} failed")
    sys.exit(1 if failed or broken else 0)


def _print_failures(failed: list[Any], broken: list[str]) -> None:
    from rich.console import Console
    from rich.table import Column, Table

    console = Console(stderr=False, width=200)
    for message in broken:  # a file's problems, one per line: each line names its file:line
        for problem in message.splitlines():
            console.print(f"[red]file error[/red] {problem}", markup=True, highlight=False)
    if not failed:
        return
    # The case is file:line of its YAML, kept whole (never wrapped or cut) so that editors and terminals
    # open the file there.
    where = Column("case", no_wrap=True, min_width=max(len(r.case.where) for r in failed))
    table = Table(where, "subject", "action", "resource", "expected", "got", "reason", title="failures")
    for r in failed:
        expected = ("allow" if r.case.allow else "deny") + (f" ({r.case.rule})" if r.case.rule else "")
        got = r.got + (f" ({', '.join(r.decision.rules)})" if r.decision and r.decision.rules else "")
        reason = r.decision.reason if r.decision else r.error
        table.add_row(r.case.where, r.case.subject, r.case.action, r.case.resource, expected, got, reason)
    console.print(table)
