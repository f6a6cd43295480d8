"""Where the two sides of a policy diff and its world come from.

A policy is read from a directory, from a git ref (the files of the same directory at that
commit, through ``git ls-tree`` and ``git show``: nothing is checked out) or from a running
decision service (GetPolicy: the files serving, byte for byte). A world is a decision-test YAML
file or a running store (its Snapshot, at its current revision). Every failure is a
:class:`SourceError` whose message is one line naming what and where.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from authz.errors import PolicyError
from authz.policy import Policy, build_policy, ignored, read_files
from authz.state import WorldState


class SourceError(Exception):
    """A side of the diff cannot be read: one line saying what and where."""


def _problems(exc: PolicyError, where: str) -> SourceError:
    problems = [str(problem) for problem in exc.problems]
    first = problems[0] if problems else str(exc)
    more = f" (and {len(problems) - 1} more problem(s): authz policy lint says all)" if len(problems) > 1 else ""
    return SourceError(f"{where}: the policy does not lint: {first}{more}")


def from_directory(directory: Path) -> Policy:
    if not directory.is_dir():
        raise SourceError(f"{directory}: not a policy directory")
    try:
        return build_policy(read_files(directory), directory)
    except PolicyError as exc:
        raise _problems(exc, str(directory)) from None


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"git {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise SourceError(f"git {' '.join(args)}: {message[-1] if message else f'exit {done.returncode}'}")
    return done.stdout


def from_git(ref: str, directory: Path) -> Policy:
    """The policy in ``directory`` as it is at the git ref ``ref`` (a branch, tag, commit, ``HEAD``)."""
    here = Path.cwd()
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], here).decode().strip())
    except SourceError:
        raise SourceError(f"{ref}: {here} is not in a git work tree (give --base a policy directory)") from None
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top)
    except SourceError:
        raise SourceError(f"{ref}: not a git ref (a branch, tag or commit) in {top}") from None
    try:
        relative = directory.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        raise SourceError(f"{directory}: not inside the git work tree {top}") from None
    prefix = "" if relative == "." else f"{relative}/"
    try:
        listed = _git(["ls-tree", "-z", "--name-only", f"{ref}:{prefix}"], top)
    except SourceError:
        raise SourceError(f"{ref}:{prefix}: no such directory at that ref") from None
    files: dict[str, bytes] = {}
    for name in listed.decode().split("\0"):
        if name and not ignored(name):
            try:
                files[name] = _git(["show", f"{ref}:{prefix}{name}"], top)
            except SourceError:
                continue  # not a file (a directory of that name)
    if not files:
        raise SourceError(f"{ref}:{prefix}: no policy files at that ref")
    label = f"{ref}:{relative}"
    try:
        return build_policy(files, label)
    except PolicyError as exc:
        raise _problems(exc, label) from None


def from_service(address: str) -> Policy:
    """The policy the decision service at ``address`` serves (its GetPolicy)."""
    import grpc

    from authz.client import Client

    try:
        with Client(address, timeout=10.0) as client:
            version, files = client.get_policy()
    except grpc.RpcError as exc:
        raise SourceError(f"decision service {address}: {exc.code().name}: {exc.details()}") from None
    try:
        policy = build_policy(files, f"serving@{address}")
    except PolicyError as exc:
        raise _problems(exc, f"decision service {address}") from None
    if policy.version != version:
        raise SourceError(f"decision service {address}: its files hash to {policy.version}, not {version}")
    return policy


def world_from_file(path: Path) -> WorldState:
    from authz.harness import CaseFileError
    from authz.testing import state_from_file

    try:
        return state_from_file(path)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the world ({exc.strerror or exc})") from None
    except CaseFileError as exc:
        raise SourceError(str(exc).splitlines()[0]) from None
    except Exception as exc:  # noqa: BLE001 - the store's validation errors for a bad world: one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(f"{path}: not a valid world: {first}") from None


def world_from_store(address: str, token: str) -> WorldState:
    import grpc

    from authz.replica import state_from_snapshot
    from store.client import StoreClient

    try:
        with StoreClient(address, token) as client:
            return state_from_snapshot(client.snapshot(timeout=600.0))
    except grpc.RpcError as exc:
        raise SourceError(f"store {address}: {exc.code().name}: {exc.details()}") from None
