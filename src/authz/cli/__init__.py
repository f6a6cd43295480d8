"""The `authz` command line. Each command parses flags and calls the code that does the work.

One module per command group: :mod:`~authz.cli.serving` (``serve``, ``up``),
:mod:`~authz.cli.deciding` (``check``, ``test``), :mod:`~authz.cli.listing` (``list resources``,
``list subjects``), :mod:`~authz.cli.policy` (``policy lint``, ``policy matrix``),
:mod:`~authz.cli.diffing` (``policy diff``, ``policy replay``),
:mod:`~authz.cli.store` (``store serve|migrate|compact``, ``world load``),
:mod:`~authz.cli.registry` (``registry migrate``); the options and helpers they share are in
:mod:`~authz.cli.options`.
"""

from __future__ import annotations

import os
import sys

import click

from authz.cli import deciding, diffing, listing, policy, registry, serving, store

__all__ = ["main", "run", "setup_worker_logging"]


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    from servicekit import logs

    # Callers' text (ids, world names, error messages) reaches log lines: each record stays one line
    # in either format (text escapes control characters, JSON is one object per line).
    logs.configure(log_format, verbose)


def setup_worker_logging(log_format: str = "text", verbose: bool = False) -> None:
    """Logging of a worker process of `serve --workers N` (picklable: spawn passes it by name, and a
    functools.partial of it with the format)."""
    _setup_logging(verbose, log_format)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Authorization for an ML platform: a store of its data and a decision service over Casbin policies."""
    _setup_logging(verbose)


main.add_command(serving.serve)
main.add_command(serving.up)
main.add_command(deciding.check)
main.add_command(deciding.test)
main.add_command(listing.list_group)
main.add_command(policy.policy)
policy.policy.add_command(diffing.diff)
policy.policy.add_command(diffing.replay)
main.add_command(registry.registry)
main.add_command(store.store)
main.add_command(store.world)


def run() -> None:  # pragma: no cover - console entry for `python -m authz.cli`
    name = os.path.basename(sys.argv[0])
    main(prog_name="authz" if name in ("", "__main__.py") else name)
