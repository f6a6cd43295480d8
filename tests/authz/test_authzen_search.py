"""AuthZEN 1.0 over HTTP (issue 15): the searches, the metadata, the OpenAPI document, and the CLI."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from click.testing import CliRunner
from openapi_spec_validator import validate as validate_openapi

from authz.cli import main
from authz.v1 import authorizer_pb2 as pb
from authz.v1 import authorizer_pb2_grpc
from store.client import StoreClient
from store.server import StoreServer
from tests.authz.authzen_stack import (
    EVALUATION,
    EVALUATIONS,
    SEARCH_ACTION,
    SEARCH_RESOURCE,
    SEARCH_SUBJECT,
    AuthZen,
    check_request,
    evaluation,
    resource,
    serving,
    subject,
)
from tests.conftest import DEMO_WORLD, POLICIES, TOKEN
from tests.helpers import authz_process, free_port, wait_serving


@pytest.fixture
def authzen(tmp_path: Path) -> Iterator[AuthZen]:
    with serving(tmp_path) as running:
        yield running


def _search(authzen: AuthZen, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = authzen.http.post(path, json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _all_pages(authzen: AuthZen, path: str, body: dict[str, Any], limit: int) -> tuple[list[Any], int]:
    """Every result, page by page; and the number of pages."""
    results: list[Any] = []
    token = ""
    pages = 0
    while True:
        page = {"limit": limit, **({"token": token} if token else {})}
        answer = _search(authzen, path, {**body, "page": page})
        pages += 1
        assert answer["page"]["count"] == len(answer["results"]) <= limit
        results += answer["results"]
        token = answer["page"]["next_token"]
        if not token:
            return results, pages
        assert pages < 100


def _grpc_resources(authzen: AuthZen, who: str, action: str, kind: str) -> list[str]:
    ident = subject(who)
    ids: list[str] = []
    token = ""
    while True:
        reply = authzen.stub.ListResources(pb.ListResourcesRequest(
            subject=pb.ObjectRef(kind=ident["type"], id=ident["id"]), action=action, resource_kind=kind,
            page_size=1000, page_token=token,
        ), timeout=10)  # fmt: skip
        ids += reply.resource_ids
        token = reply.next_page_token
        if not token:
            return ids


def _grpc_subjects(authzen: AuthZen, action: str, what: str, kind: str) -> list[str]:
    target = resource(what)
    reply = authzen.stub.ListSubjects(pb.ListSubjectsRequest(
        action=action, resource=pb.ObjectRef(kind=target["type"], id=target["id"]), subject_kind=kind, page_size=1000,
    ), timeout=10)  # fmt: skip
    assert not reply.next_page_token
    return list(reply.subject_ids)


# ---- searches ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["user:dave", "user:carol", "anonymous", "service_account:vision-ci"])
def test_resource_search_pages_through_what_list_resources_returns(authzen: AuthZen, who: str) -> None:
    """Paging 2 at a time (several pages) gives exactly what gRPC ListResources gives, in order."""
    body = {"subject": subject(who), "action": {"name": "report.view"}, "resource": {"type": "report", "id": "x"}}
    results, pages = _all_pages(authzen, SEARCH_RESOURCE, body, 2)
    expected = _grpc_resources(authzen, who, "report.view", "report")
    assert [(r["type"], r["id"]) for r in results] == [("report", ident) for ident in expected]
    if who == "user:dave":
        assert len(expected) > 2, "the demo world gives dave more than one page"
        assert pages > 1
    one_page = _search(authzen, SEARCH_RESOURCE, body)
    assert [r["id"] for r in one_page["results"]] == expected
    assert one_page["page"]["next_token"] == ""
    assert one_page["context"]["revision"] == authzen.decision.replica.revision


@pytest.mark.parametrize("kind", ["user", "service_account"])
def test_subject_search_is_list_subjects(authzen: AuthZen, kind: str) -> None:
    body = {"subject": {"type": kind, "id": 42}, "action": {"name": "report.edit"},
            "resource": resource("report:rep-weekly-vision")}  # fmt: skip
    results, _ = _all_pages(authzen, SEARCH_SUBJECT, body, 1)
    expected = _grpc_subjects(authzen, "report.edit", "report:rep-weekly-vision", kind)
    assert results == [{"type": kind, "id": ident} for ident in expected]
    if kind == "user":
        assert {"type": "user", "id": "carol"} in results
    for found in results:  # every subject found is allowed by an evaluation
        who = f"{found['type']}:{found['id']}"
        assert _search(authzen, EVALUATION, evaluation(who, "report.edit", "report:rep-weekly-vision"))["decision"]


def test_subject_search_for_anonymous(authzen: AuthZen) -> None:
    public = {"subject": {"type": "anonymous"}, "action": {"name": "report.view"},
              "resource": resource("report:rep-benchmarks")}  # fmt: skip
    assert _search(authzen, SEARCH_SUBJECT, public)["results"] == [{"type": "anonymous", "id": ""}]
    hidden = {**public, "resource": resource("report:rep-weekly-vision")}
    assert _search(authzen, SEARCH_SUBJECT, hidden)["results"] == []


def test_action_search_lists_exactly_the_allowed_actions(authzen: AuthZen) -> None:
    """Every action returned is allowed; every action of the kind not returned is denied."""
    policy = authzen.decision.decider.engines.policy
    applicable = sorted({line.values[0] for line in policy.grouping("g2") if line.values[1] == "report"})
    for who in ("user:carol", "user:dave", "user:trent", "anonymous"):
        body = {"subject": subject(who), "resource": resource("report:rep-weekly-vision")}
        results, _ = _all_pages(authzen, SEARCH_ACTION, body, 2)
        names = [r["name"] for r in results]
        assert names == sorted(names)
        batch = {"subject": subject(who), "resource": resource("report:rep-weekly-vision"),
                 "evaluations": [{"action": {"name": action}} for action in applicable]}  # fmt: skip
        decided = _search(authzen, EVALUATIONS, batch)["evaluations"]
        assert names == [a for a, d in zip(applicable, decided, strict=True) if d["decision"]], who
    carol = _search(
        authzen, SEARCH_ACTION, {"subject": subject("user:carol"), "resource": resource("report:rep-weekly-vision")}
    )
    assert {"name": "report.edit"} in carol["results"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (SEARCH_RESOURCE, {"subject": subject("user:dave"), "action": {"name": "report.view"},
                           "resource": {"type": "widget"}}),
        (SEARCH_RESOURCE, {"subject": {"type": "group", "id": "ml"}, "action": {"name": "report.view"},
                           "resource": {"type": "report"}}),
        (SEARCH_RESOURCE, {"subject": subject("user:ghost"), "action": {"name": "report.view"},
                           "resource": {"type": "team"}}),
        (SEARCH_RESOURCE, {"subject": subject("user:dave"), "action": {"name": "no.such"},
                           "resource": {"type": "report"}}),
        (SEARCH_SUBJECT, {"subject": {"type": "group"}, "action": {"name": "report.view"},
                          "resource": resource("report:rep-benchmarks")}),
        (SEARCH_SUBJECT, {"subject": {"type": "user"}, "action": {"name": "report.view"},
                          "resource": resource("report:missing")}),
        (SEARCH_SUBJECT, {"subject": {"type": "user"}, "action": {"name": "report.view"},
                          "resource": resource("widget:w1")}),
        (SEARCH_ACTION, {"subject": subject("user:dave"), "resource": resource("report:missing")}),
        (SEARCH_ACTION, {"subject": subject("user:dave"), "resource": resource("widget:w1")}),
        (SEARCH_ACTION, {"subject": {"type": "robot", "id": "r2"}, "resource": resource("report:rep-benchmarks")}),
    ],
)  # fmt: skip
def test_unknown_types_and_ids_are_empty_answers(authzen: AuthZen, path: str, body: dict[str, Any]) -> None:
    answer = _search(authzen, path, body)
    assert answer["results"] == []
    assert answer["page"] == {"next_token": "", "count": 0}


def test_page_tokens_belong_to_their_search(authzen: AuthZen) -> None:
    body = {"subject": subject("user:dave"), "action": {"name": "report.view"}, "resource": {"type": "report"}}
    first = _search(authzen, SEARCH_RESOURCE, {**body, "page": {"limit": 1}})
    token = first["page"]["next_token"]
    assert token
    changed = [
        {**body, "action": {"name": "report.edit"}, "page": {"limit": 1, "token": token}},
        {**body, "page": {"limit": 2, "token": token}},
        {**body, "context": {"alias": "x"}, "page": {"limit": 1, "token": token}},
        {**body, "subject": subject("user:carol"), "page": {"limit": 1, "token": token}},
    ]
    for other in changed:
        answer = authzen.http.post(SEARCH_RESOURCE, json=other)
        assert answer.status_code == 400
        assert answer.text.startswith("page.token: was issued for another search")
    for forged in ("abc", "W10=", "x" * 5000):
        answer = authzen.http.post(SEARCH_RESOURCE, json={**body, "page": {"token": forged}})
        assert answer.status_code == 400, answer.text
        assert answer.text.startswith("page.token: "), answer.text
    second = _search(authzen, SEARCH_RESOURCE, {**body, "page": {"limit": 1, "token": token}})
    assert second["results"] != first["results"]


def test_page_limits(authzen: AuthZen) -> None:
    body = {"subject": subject("user:dave"), "action": {"name": "report.view"}, "resource": {"type": "report"}}
    peek = _search(authzen, SEARCH_RESOURCE, {**body, "page": {"limit": 0}})
    assert peek["results"] == []
    assert peek["page"]["count"] == 0
    assert peek["page"]["next_token"], "some exist: the token says so"
    nothing = {**body, "resource": {"type": "widget"}, "page": {"limit": 0}}
    assert _search(authzen, SEARCH_RESOURCE, nothing)["page"]["next_token"] == ""
    big = _search(authzen, SEARCH_RESOURCE, {**body, "page": {"limit": 10**9}})
    assert big["page"]["next_token"] == ""
    assert big["results"]
    for bad, words in ((-1, "must be 0 or more"), ("2", "must be an integer"), (2.5, "must be an integer")):
        answer = authzen.http.post(SEARCH_RESOURCE, json={**body, "page": {"limit": bad}})
        assert answer.status_code == 400, answer.text
        assert answer.text.startswith(f"page.limit: {words}"), answer.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (SEARCH_RESOURCE, {"subject": subject("user:dave"), "action": {"name": "report.view"}}, "resource"),
        (SEARCH_RESOURCE, {"subject": subject("user:dave"), "action": {"name": "report.view"}, "resource": {}},
         "resource.type"),
        (SEARCH_RESOURCE, {"subject": subject("user:a b"), "action": {"name": "report.view"},
                           "resource": {"type": "report"}}, "subject.id"),
        (SEARCH_SUBJECT, {"subject": {"id": "x"}, "action": {"name": "report.view"},
                          "resource": resource("report:rep-benchmarks")}, "subject.type"),
        (SEARCH_SUBJECT, {"subject": {"type": "user"}, "action": {"name": "report.view"},
                          "resource": {"type": "report"}}, "resource.id"),
        (SEARCH_ACTION, {"resource": resource("report:rep-benchmarks")}, "subject"),
        (SEARCH_ACTION, {"subject": subject("user:dave"), "resource": resource("report:rep-benchmarks"),
                         "context": {"min_revision": -3}}, "context.min_revision"),
    ],
)  # fmt: skip
def test_bad_searches_are_400_naming_the_field(authzen: AuthZen, path: str, body: dict[str, Any], field: str) -> None:
    answer = authzen.http.post(path, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.text.startswith(f"{field}: "), answer.text


# ---- metadata and OpenAPI ---------------------------------------------------------------------


def test_metadata_names_every_endpoint(authzen: AuthZen) -> None:
    assert authzen.decision.http_server is not None
    base = authzen.decision.http_server.url
    answer = authzen.http.get("/.well-known/authzen-configuration")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    metadata = answer.json()
    assert metadata == {
        "policy_decision_point": base,
        "access_evaluation_endpoint": base + EVALUATION,
        "access_evaluations_endpoint": base + EVALUATIONS,
        "search_subject_endpoint": base + SEARCH_SUBJECT,
        "search_resource_endpoint": base + SEARCH_RESOURCE,
        "search_action_endpoint": base + SEARCH_ACTION,
    }
    for key, url in metadata.items():
        if key != "policy_decision_point":
            assert httpx.post(url, json={}, timeout=10).status_code == 400, "reachable, and asks for its fields"
    as_localhost = httpx.get(f"http://localhost:{authzen.decision.http_port}/.well-known/authzen-configuration")
    assert as_localhost.json()["policy_decision_point"] == f"http://localhost:{authzen.decision.http_port}"


def test_openapi_document(authzen: AuthZen) -> None:
    """A valid OpenAPI 3.1 document at a stable path, with every endpoint."""
    answer = authzen.http.get("/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    validate_openapi(document)
    assert set(document["paths"]) == {EVALUATION, EVALUATIONS, SEARCH_SUBJECT, SEARCH_RESOURCE, SEARCH_ACTION,
                                      "/.well-known/authzen-configuration"}  # fmt: skip
    evaluations = document["components"]["schemas"]["Evaluations"]["properties"]
    assert evaluations["options"]
    assert evaluations["evaluations"]["anyOf"][0]["items"]["$ref"].endswith("/Item")
    for path in (EVALUATION, EVALUATIONS):
        assert set(document["paths"][path]["post"]["responses"]) >= {"200", "400", "401"}


# ---- the command line -------------------------------------------------------------------------


def test_serve_http_flag_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHZ_STORE_TOKEN", TOKEN)
    runner = CliRunner()
    plain = runner.invoke(main, ["serve", "--policies", str(POLICIES), "--http", "0.0.0.0:8080"])
    assert plain.exit_code == 2
    assert "--insecure" in plain.output
    for bad in ("8080", "localhost", ":80", "host:99999"):
        result = runner.invoke(main, ["serve", "--policies", str(POLICIES), "--http", bad])
        assert result.exit_code == 2, result.output
        assert "--http" in result.output, result.output
    workers = runner.invoke(main, ["serve", "--policies", str(POLICIES), "--listen", "127.0.0.1:50999",
                                   "--workers", "2", "--http", "127.0.0.1:0"])  # fmt: skip
    assert workers.exit_code == 2
    assert "fixed port" in workers.output


def _wait_for(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text() if log.exists() else ""
        if text in content:
            return content
        assert process.poll() is None, content
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} not in {log}")


def test_serve_http_answers_as_grpc_does(store_server: StoreServer, tmp_path: Path) -> None:
    """`authz serve --http`: the same decision as the gRPC port of the same process."""
    store = f"127.0.0.1:{store_server.port}"
    with StoreClient(store, TOKEN) as client:
        client.import_world(DEMO_WORLD.read_bytes())
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    process = authz_process(
        "serve", "--listen", f"127.0.0.1:{grpc_port}", "--store", store, "--policies", str(POLICIES),
        "--http", f"127.0.0.1:{http_port}", env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{grpc_port}")
        _wait_for(log, f"AuthZEN over HTTP on http://127.0.0.1:{http_port}", process)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            expected = authorizer_pb2_grpc.AuthorizerStub(channel).Check(
                check_request("user:carol", "report.edit", "report:rep-weekly-vision"), timeout=10
            )
        body = evaluation("user:carol", "report.edit", "report:rep-weekly-vision")
        answer = httpx.post(f"http://127.0.0.1:{http_port}{EVALUATION}", json=body, timeout=10).json()
        assert (answer["decision"], answer["context"]["rules"], answer["context"]["revision"]) == (
            expected.allowed,
            list(expected.rules),
            expected.revision,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0, log.read_text()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the printed examples are curl calls")
def test_up_prints_curl_examples_that_work(tmp_path: Path) -> None:
    """`authz up --http-port N` serves AuthZEN and prints curl calls on the demo world; they run as printed."""
    ports = [free_port() for _ in range(3)]
    log = tmp_path / "up.log"
    process = authz_process(
        "up", "--port", str(ports[0]), "--store-port", str(ports[1]), "--http-port", str(ports[2]),
        "--database-url", f"sqlite:///{tmp_path / 'up.db'}", "--world", str(DEMO_WORLD), "--policies", str(POLICIES),
        env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log, cwd=tmp_path,
    )  # fmt: skip
    try:
        output = _wait_for(log, "Press Ctrl-C to stop", process)
        assert f"AuthZEN 1.0 over HTTP on http://127.0.0.1:{ports[2]}" in output
        calls = re.findall(r"^  (curl .*?)(?=\n  curl |\n\n)", output, flags=re.MULTILINE | re.DOTALL)
        assert len(calls) == 5, output
        answers = []
        for call in calls:
            command = re.sub(r"\s+#[^\n']*$", "", call.strip(), flags=re.MULTILINE)
            ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True)
            answers.append(json.loads(ran.stdout))
        metadata, one, many, resources, actions = answers
        assert metadata["access_evaluation_endpoint"].endswith(EVALUATION)
        assert one["decision"] is True
        assert "RP3" in one["context"]["rules"]
        assert [e["decision"] for e in many["evaluations"]] == [False, True], "permit_on_first_permit stops"
        assert resources["page"]["count"] == len(resources["results"]) == 2
        assert resources["page"]["next_token"]
        assert {"name": "model_registry.view"} in actions["results"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0, log.read_text()


def test_serve_workers_share_the_http_port(store_server: StoreServer, tmp_path: Path) -> None:
    """`serve --workers 2 --http`: each worker serves AuthZEN on the one port (SO_REUSEPORT), as for gRPC."""
    store = f"127.0.0.1:{store_server.port}"
    with StoreClient(store, TOKEN) as client:
        client.import_world(DEMO_WORLD.read_bytes())
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    process = authz_process(
        "serve", "--listen", f"127.0.0.1:{grpc_port}", "--store", store, "--policies", str(POLICIES),
        "--workers", "2", "--http", f"127.0.0.1:{http_port}", env={"AUTHZ_STORE_TOKEN": TOKEN}, log=log, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count(f"AuthZEN over HTTP on http://127.0.0.1:{http_port}") < 2:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        body = evaluation("user:carol", "report.edit", "report:rep-weekly-vision")
        answered = 0
        while answered < 20:  # a new connection each time: the kernel spreads them over the workers
            answer = httpx.post(f"http://127.0.0.1:{http_port}{EVALUATION}", json=body, timeout=10)
            if answer.status_code == 503:  # a worker still loading its replica: 503, never a deny
                assert time.monotonic() < deadline, answer.text
                time.sleep(0.2)
                continue
            assert answer.json()["decision"] is True
            answered += 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
