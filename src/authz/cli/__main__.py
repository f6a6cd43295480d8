"""`python -m authz.cli`: the `authz` command."""

from authz.cli import run

if __name__ == "__main__":  # pragma: no cover - spawned workers import this module under another name
    run()
