"""`authz policy lint` and `authz policy matrix`: the policy directory, offline."""

from __future__ import annotations

from pathlib import Path

import click

from authz.cli.options import policies_option


@click.group()
def policy() -> None:
    """Policies: lint them offline, render the permission matrix."""


@policy.command("matrix")
@click.option("--format", "fmt", type=click.Choice(["markdown", "html"]), default="markdown", show_default=True)
@policies_option
def policy_matrix(fmt: str, policies: Path) -> None:
    """Print role x action tables per resource family, each cell a decision of the engine."""
    from authz import matrix
    from authz.errors import PolicyError
    from authz.policy import load_policy

    try:
        loaded = load_policy(policies)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    tables = matrix.compute(loaded)
    render = matrix.markdown if fmt == "markdown" else matrix.to_html
    click.echo(render(tables, loaded.version), nl=False)


@policy.command("lint")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("policies"), required=False)
def policy_lint(directory: Path) -> None:
    """Check the policy in DIRECTORY (default policies/) as the service would before loading it."""
    from authz.engines import engine_factory
    from authz.errors import PolicyError
    from authz.policy import load_policy

    try:
        loaded = load_policy(directory)
        engine_factory("casbin")(loaded)  # the reference engine (pycasbin) must accept it too
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    rules = sorted({line.rule for line in loaded.p_lines})
    click.echo(f"{directory}: ok, version {loaded.version}: {len(loaded.p_lines)} rules lines for "
               f"{len(loaded.actions)} actions, {len(rules)} rule ids")  # fmt: skip
