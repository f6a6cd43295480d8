"""Policy edits that would change access by mistake are refused, by lint and by live reload, while the
last good version keeps deciding; edits that are meant go live whole, checked and tested first."""

from __future__ import annotations

import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz.cli import main
from authz.server import POLICY_HEALTH, ServerConfig
from authz.server import create_server as create_decision_server
from tests.conftest import POLICIES, ROOT, TOKEN, Stack

EDIT = ("user:dave", "report.edit", "report:rep-weekly-vision")  # a member, not the creator: denied
OWN = ("user:carol", "report.edit", "report:rep-weekly-vision")  # the creator: allowed (RP3)
ADMIN_LINE = "p, RP3, report.edit, team:admin, True, allow"


def _replace(name: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(directory: Path) -> None:
        path = directory / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1))

    return mutate


def _append(name: str, text: str) -> Callable[[Path], None]:
    def mutate(directory: Path) -> None:
        with (directory / name).open("a") as handle:
            handle.write(text)

    return mutate


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).write_text(text)


def _delete(name: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).unlink()


def _truncate(name: str, marker: str) -> Callable[[Path], None]:
    def mutate(directory: Path) -> None:
        path = directory / name
        text = path.read_text()
        path.write_text(text[: text.index(marker)])

    return mutate


# Each broken edit, and what the refusal must say (file:line and the way out where there is one).
BROKEN = [
    pytest.param(_replace("model.conf", "r.act == p.act", "r.actt == p.act"),
                 ["model.conf:", "[matchers]", "r.actt", "did you mean r.act?"], id="matcher typo r.actt"),
    pytest.param(_truncate("model.conf", "[matchers]"),
                 ["model.conf:", "[matchers]", "m is missing"], id="truncated model.conf"),
    pytest.param(_replace("model.conf", "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
                          "e = subjectPriority(p.eft) || deny"),
                 ["model.conf:", "[policy_effect]", "not an effect both engines evaluate"], id="uncompilable effect"),
    pytest.param(_replace("reports.csv", "r.obj.creator == r.sub.ref", "r.obj.creater == r.sub.ref"),
                 ["reports.csv:17", "r.obj.creater", "did you mean creator?"], id="fact typo r.obj.creater"),
    pytest.param(_replace("reports.csv", "report.edit, team:member,", "report.edit, team:membr,"),
                 ["reports.csv:17", "team:membr", "did you mean team:member?"], id="unknown role team:membr"),
    pytest.param(_delete("roles.csv"), ["roles.csv", "is missing"], id="deleted roles.csv"),
    pytest.param(_write("reports.csv", ""), ["reports.csv", "holds no policy line", "no line for rule RP3"],
                 id="empty reports.csv"),
    pytest.param(_append("roles.csv", "g, anyone, system:admin\n"),
                 ["roles.csv:", "puts every anyone into system:admin", "allow-wide"], id="everyone an admin"),
    pytest.param(_append("roles.csv", "g, team:view_only, team:admin\n"),
                 ["roles.csv:", "cycle", "team:admin -> team:member -> team:view_only -> team:admin"], id="role cycle"),
    pytest.param(_write("zz.csv", "p, RP3, report.edit, team:view_only, True, allow\n"),
                 ["zz.csv", "is not a file of this policy", "catalogue.yaml"], id="new zz.csv"),
    pytest.param(_append("reports.csv", "p, RP3, report.edit, anyone, True, allow\n"),
                 ["reports.csv:", "grants report.edit", "anonymous", "allow-wide"], id="edit granted to anyone"),
    pytest.param(_append("reports.csv", "p, RP9, report.edit, team:admin, r.sub.added, allow\n"),
                 ["reports.csv:", "rule RP9 is not in the catalogue"], id="rule id not in the catalogue"),
]  # fmt: skip


def _copy(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    return directory


@pytest.mark.parametrize(("mutate", "expected"), BROKEN)
def test_lint_refuses(tmp_path: Path, mutate: Callable[[Path], None], expected: list[str]) -> None:
    """`authz policy lint` exits 1 naming file:line and what is wrong."""
    directory = _copy(tmp_path)
    assert CliRunner().invoke(main, ["policy", "lint", str(directory)]).exit_code == 0
    mutate(directory)
    result = CliRunner().invoke(main, ["policy", "lint", str(directory)])
    assert result.exit_code == 1, result.output
    for text in expected:
        assert text in result.output, result.output


def test_lint_reports_every_problem_at_once(tmp_path: Path) -> None:
    """Several problems in several files are all reported by one run, each on its own line."""
    directory = _copy(tmp_path)
    _replace("reports.csv", "r.obj.creator == r.sub.ref", "r.obj.creater == r.sub.ref")(directory)
    _replace("runs.csv", "run.edit_workspace, team:member", "run.edit_workspace, team:viewonly")(directory)
    _write("zz.csv", "# nothing\n")(directory)
    result = CliRunner().invoke(main, ["policy", "lint", str(directory)])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if ": " in line and "problem(s)" not in line]
    assert len(problems) >= 3, result.output
    assert any("reports.csv:17" in line for line in problems)
    assert any("runs.csv:" in line and "team:viewonly" in line for line in problems)
    assert any("zz.csv" in line for line in problems)


def test_marked_wide_grant_is_accepted(tmp_path: Path) -> None:
    """A wide grant that is meant passes once its line says why."""
    directory = _copy(tmp_path)
    _append("reports.csv", "p, RP5, report.comment, anyone, r.obj.visibility == 'open', allow  "
                           "# lint: allow-wide open projects take comments from anyone\n")(directory)  # fmt: skip
    result = CliRunner().invoke(main, ["policy", "lint", str(directory)])
    assert result.exit_code == 0, result.output


def _health(address: str) -> tuple[int, str]:
    with grpc.insecure_channel(address) as channel:
        reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(service=POLICY_HEALTH), timeout=5
        )
    return reply.status, str(dict(call.trailing_metadata() or ()).get("policy-error", ""))


def _until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


@pytest.mark.parametrize(("mutate", "expected"), BROKEN)
def test_reload_refuses_and_the_last_good_version_decides(
    stack: Stack, mutate: Callable[[Path], None], expected: list[str]
) -> None:
    """Live reload refuses the edit (health says why); decisions stay those of the serving version."""
    before = stack.client.check(*OWN)
    assert before.allowed
    assert not stack.client.check(*EDIT).allowed
    mutate(stack.policies)
    _until(lambda: stack.decision.reloader.failures > 0)
    status, error = _health(stack.address)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    for text in expected:
        assert text in error.replace("\\n", "\n"), error
    for _ in range(20):
        own, other = stack.client.check(*OWN), stack.client.check(*EDIT)
        assert (own.allowed, other.allowed) == (True, False)
        assert own.policy_version == before.policy_version
    assert stack.client.check("anonymous", "report.edit", "report:rep-weekly-vision").allowed is False
    assert stack.decision.reloader.reloads == 0


def test_a_slowly_written_file_is_never_read_half_written(stack: Stack) -> None:
    """A file rewritten in pieces, pausing shorter than the settle window, never serves in part."""
    path = stack.policies / "projects.csv"
    text = path.read_text()
    version = stack.client.check(*OWN).policy_version
    # heidi is nlp's admin (P4 allows) but nlp disabled public projects (P4's deny line, further down).
    denied = ("user:heidi", "project.set_visibility", "project:nlp-llm-finetune")
    context = {"visibility": "public"}
    seen: list[tuple[bool, str]] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            decision = stack.client.check(*denied, context)
            seen.append((decision.allowed, decision.policy_version))

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        with path.open("w") as handle:
            for line in text.splitlines(keepends=True):  # whole lines: every state in between parses
                handle.write(line)
                handle.flush()
                time.sleep(0.08)
        time.sleep(1.5)
    finally:
        stop.set()
        asker.join()
    assert seen
    assert {allowed for allowed, _ in seen} == {False}, "a half-written file was served"
    assert {v for _, v in seen} == {version}
    assert stack.decision.reloader.failures == 0
    assert stack.decision.reloader.reloads == 0


def test_a_same_size_edit_with_the_old_mtime_is_reloaded(stack: Stack) -> None:
    """Content decides, not sizes or modification times: == to != of the same length is picked up."""
    path = stack.policies / "reports.csv"
    stat = path.stat()
    text = path.read_text()
    edited = text.replace("p, RP3, report.edit, team:member, r.obj.creator == r.sub.ref",
                          "p, RP3, report.edit, team:member, r.obj.creator != r.sub.ref", 1)  # fmt: skip
    assert len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _until(lambda: stack.client.check(*EDIT).allowed)
    assert stack.decision.reloader.reloads == 1


def test_explanations_cite_the_serving_text(stack: Stack) -> None:
    """After a refused edit moved lines on disk, --explain still shows the lines of the version serving."""
    path = stack.policies / "reports.csv"
    path.write_text("p, RP3, report.edit, team:admin, r.obj.creator ==, allow\n" + path.read_text())
    _until(lambda: stack.decision.reloader.failures > 0)
    decision = stack.client.check(*OWN, explain=True)
    assert "policies/reports.csv:17" in decision.policy_lines
    assert "reports.csv:17\n        p, RP3, report.edit, team:member, r.obj.creator == r.sub.ref, allow" in (
        decision.explanation
    )


def test_a_change_that_fails_the_decision_tests_is_refused(stack: Stack, tmp_path: Path) -> None:
    """With --policy-tests, a clean edit that breaks a case is refused naming the case; fixing it serves."""
    tests = tmp_path / "cases.yaml"
    shutil.copy(ROOT / "examples" / "demo-world.yaml", tests)
    server = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                     policies=stack.policies, reload_interval=0.1, policy_tests=(tests,), metrics="127.0.0.1:0")
    )  # fmt: skip
    try:
        address = f"127.0.0.1:{server.port}"
        assert server.replica.synced.wait(30)
        version = server.decider.engines.policy.version
        _replace("reports.csv", ADMIN_LINE, ADMIN_LINE.replace("team:admin", "team:member"))(stack.policies)
        _until(lambda: server.reloader.failures > 0)
        status, error = _health(address)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert "decision test(s) fail" in error
        assert "cases.yaml:" in error
        assert "report.edit" in error
        assert server.decider.engines.policy.version == version
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
        assert 'authz_policy_refusals_total{reason="tests"} 1.0' in metrics
        _replace("reports.csv", ADMIN_LINE.replace("team:admin", "team:member"), ADMIN_LINE)(stack.policies)
        _until(lambda: _health(address)[0] == health_pb2.HealthCheckResponse.SERVING)
    finally:
        server.stop(0)


def test_a_condition_that_raises_denies_and_is_reported(stack: Stack) -> None:
    """A line that raises at run time denies naming its rule and file:line, is counted, and turns /policy red."""
    _replace("reports.csv", "p, RP3, report.edit, team:member, r.obj.creator == r.sub.ref",
             "p, RP3, report.edit, team:member, r.sub.ref in r.obj.personal")(stack.policies)  # fmt: skip
    _until(lambda: stack.decision.reloader.reloads == 1)
    decision = stack.client.check(*OWN)
    assert not decision.allowed
    assert "RP3" in decision.rules
    assert "policies/reports.csv:17" in decision.policy_lines
    assert "failing closed" in decision.reason
    assert stack.decision.decider.engines.runtime_errors >= 1
    _until(lambda: _health(stack.address)[0] == health_pb2.HealthCheckResponse.NOT_SERVING)
    assert "reports.csv:17" in _health(stack.address)[1]
