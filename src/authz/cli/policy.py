"""`authz policy lint` and `authz policy matrix`: the policy directory, offline."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from authz.cli.options import read_policies_option


@click.group()
def policy() -> None:
    """Policies: lint them offline, render the permission matrix, diff an edit, replay an audit log."""


@policy.command("matrix")
@click.option("--format", "fmt", type=click.Choice(["markdown", "html"]), default="markdown", show_default=True)
@read_policies_option
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
@click.option(
    "--tests",
    "tests",
    type=click.Path(exists=True, path_type=Path),
    multiple=True,
    help="Decision-test files or directories the policy must also pass (as `serve --policy-tests` requires).",
)
def policy_lint(directory: Path, tests: tuple[Path, ...]) -> None:
    """Check the policy in DIRECTORY (default policies/) as the service does before serving it.

    Every problem is printed as file:line: what is wrong; exits 1 when there is one. The checks:
    the model (what both engines evaluate alike), every line's syntax, the rule catalogue (files
    and rule ids), actions and kinds, roles (defined, no cycles), the facts conditions read, and
    wide grants (marked '# lint: allow-wide <why>' when meant).
    """
    from authz.engines import engine_factory
    from authz.errors import PolicyError
    from authz.gate import decision_test_gate
    from authz.harness import CaseFileError
    from authz.policy import load_policy

    try:
        loaded = load_policy(directory)
        engine_factory("casbin")(loaded)  # the reference engine (pycasbin) must accept it too
        failing = decision_test_gate(tests, "compiled")(loaded) if tests else []
    except PolicyError as exc:
        problems = [str(problem) for problem in exc.problems] or [str(exc)]
        for problem in problems:
            click.echo(problem, err=True)
        click.echo(f"{directory}: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    except CaseFileError as exc:
        raise click.UsageError(str(exc)) from None
    if failing:
        for failure in failing:
            click.echo(failure, err=True)
        click.echo(f"{directory}: {len(failing)} decision test(s) fail", err=True)
        sys.exit(1)
    rules = sorted({line.rule for line in loaded.p_lines})
    click.echo(f"{directory}: ok, version {loaded.version}: {len(loaded.p_lines)} rules lines for "
               f"{len(loaded.actions)} actions, {len(rules)} rule ids")  # fmt: skip
