"""`authz policy diff` and `authz policy replay` as a user runs them: on a world file, on a git ref,
on a running store (the serving policy as the base), and on a real audit log; every bad input is one
line naming what and where, exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from authz.cli import main
from authz.server import ServerConfig
from authz.server import create_server as create_decision_server
from tests.conftest import DEMO_WORLD, POLICIES, TOKEN, Stack

ADMIN_EDIT = "p, RP3, report.edit, team:admin, True, allow\n"


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, ["policy", *args], env={"AUTHZ_TOKEN": None, **(env or {})})


def _copy(tmp_path: Path, name: str, drop: str = "") -> Path:
    target = tmp_path / name
    shutil.copytree(POLICIES, target)
    if drop:
        text = (target / "reports.csv").read_text()
        assert drop in text
        (target / "reports.csv").write_text(text.replace(drop, "", 1))
    return target


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(cwd), "PATH": "/usr/bin:/bin"})  # fmt: skip


def test_diff_on_a_world_counts_and_lists_every_change(tmp_path: Path) -> None:
    base, head = _copy(tmp_path, "base"), _copy(tmp_path, "head", drop=ADMIN_EDIT)
    args = ("diff", "--base", str(base), "--head", str(head), "--world", str(DEMO_WORLD))
    found = invoke(*args, "--json")
    assert found.exit_code == 0, found.output
    document = json.loads(found.stdout)
    assert set(document) >= {"base", "head", "revision", "counts", "changes"}
    assert document["base"] != document["head"]
    assert document["revision"] == 1
    assert "truncated" not in document
    counts = document["counts"]
    assert set(counts) == {"report.edit"}
    assert counts["report.edit"]["deny_to_allow"] == 0
    assert counts["report.edit"]["allow_to_deny"] == len(document["changes"]) > 0
    for change in document["changes"]:
        assert change["before"] is True
        assert change["after"] is False
        assert change["action"] == "report.edit"
        assert change["resource"].startswith("report:")
        assert "RP3" in change["before_rules"]
        assert change["context"] == {}
    text = invoke(*args)
    assert text.exit_code == 0
    assert f"{len(document['changes'])} decision(s) change" in text.stdout
    assert "report.edit" in text.stdout
    assert "RP3" in text.stdout
    markdown = invoke(*args, "--markdown")
    assert markdown.stdout.startswith("### Policy diff")
    assert "| `report.edit` |" in markdown.stdout
    assert invoke(*args, "--fail-on-change").exit_code == 1


def test_limit_cuts_the_list_never_the_counts(tmp_path: Path) -> None:
    base, head = _copy(tmp_path, "base"), _copy(tmp_path, "head", drop=ADMIN_EDIT)
    args = ("diff", "--base", str(base), "--head", str(head), "--world", str(DEMO_WORLD), "--json")
    whole = json.loads(invoke(*args).stdout)
    cut = json.loads(invoke(*args, "--limit", "2").stdout)
    assert cut["truncated"] is True
    assert len(cut["changes"]) == 2
    assert cut["counts"] == whole["counts"]


def test_no_change_exits_0_even_with_fail_on_change(tmp_path: Path) -> None:
    base = _copy(tmp_path, "base")
    found = invoke("diff", "--base", str(base), "--head", str(POLICIES), "--world", str(DEMO_WORLD),
                   "--fail-on-change")  # fmt: skip
    assert found.exit_code == 0, found.output
    assert "no decision changes" in found.stdout


def test_base_is_a_git_ref_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a git work tree the default base is HEAD's files of the head directory; --base reads any ref."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(POLICIES, repo / "policies")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "policies")
    _git(repo, "commit", "-q", "-m", "policy")
    text = (repo / "policies" / "reports.csv").read_text()
    (repo / "policies" / "reports.csv").write_text(text.replace(ADMIN_EDIT, ""))
    monkeypatch.chdir(repo)
    found = invoke("diff", "--world", str(DEMO_WORLD), "--json")
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["counts"]["report.edit"]["allow_to_deny"] > 0
    assert invoke("diff", "--world", str(DEMO_WORLD), "--base", "main", "--fail-on-change").exit_code == 1
    unknown = invoke("diff", "--world", str(DEMO_WORLD), "--base", "no-such-branch")
    assert unknown.exit_code == 2
    assert unknown.stderr.count("\n") == 1
    assert "no-such-branch: not a git ref" in unknown.stderr


def test_bad_input_is_one_line_naming_what_and_where(tmp_path: Path) -> None:
    base = _copy(tmp_path, "base")
    broken = _copy(tmp_path, "broken")
    typo = "p, RP3, report.edit, team:membr, True, allow\n"
    (broken / "reports.csv").write_text((broken / "reports.csv").read_text() + typo)
    cases = {
        "the policy does not lint": ("--base", str(base), "--head", str(broken), "--world", str(DEMO_WORLD)),
        "cannot read the world": ("--base", str(base), "--world", str(tmp_path / "missing.yaml")),
        "store 127.0.0.1:9: UNAVAILABLE": ("--base", str(base), "--store", "127.0.0.1:9"),
    }
    for expected, args in cases.items():
        found = invoke("diff", *args, env={"AUTHZ_STORE_TOKEN": TOKEN})
        assert found.exit_code == 2, (expected, found.output)
        assert found.stderr.startswith("error: "), found.stderr
        assert found.stderr.count("\n") == 1, found.stderr
        assert expected in found.stderr, found.stderr
    assert "reports.csv:" in invoke("diff", *cases["the policy does not lint"]).stderr  # file:line
    assert invoke("diff", "--base", str(base)).exit_code == 2  # neither --world nor --store: usage


def test_store_mode_compares_with_the_policy_serving(stack: Stack, tmp_path: Path) -> None:
    """With --store, the world is the store's data at its revision and the base is what --server serves."""
    head = _copy(tmp_path, "head", drop=ADMIN_EDIT)
    store = f"127.0.0.1:{stack.store.port}"
    found = invoke("diff", "--store", store, "--server", stack.address, "--head", str(head), "--json",
                   env={"AUTHZ_STORE_TOKEN": TOKEN})  # fmt: skip
    assert found.exit_code == 0, found.output
    document = json.loads(found.stdout)
    assert document["base"] == stack.decision.decider.engines.policy.version
    assert document["revision"] == stack.store_client.revision()
    world = json.loads(invoke("diff", "--world", str(DEMO_WORLD), "--base", str(stack.policies), "--head", str(head),
                              "--json").stdout)  # fmt: skip
    assert document["counts"] == world["counts"]  # the demo world, loaded in the store: the same diff
    some = document["changes"][0]
    assert stack.client.check(some["subject"], some["action"], some["resource"]).allowed is some["before"]


def test_replay_weighs_the_flips_of_a_real_audit_log(stack: Stack, tmp_path: Path) -> None:
    """Decisions asked through a server with an audit log, replayed under an edit: the flips, weighted."""
    log = tmp_path / "audit.jsonl"
    decision = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                     policies=stack.policies, audit_log=log)
    )  # fmt: skip
    try:
        assert decision.replica.wait_for(stack.store_client.revision(), 30)
        from authz.client import Client

        with Client(f"127.0.0.1:{decision.port}") as client:
            for _ in range(3):
                assert client.check("user:bob", "report.edit", "report:rep-weekly-vision").allowed
            assert client.check("user:carol", "report.view", "report:rep-weekly-vision").allowed
            client.check("user:carol", "model_registry.add_alias", "model_registry:vision",
                         context={"alias": "production"})  # fmt: skip
    finally:
        decision.stop(0)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[-1]["context"] == {"alias": "production"}
    head = _copy(tmp_path, "head", drop=ADMIN_EDIT)
    found = invoke("replay", str(log), "--head", str(head), "--world", str(DEMO_WORLD), "--json")
    assert found.exit_code == 0, found.output
    document = json.loads(found.stdout)
    assert document["lines"] == 5
    assert document["requests"] == 3
    flips = {(f["subject"], f["action"], f["resource"]): f for f in document["flips"]}
    bob = flips[("user:bob", "report.edit", "report:rep-weekly-vision")]
    assert bob["times"] == 3
    assert bob["before"] is True
    assert bob["after"] is False
    assert ("user:carol", "report.view", "report:rep-weekly-vision") not in flips
    assert document["flipped"] == 3
    text = invoke("replay", str(log), "--head", str(head), "--world", str(DEMO_WORLD), "--fail-on-change")
    assert text.exit_code == 1
    assert "3x user:bob report.edit report:rep-weekly-vision" in text.stdout
    same = invoke("replay", str(log), "--head", str(stack.policies), "--world", str(DEMO_WORLD))
    assert same.exit_code == 0
    assert "no recorded decision would flip" in same.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject": "user:carol"}\nnot json\n')
    broken = invoke("replay", str(bad), "--world", str(DEMO_WORLD))
    assert broken.exit_code == 2
    assert f"{bad}:1:" in broken.stderr


def test_redacted_audit_log_keeps_keys_not_values(stack: Stack, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    decision = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                     policies=stack.policies, audit_log=log, audit_redact_context=True)
    )  # fmt: skip
    try:
        assert decision.replica.wait_for(stack.store_client.revision(), 30)
        from authz.client import Client

        with Client(f"127.0.0.1:{decision.port}") as client:
            client.check("user:carol", "model_registry.add_alias", "model_registry:vision",
                         context={"alias": "production"})  # fmt: skip
    finally:
        decision.stop(0)
    (line,) = [json.loads(text) for text in log.read_text().splitlines()]
    assert "production" not in log.read_text()
    assert line["context_keys"] == ["alias"]
    assert line["context_redacted"] is True
    found = invoke("replay", str(log), "--world", str(DEMO_WORLD), "--json")
    assert json.loads(found.stdout)["redacted"] == 1


def test_get_policy_gives_the_files_serving_byte_for_byte(stack: Stack) -> None:
    """GetPolicy (both clients): the version serving and every file, which rebuild that same version."""
    import asyncio

    from authz import aio
    from authz.policy import build_policy, read_files

    version, files = stack.client.get_policy()
    assert version == stack.decision.decider.engines.policy.version
    assert files == read_files(stack.policies)
    assert build_policy(files, stack.policies).version == version

    async def fetch() -> tuple[str, dict[str, bytes]]:
        async with aio.Client(stack.address) as client:
            return await client.get_policy()

    assert asyncio.run(fetch()) == (version, files)
