"""`authz policy diff` and `authz policy replay`: what a policy edit changes, before it serves.

Exit codes: 0 no decision changes (or changes without ``--fail-on-change``), 1 changes with
``--fail-on-change``, 2 an error (an unknown ref, a policy that does not lint, an unreadable world
or audit log, an unreachable service), printed as one line naming what and where.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from authz.cli.options import DEFAULT_SERVER, DEFAULT_STORE, DEFAULT_TOKEN_FILE, TOKEN_ENV, token_file_option

if TYPE_CHECKING:
    from authz.state import WorldState

_F = TypeVar("_F", bound=Callable[..., Any])
EXIT_CHANGED = 1
EXIT_ERROR = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def _head_option(text: str) -> Callable[[_F], _F]:
    return click.option("--head", "head_dir", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("policies"), show_default=True, help=text)  # fmt: skip


def _world_option(text: str) -> Callable[[_F], _F]:
    return click.option("--world", type=click.Path(dir_okay=False, path_type=Path), default=None, help=text)


@click.command("diff")
@click.option("--base", default=None, metavar="DIR|GITREF",
              help="The policy before the edit: a directory, or a git ref whose files of the --head directory "
              "are read (e.g. main, origin/main, HEAD~1). Default: HEAD with --world; the policy the decision "
              "service at --server serves with --store.")  # fmt: skip
@_head_option("The policy after the edit (a directory).")
@_world_option("Compare on this world (the YAML of the decision-test format).")
@click.option(
    "--store",
    "store_address",
    default=None,
    metavar="ADDR",
    help=f"Compare on the data of the store at ADDR, at its current revision (e.g. {DEFAULT_STORE}).",
)
@token_file_option
@click.option(
    "--server",
    default=DEFAULT_SERVER,
    show_default=True,
    help="With --store and no --base: the decision service whose serving policy is the base.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON (every change unless --limit).")
@click.option("--markdown", is_flag=True, help="Print Markdown, e.g. for a pull-request comment.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help='List at most N changes (counts stay exact; JSON then says "truncated": true).',
)
@click.option("--fail-on-change", is_flag=True, help="Exit 1 when any decision changes.")
@click.option("--engine", type=click.Choice(["compiled", "casbin"]), default="compiled", show_default=True,
              help="The engine both policies are decided with.")  # fmt: skip
def diff(
    base: str | None, head_dir: Path, world: Path | None, store_address: str | None, token_file: Path | None,
    server: str, as_json: bool, markdown: bool, limit: int | None, fail_on_change: bool, engine: str,
) -> None:  # fmt: skip
    """Every decision the edit from --base to --head changes, on a whole world.

    Compares both policies' decisions for every subject (users, service accounts, anonymous) x every
    resource x every action that applies to its kind; actions whose conditions read context are
    compared for every value the conditions compare a key with, plus one that none names ("~other").
    Prints counts per action and direction, per rule id, and the first changes with the rules
    before and after. Exit 0: no change (or changes without --fail-on-change); 1: changes with
    --fail-on-change; 2: an error.
    """
    from authz.diff import diff_policies, render, sources

    if (world is None) == (store_address is None):
        raise click.UsageError("give one of --world FILE or --store ADDR")
    if as_json and markdown:
        raise click.UsageError("--json and --markdown are exclusive")
    try:
        if world is not None:
            state, where = sources.world_from_file(world), str(world)
        else:
            assert store_address is not None
            state, where = _store_world(store_address, token_file), f"store {store_address}"
        head = sources.from_directory(head_dir)
        if base is None:
            base_policy = sources.from_git("HEAD", head_dir) if world is not None else sources.from_service(server)
            base_label = "HEAD" if world is not None else f"serving@{server}"
        elif Path(base).is_dir():
            base_policy, base_label = sources.from_directory(Path(base)), base
        else:
            base_policy, base_label = sources.from_git(base, head_dir), base
    except sources.SourceError as exc:
        _fail(str(exc))
    outcome = diff_policies(state, base_policy, head, engine=engine, limit=limit)
    compared = render.Compared(base_label, base_policy.version, str(head_dir), head.version, state.revision, where)
    if as_json:
        click.echo(render.to_json(outcome, compared), nl=False)
    elif markdown:
        click.echo(render.to_markdown(outcome, compared), nl=False)
    else:
        click.echo(render.to_text(outcome, compared), nl=False)
    if fail_on_change and render.total(outcome):
        sys.exit(EXIT_CHANGED)


def _store_world(address: str, token_file: Path | None) -> WorldState:
    from authz.diff import sources
    from store.token import read_token

    token = read_token(token_file)
    if not token:
        _fail(f"no store token for {address}: set {TOKEN_ENV} or write one to {token_file or DEFAULT_TOKEN_FILE}")
    return sources.world_from_store(address, token)


@click.command("replay")
@click.argument("audit_log", type=click.Path(dir_okay=False, path_type=Path))
@_head_option("The policy to re-decide with (a directory).")
@_world_option("Re-decide on this world (the YAML of the decision-test format) instead of a store.")
@click.option(
    "--store",
    "store_address",
    default=DEFAULT_STORE,
    show_default=True,
    metavar="ADDR",
    help="Re-decide on the data of this store at its current revision.",
)
@token_file_option
@click.option("--json", "as_json", is_flag=True, help="Print the flips as JSON.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    metavar="N",
    help="Show the N most asked flips.",
)
@click.option("--fail-on-change", is_flag=True, help="Exit 1 when any recorded decision would flip.")
def replay(
    audit_log: Path, head_dir: Path, world: Path | None, store_address: str, token_file: Path | None,
    as_json: bool, limit: int, fail_on_change: bool,
) -> None:  # fmt: skip
    """Re-decide the requests of an audit log under --head and report which would flip.

    Each distinct request (subject, action, resource, context) is decided once at the world's current
    revision and weighted by how often the log asked it; the answer recorded is compared with the new
    one. Requests logged with their context redacted (serve --audit-redact-context) that had context
    are counted, not replayed. Exit 0, 1 (flips with --fail-on-change) or 2 (an error).
    """
    from authz.diff import replay as replaying
    from authz.diff import sources

    try:
        asked = replaying.read_log(audit_log)
        state = sources.world_from_file(world) if world is not None else _store_world(store_address, token_file)
        head = sources.from_directory(head_dir)
    except (sources.SourceError, replaying.LogError) as exc:
        _fail(str(exc))
    outcome = replaying.replay(asked, state, head)
    where = str(world) if world is not None else f"store {store_address}"
    if as_json:
        click.echo(replaying.to_json(outcome, head.version, state.revision, limit))
    else:
        click.echo(replaying.to_text(outcome, head.version, state.revision, where, limit), nl=False)
    if fail_on_change and outcome.flipped:
        sys.exit(EXIT_CHANGED)
