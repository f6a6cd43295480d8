"""`authz list resources` and `authz list subjects` against a running stack: every page, one id per
line or JSON; bad input is a usage error, the service's refusals exit 1 naming the status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from authz.cli import main
from authz.server import ServerConfig
from authz.server import create_server as create_decision_server
from authz.v1 import authorizer_pb2 as pb
from tests.conftest import TOKEN, Stack

DECISION_TOKEN = "decision-token-0123456789"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["list", *args], env={"AUTHZ_TOKEN": None})


def all_resources(
    stack: Stack, subject: str, action: str, kind: str, context: dict[str, str] | None = None
) -> list[str]:
    kind_, _, ident = subject.partition(":")
    reply = stack.client.stub.ListResources(
        pb.ListResourcesRequest(subject=pb.ObjectRef(kind=kind_, id=ident), action=action, resource_kind=kind,
                                context=context or {}, page_size=1000), timeout=10,
    )  # fmt: skip
    assert not reply.next_page_token
    return list(reply.resource_ids)


def test_list_resources_prints_every_page(stack: Stack) -> None:
    """By default every page is fetched and printed, one id per line: exactly what Check allows."""
    result = invoke("resources", "--server", stack.address, "user:carol", "report.edit", "report")
    assert result.exit_code == 0, result.output
    ids = result.stdout.splitlines()
    assert ids == all_resources(stack, "user:carol", "report.edit", "report")
    assert "rep-weekly-vision" in ids
    assert "rep-seg-notes" not in ids
    for ident in ids:
        assert stack.client.check("user:carol", "report.edit", f"report:{ident}").allowed
    small_pages = invoke("resources", "--server", stack.address, "user:carol", "run.view", "run", "--page-size", "1",
                         "--all")  # fmt: skip
    assert small_pages.exit_code == 0, small_pages.output
    runs = all_resources(stack, "user:carol", "run.view", "run")
    assert len(runs) > 2
    assert small_pages.stdout.splitlines() == runs
    assert small_pages.stderr == ""


def test_list_resources_page_size_alone_prints_the_first_page(stack: Stack) -> None:
    """--page-size N without --all prints the first N ids and says on stderr that more follow."""
    runs = all_resources(stack, "user:carol", "run.view", "run")
    result = invoke("resources", "--server", stack.address, "user:carol", "run.view", "run", "--page-size", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == runs[:2]
    assert "--all" in result.stderr


def test_list_resources_json(stack: Stack) -> None:
    """--json: the ids, the store revision and the policy version the answer was made at."""
    result = invoke("resources", "--server", stack.address, "user:carol", "report.edit", "report", "--json",
                    "--min-revision", "1", "--page-size", "1", "--all")  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) == {"ids", "revision", "policy_version"}
    assert body["ids"] == all_resources(stack, "user:carol", "report.edit", "report")
    decision = stack.client.check("user:carol", "report.edit", "report:rep-weekly-vision")
    assert (body["revision"], body["policy_version"]) == (decision.revision, decision.policy_version)


def test_list_resources_context(stack: Stack) -> None:
    """-c KEY=VALUE passes context: E9's attribution needs the username."""
    args = ("resources", "--server", stack.address, "service_account:vision-ci", "run.attribute", "project")
    with_context = invoke(*args, "-c", "username=carol")
    assert with_context.exit_code == 0, with_context.output
    expected = all_resources(stack, "service_account:vision-ci", "run.attribute", "project", {"username": "carol"})
    assert with_context.stdout.splitlines() == expected
    assert "vision-detection" in expected
    without = invoke(*args)
    assert without.exit_code == 0, without.output
    assert "vision-detection" not in without.stdout.splitlines()


def test_list_subjects(stack: Stack) -> None:
    """Who may edit a report: users by default, one per line; --kind service_account; --json."""
    result = invoke("subjects", "--server", stack.address, "report.edit", "report:rep-weekly-vision")
    assert result.exit_code == 0, result.output
    users = result.stdout.splitlines()
    assert "carol" in users
    assert "dave" not in users
    for user in users:
        assert stack.client.check(f"user:{user}", "report.edit", "report:rep-weekly-vision").allowed
    accounts = invoke("subjects", "--server", stack.address, "run.create", "project:vision-detection", "--kind",
                      "service_account", "--json")  # fmt: skip
    assert accounts.exit_code == 0, accounts.output
    body = json.loads(accounts.stdout)
    assert set(body) == {"ids", "revision", "policy_version"}
    assert "vision-ci" in body["ids"]
    for account in body["ids"]:
        assert stack.client.check(f"service_account:{account}", "run.create", "project:vision-detection").allowed
    paged = invoke("subjects", "--server", stack.address, "report.edit", "report:rep-weekly-vision", "--page-size",
                   "1", "--all")  # fmt: skip
    assert paged.stdout.splitlines() == users


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("resources", "bob", "report.edit", "report"), "subject"),
        (("resources", "user:carol", "report.edit", "report", "-c", "x"), "-c/--context"),
        (("resources", "user:carol", "report.edit", "report", "--page-size", "0"), "--page-size"),
        (("resources", "user:carol", "report.edit", "report", "--page-size", "5000"), "--page-size"),
        (("resources", "user:carol", "report.edit", "report", "--min-revision", "-1"), "--min-revision"),
        (("subjects", "report.edit", "rep-weekly-vision"), "resource"),
        (("subjects", "report.edit", "report:rep-weekly-vision", "--kind", "robot"), "--kind"),
        (("resources", "user:carol", "report.edit", "report", "--cert", "absent.pem"), "--cert"),
    ],
)
def test_list_bad_input_is_a_usage_error(stack: Stack, args: tuple[str, ...], named: str) -> None:
    """Input the command can judge itself: exit 2, naming the argument or option."""
    result = invoke(*args, "--server", stack.address)
    assert result.exit_code == 2, result.output
    assert named in result.output


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("resources", "user:b b", "report.edit", "report"), "subject.id"),
        (("subjects", "report.edit", "report:rep weekly"), "resource.id"),
    ],
)
def test_list_refused_by_the_service(stack: Stack, args: tuple[str, ...], field: str) -> None:
    """What the service refuses: exit 1 with `CODE: details`, as `authz check` prints it."""
    result = invoke(*args, "--server", stack.address)
    assert result.exit_code == 1, result.output
    assert "INVALID_ARGUMENT: " in result.output
    assert field in result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ("resources", "user:carol", "report.edit", "reports"),
            "unknown resource kind reports (G3); did you mean report?",
        ),
        (
            ("resources", "user:carol", "report.edti", "report"),
            "unknown action report.edti (G3); did you mean report.edit?",
        ),
        (
            ("resources", "user:carl", "report.edit", "report"),
            "unknown subject user:carl (G3); did you mean user:carol?",
        ),
        (("resources", "user:carol", "report.edit", "run"), "report.edit applies to report resources, not run (G3)"),
        (("subjects", "report.veiw", "report:rep-weekly-vision"), "did you mean report.view?"),
        (("subjects", "report.view", "reprot:rep-weekly-vision"), "did you mean report?"),
    ],
)
def test_list_unknown_names_are_usage_errors(stack: Stack, args: tuple[str, ...], words: str) -> None:
    """An unknown action, kind or subject is a usage error (exit 2) naming it, with the closest known name;
    an empty answer about names that exist is not."""
    result = invoke(*args, "--server", stack.address)
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert result.stdout == ""


def test_list_empty_answers_are_answers(stack: Stack) -> None:
    """Known names with nothing to list: exit 0 and no ids, also for a resource that does not exist."""
    nothing = invoke("resources", "anonymous", "report.edit", "report", "--server", stack.address)
    assert nothing.exit_code == 0, nothing.output
    assert nothing.stdout == ""
    gone = invoke("subjects", "report.view", "report:no-such-report", "--server", stack.address, "--json")
    assert gone.exit_code == 0, gone.output
    assert json.loads(gone.stdout)["ids"] == []


@pytest.fixture
def guarded(stack: Stack) -> Iterator[str]:
    """A decision service on loopback that requires a token, following the stack's store."""
    server = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                     policies=stack.policies, require_token=True, token=DECISION_TOKEN)
    )  # fmt: skip
    try:
        assert server.replica.wait_for(stack.store_client.revision(), 30)
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop(0)


def test_list_sends_the_token(guarded: str, tmp_path: Path) -> None:
    """The token comes from --token-file (or $AUTHZ_TOKEN) as for `authz check`; without it, UNAUTHENTICATED."""
    token_file = tmp_path / "authz.token"
    token_file.write_text(DECISION_TOKEN + "\n")
    args = ("subjects", "report.edit", "report:rep-weekly-vision", "--server", guarded)
    result = invoke(*args, "--token-file", str(token_file))
    assert result.exit_code == 0, result.output
    assert "carol" in result.stdout.splitlines()
    missing = invoke(*args, "--token-file", str(tmp_path / "absent.token"))
    assert missing.exit_code == 1
    assert "UNAUTHENTICATED: " in missing.output
    from_env = CliRunner().invoke(
        main, ["list", *args, "--token-file", str(tmp_path / "absent.token")], env={"AUTHZ_TOKEN": DECISION_TOKEN}
    )
    assert from_env.exit_code == 0, from_env.output


def test_client_pages(stack: Stack) -> None:
    """Client.list_resources: one page with its next token, continued from that token, or every page."""
    runs = all_resources(stack, "user:carol", "run.view", "run")
    first = stack.client.list_resources("user:carol", "run.view", "run", page_size=2, all_pages=False)
    assert list(first.ids) == runs[:2]
    assert first.next_page_token
    rest = stack.client.list_resources("user:carol", "run.view", "run", page_size=2, page_token=first.next_page_token)
    assert list(first.ids + rest.ids) == runs
    assert rest.next_page_token == ""
    every = stack.client.list_subjects("report.edit", "report:rep-weekly-vision", page_size=1)
    assert "carol" in every.ids
    assert every.revision >= 1
    assert every.policy_version
