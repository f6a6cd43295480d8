"""`authz list resources` and `authz list subjects`: ListResources and ListSubjects of a running
decision service, every page by default, one id per line (or JSON).

A list comes back empty, and ListResources refuses a resource kind, both for a question that has no
answer and for a mistake in it (an unknown action, kind or subject). To tell them apart the command
then asks one Check of the same names (on a placeholder resource for ``list resources``, as
``anonymous`` for ``list subjects``): the decider names an unknown action, kind or subject (G3) with
the closest known name before it looks at the resource, and that is a usage error (exit 2), as in
``authz check``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import grpc

from authz.cli.options import (
    DEFAULT_SERVER,
    check_client_tls,
    context_option,
    decision_token_file_option,
    fail_rpc,
    parse_context,
    tls_client_options,
)

if TYPE_CHECKING:
    from authz.client import Check, Client, Listing

MAX_PAGE = 1000  # the service's largest page (authz.listing.MAX_PAGE)
PLACEHOLDER = "placeholder"  # the resource id of the Check that explains an empty list
_F = TypeVar("_F", bound=Callable[..., Any])


def _call_options(function: _F) -> _F:
    """The options both list commands take after their arguments."""
    for option in reversed((
        context_option,
        click.option("--page-size", type=click.IntRange(1, MAX_PAGE), default=None, metavar="N",
                     help=f"Ids per call (1 to {MAX_PAGE}; default: the service's). Alone, only the first page "
                     "is printed; with --all, every page."),
        click.option("--all", "all_pages", is_flag=True,
                     help="Print every page (the default without --page-size)."),
        click.option("--json", "as_json", is_flag=True,
                     help='Print {"ids": [...], "revision": N, "policy_version": "..."}.'),
        click.option("--server", default=DEFAULT_SERVER, show_default=True, help="Decision service address."),
        click.option("--min-revision", type=click.IntRange(min=0), default=0, metavar="N",
                     help="Wait until the service has this store revision."),
        decision_token_file_option,
        tls_client_options("", "decision service"),
    )):  # fmt: skip
        function = option(function)
    return function


@click.group("list")
def list_group() -> None:
    """Lists: the resources a subject may act on, the subjects that may act on a resource."""


@list_group.command("resources")
@click.argument("subject")
@click.argument("action")
@click.argument("kind")
@_call_options
def list_resources(
    subject: str, action: str, kind: str, context: tuple[str, ...], page_size: int | None, all_pages: bool,
    as_json: bool, server: str, min_revision: int, token_file: Path | None, ca_file: Path | None,
    cert_file: Path | None, key_file: Path | None, tls: bool,
) -> None:  # fmt: skip
    """List the ids of the KIND resources SUBJECT (user:bob, service_account:ci, anonymous) may do ACTION on.

    Exact: every id listed is allowed by `authz check`, every allowed id is listed.
    """
    values = parse_context(context)
    _run(
        lambda client: client.list_resources(
            subject, action, kind, values, page_size=page_size or 0, min_revision=min_revision,
            all_pages=all_pages or page_size is None,
        ),
        _probe(subject, action, f"{kind}:{PLACEHOLDER}"), as_json, server, token_file, ca_file, cert_file, key_file,
        tls,
    )  # fmt: skip


@list_group.command("subjects")
@click.argument("action")
@click.argument("resource")
@click.option(
    "--kind", "subject_kind", type=click.Choice(["user", "service_account"]), default="user", show_default=True,
    help="The kind of subjects to list.",
)  # fmt: skip
@_call_options
def list_subjects(
    action: str, resource: str, subject_kind: str, context: tuple[str, ...], page_size: int | None,
    all_pages: bool, as_json: bool, server: str, min_revision: int, token_file: Path | None, ca_file: Path | None,
    cert_file: Path | None, key_file: Path | None, tls: bool,
) -> None:  # fmt: skip
    """List the ids of the subjects (users by default) that may do ACTION on RESOURCE (kind:id).

    Exact: every id listed is allowed by `authz check`, every allowed id is listed.
    """
    values = parse_context(context)
    _run(
        lambda client: client.list_subjects(
            action, resource, subject_kind, values, page_size=page_size or 0, min_revision=min_revision,
            all_pages=all_pages or page_size is None,
        ),
        _probe("anonymous", action, resource), as_json, server, token_file, ca_file, cert_file, key_file, tls,
    )  # fmt: skip


def _probe(subject: str, action: str, resource: str) -> Check:
    from authz.client import Check

    return Check(subject, action, resource)


def _run(
    call: Callable[[Client], Listing], probe: Check, as_json: bool, server: str, token_file: Path | None,
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None, tls: bool,
) -> None:  # fmt: skip
    """Connect as `authz check` does, make the call, print the ids; an empty list or a refused kind
    is explained by ``probe`` when it names something unknown (see the module docstring)."""
    import json

    from authz.client import Client
    from authz.security import read_token

    check_client_tls(cert_file, key_file)
    try:
        with Client(server, token=read_token(token_file), ca=ca_file, cert=cert_file, key=key_file, tls=tls) as client:
            try:
                listing = call(client)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and (exc.details() or "").startswith("resource_kind"):
                    _refuse_unknown_names(client, probe)
                raise
            if not listing.ids and not listing.next_page_token:
                _refuse_unknown_names(client, probe)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except grpc.RpcError as exc:
        raise fail_rpc(exc) from None
    if as_json:
        body = {"ids": list(listing.ids), "revision": listing.revision, "policy_version": listing.policy_version}
        click.echo(json.dumps(body, indent=2))
    else:
        for ident in listing.ids:
            click.echo(ident)
    if listing.next_page_token:
        click.echo(f"more ids follow the {len(listing.ids)} listed (--all lists every page)", err=True)


def _refuse_unknown_names(client: Client, probe: Check) -> None:
    """A usage error when ``probe`` is denied for an unknown action, kind or subject (G3)."""
    from authz.reasons import is_unknown_name

    decision = client.check(probe.subject, probe.action, probe.resource)
    if is_unknown_name(decision):
        raise click.UsageError(decision.reason.removeprefix("denied: "))
