"""AuthZEN 1.0 over HTTP (issue 15): evaluations, statuses, tokens, TLS, and agreement with gRPC.

Every test talks to a real decision service over real HTTP (httpx), served beside gRPC from the
same process and replica (tests/authz/authzen_stack.py).
"""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from authz import errors, resolver, service
from authz.decision import MAX_BATCH
from authz.engines import CompiledEngine
from authz.http import app as http_app
from authz.http import documents
from authz.policy import load_policy
from authz.server import ServerConfig
from authz.server import create_server as create_decision_server
from authz.testing import random_requests, state_from_file
from authz.v1 import authorizer_pb2 as pb
from servicekit.tls import InsecureListen
from store.v1 import store_pb2
from tests.authz.authzen_stack import (
    EVALUATION,
    EVALUATIONS,
    AuthZen,
    check_request,
    evaluation,
    resource,
    serving,
    subject,
)
from tests.authz.test_security import Pki, pki  # noqa: F401 - the throwaway PKI fixture
from tests.conftest import DEMO_WORLD, POLICIES

ALLOWED = ("user:carol", "report.edit", "report:rep-weekly-vision")  # her own report (RP3)
DENIED = ("user:dave", "report.edit", "report:rep-weekly-vision")  # not his (RP3)
TOKEN = "http-token-0123456789-s3cr3t"


@pytest.fixture
def authzen(tmp_path: Path) -> Iterator[AuthZen]:
    with serving(tmp_path, metrics_port=0) as running:
        yield running


def _decide(authzen: AuthZen, body: object, **headers: str) -> httpx.Response:
    return authzen.http.post(EVALUATION, json=body, headers=headers)


def _refused(response: httpx.Response, status: int, field: str) -> str:
    """The message of an error answer: its status, as text, naming ``field`` first."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(f"{field}: "), response.text
    return response.text


def _audited(authzen: AuthZen) -> list[dict[str, Any]]:
    lines = authzen.audit.read_text().splitlines() if authzen.audit.exists() else []
    return [entry for entry in map(json.loads, lines) if entry["peer"].startswith("http:")]


# ---- one evaluation ---------------------------------------------------------------------------


def test_evaluation_allows_and_denies_with_reasons(authzen: AuthZen) -> None:
    """200 for an allow and for a deny; the context carries our reasons, revision and policy version."""
    allowed = _decide(authzen, evaluation(*ALLOWED))
    denied = _decide(authzen, evaluation(*DENIED))
    assert (allowed.status_code, denied.status_code) == (200, 200)
    assert allowed.headers["content-type"] == "application/json"
    yes = documents.DecisionAnswer.model_validate(allowed.json())
    no = documents.DecisionAnswer.model_validate(denied.json())
    assert (yes.decision, no.decision) == (True, False)
    assert yes.context is not None
    assert no.context is not None
    assert "RP3" in yes.context.rules
    assert "RP3" in (yes.context.reason or "")
    assert any(line.startswith("policies/reports.csv:") for line in yes.context.policy_lines or [])
    assert yes.context.reason_admin == {"en": yes.context.reason}
    assert yes.context.revision == authzen.decision.replica.revision > 0
    assert yes.context.policy_version == authzen.decision.decider.engines.policy.version
    assert (no.context.reason or "").startswith("denied")


def test_http_and_grpc_agree(authzen: AuthZen) -> None:
    """The same request over HTTP and over gRPC: the same answer, rules, lines, reason and revision,
    one by one (evaluation / Check) and as a batch (evaluations / BatchCheck)."""
    state = state_from_file(DEMO_WORLD)
    requests = random_requests(random.Random(15), state, load_policy(POLICIES), 150)
    items = []
    for r in requests:
        who = "anonymous" if r.subject_kind == "anonymous" else f"{r.subject_kind}:{r.subject_id}"
        items.append((who, r.action, f"{r.resource_kind}:{r.resource_id}", dict(r.context)))
    grpc_answers = [authzen.stub.Check(check_request(*item), timeout=10) for item in items]
    assert {a.allowed for a in grpc_answers} == {True, False}, "the sample has allows and denies"
    for item, expected in zip(items, grpc_answers, strict=True):
        body = _decide(authzen, evaluation(*item)).json()
        context = body["context"]
        got = (body["decision"], context["rules"], context["policy_lines"], context["reason"], context["revision"],
               context["policy_version"])  # fmt: skip
        assert got == (expected.allowed, list(expected.rules), list(expected.policy_lines), expected.reason,
                       expected.revision, expected.policy_version), item  # fmt: skip
    batch = authzen.stub.BatchCheck(pb.BatchCheckRequest(checks=[check_request(*i) for i in items]), timeout=10)
    answered = authzen.http.post(EVALUATIONS, json={"evaluations": [evaluation(*i) for i in items]}).json()
    assert [(e["decision"], e["context"]["rules"], e["context"]["revision"]) for e in answered["evaluations"]] == [
        (r.allowed, list(r.rules), r.revision) for r in batch.results
    ]


def test_context_strings_min_revision_and_ignored_values(authzen: AuthZen) -> None:
    """String context values are our context (M1a reads alias); min_revision waits for a store write;
    other values are ignored and named."""
    alias = ("user:dave", "model_registry.add_alias", "model_registry:vision")
    expected = authzen.stub.Check(check_request(*alias, {"alias": "production"}), timeout=10)
    body = _decide(authzen, evaluation(*alias, {"alias": "production", "weight": 3, "tags": ["x"]})).json()
    assert body["decision"] == expected.allowed
    assert body["context"]["rules"] == list(expected.rules)
    assert sorted(body["context"]["ignored_context"]) == ["tags", "weight"]
    without = _decide(authzen, evaluation(*alias)).json()
    assert without["decision"] is False
    assert "alias" in without["context"]["reason"], "G7: the missing key is named"

    view = ("user:trent", "report.view", "report:rep-weekly-vision")
    assert _decide(authzen, evaluation(*view)).json()["decision"] is False
    written = authzen.store_client.write(
        "AddMember", store_pb2.Membership(team="vision", user="trent", role="view_only")
    )
    for min_revision in (written, str(written)):
        after = _decide(authzen, evaluation(*view, {"min_revision": min_revision})).json()
        assert after["decision"] is True
        assert after["context"]["revision"] >= written
    for bad in (-1, "soon", 1.5, True, "١٢"):
        _refused(_decide(authzen, evaluation(*view, {"min_revision": bad})), 400, "context.min_revision")


def test_unknown_fields_are_ignored_and_properties_accepted(authzen: AuthZen) -> None:
    body = evaluation(*ALLOWED, {"alias": "x"})
    body["subject"]["properties"] = {"department": "ML", "ip_address": "10.0.0.1"}
    body["resource"]["properties"] = {"library_record": {"title": "x"}}
    body["action"]["properties"] = {"method": "PUT"}
    body["subject"]["extra"] = 1
    body["future_field"] = {"anything": [1, 2]}
    answer = _decide(authzen, body)
    assert answer.status_code == 200
    assert answer.json()["decision"] is True


def test_request_id_is_echoed(authzen: AuthZen) -> None:
    """X-Request-ID comes back on answers, on errors and on the metadata; none is made up."""
    ident = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    assert _decide(authzen, evaluation(*ALLOWED), **{"X-Request-ID": ident}).headers["x-request-id"] == ident
    assert _decide(authzen, {}, **{"X-Request-ID": "e-1"}).headers["x-request-id"] == "e-1"
    metadata = authzen.http.get("/.well-known/authzen-configuration", headers={"X-Request-ID": "m-1"})
    assert metadata.headers["x-request-id"] == "m-1"
    assert "x-request-id" not in _decide(authzen, evaluation(*ALLOWED)).headers


# ---- 400 --------------------------------------------------------------------------------------

BAD_DOCUMENTS = [
    ({"action": {"name": "report.edit"}, "resource": {"type": "report", "id": "r"}}, "subject", "is required"),
    ({**evaluation(*ALLOWED), "action": {}}, "action.name", "is required"),
    ({**evaluation(*ALLOWED), "resource": {"type": "report"}}, "resource.id", "is required"),
    ({**evaluation(*ALLOWED), "subject": {"type": "user", "id": 7}}, "subject.id", "must be a string"),
    ({**evaluation(*ALLOWED), "subject": "user:carol"}, "subject", "must be an object"),
    ({**evaluation(*ALLOWED), "action": {"name": None}}, "action.name", "must be a string, not null"),
    ({**evaluation(*ALLOWED), "context": ["alias"]}, "context", "must be an object"),
    ({**evaluation(*ALLOWED), "subject": {**subject("user:carol"), "properties": 1}}, "subject.properties", ""),
    ({**evaluation(*ALLOWED), "subject": {"type": "group", "id": "ml"}}, "subject.type", "'group' is not one of"),
    ({**evaluation(*ALLOWED), "subject": {"type": "user", "id": ""}}, "subject.id", "must not be empty"),
    ({**evaluation(*ALLOWED), "subject": {"type": "anonymous", "id": "x"}}, "subject.id", "must be empty"),
    ({**evaluation(*ALLOWED), "resource": {"type": "report", "id": "a b"}}, "resource.id", "has characters"),
    ({**evaluation(*ALLOWED), "resource": {"type": "Report!", "id": "r"}}, "resource.type", "is not a resource"),
    ({**evaluation(*ALLOWED), "action": {"name": "edit"}}, "action.name", "is not an action like"),
    ({**evaluation(*ALLOWED), "context": {"Bad-Key": "v"}}, "context", "key 'Bad-Key'"),
    ({**evaluation(*ALLOWED), "context": {"alias": "x" * 300}}, "context.alias", "the limit is 256"),
    ([evaluation(*ALLOWED)], "body", "must be a JSON object"),
    ("just a string", "body", "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "field", "words"), BAD_DOCUMENTS)
def test_bad_documents_are_400_naming_the_field(authzen: AuthZen, body: object, field: str, words: str) -> None:
    message = _refused(_decide(authzen, body), 400, field)
    assert words in message


@pytest.mark.parametrize(
    ("content", "content_type", "field", "words"),
    [
        (b"", "application/json", "body", "is empty"),
        (b"   ", "application/json", "body", "is not JSON"),
        (b'{"subject": ', "application/json", "body", "is not JSON"),
        (b"[" * 5000, "application/json", "body", "is not JSON"),
        (json.dumps(evaluation(*ALLOWED)).encode(), "text/plain", "Content-Type", "must be application/json"),
        (json.dumps(evaluation(*ALLOWED)).encode(), "application/x-www-form-urlencoded", "Content-Type", "must be"),
        (json.dumps(evaluation(*ALLOWED)).encode(), None, "Content-Type", "is missing"),
    ],
    ids=["empty", "blank", "truncated", "deep", "text", "form", "no-content-type"],
)
def test_bad_bodies_are_400(authzen: AuthZen, content: bytes, content_type: str | None, field: str, words: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    for path in (EVALUATION, EVALUATIONS, "/access/v1/search/resource"):
        message = _refused(authzen.http.post(path, content=content, headers=headers), 400, field)
        assert words in message


def test_content_type_with_charset_is_accepted(authzen: AuthZen) -> None:
    answer = authzen.http.post(
        EVALUATION,
        content=json.dumps(evaluation(*ALLOWED)),
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert answer.status_code == 200
    assert answer.json()["decision"] is True


def test_body_over_the_limit_is_413(authzen: AuthZen) -> None:
    big = {**evaluation(*ALLOWED), "padding": "x" * (4 << 20)}
    assert authzen.http.post(EVALUATION, json=big).status_code == 413


# ---- evaluations ------------------------------------------------------------------------------

READ = ("user:trent", "report.view")
VISIBLE = "report:rep-benchmarks"  # public project (RP1): trent may view it
HIDDEN = "report:rep-weekly-vision"  # in the vision team's project: trent may not


def _batch(authzen: AuthZen, items: list[dict[str, Any]], semantic: str | None = None, **top: Any) -> Any:
    body: dict[str, Any] = {"subject": subject(READ[0]), "action": {"name": READ[1]}, **top, "evaluations": items}
    if semantic is not None:
        body["options"] = {"evaluations_semantic": semantic, "another_option": "ignored"}
    answer = authzen.http.post(EVALUATIONS, json=body)
    assert answer.status_code == 200, answer.text
    return documents.EvaluationsAnswer.model_validate(answer.json())


def _items(*refs: str) -> list[dict[str, Any]]:
    return [{"resource": resource(ref)} for ref in refs]


def test_evaluations_defaults_overrides_and_order(authzen: AuthZen) -> None:
    """Top-level values are defaults; an item's own key replaces one; results come in request order."""
    items = [*_items(VISIBLE, HIDDEN), {"resource": resource(ALLOWED[2]), "subject": subject(ALLOWED[0]),
                                        "action": {"name": ALLOWED[1]}}]  # fmt: skip
    answer = _batch(authzen, items)
    assert [e.decision for e in answer.evaluations] == [True, False, True]
    alone = [_decide(authzen, evaluation(*READ, VISIBLE)).json(), _decide(authzen, evaluation(*READ, HIDDEN)).json()]
    assert [e.model_dump(exclude_none=True) for e in answer.evaluations[:2]] == alone


def test_evaluations_default_context_is_replaced_whole(authzen: AuthZen) -> None:
    alias = {"subject": subject("user:dave"), "action": {"name": "model_registry.add_alias"},
             "context": {"alias": "production"}}  # fmt: skip
    items = [{"resource": resource("model_registry:vision")},
             {"resource": resource("model_registry:vision"), "context": {"other": "x"}}]  # fmt: skip
    answer = authzen.http.post(EVALUATIONS, json={**alias, "evaluations": items}).json()["evaluations"]
    with_alias = evaluation("user:dave", "model_registry.add_alias", "model_registry:vision", {"alias": "production"})
    assert answer[0] == _decide(authzen, with_alias).json()
    assert answer[1] == _decide(authzen, {**with_alias, "context": {"other": "x"}}).json()
    assert answer[1]["decision"] is False
    assert "alias" in answer[1]["context"]["reason"], "G7 names the missing alias"


@pytest.mark.parametrize(
    ("semantic", "refs", "expected"),
    [
        (None, (VISIBLE, HIDDEN, VISIBLE), [True, False, True]),
        ("execute_all", (VISIBLE, HIDDEN, VISIBLE), [True, False, True]),
        ("deny_on_first_deny", (VISIBLE, HIDDEN, VISIBLE), [True, False]),
        ("deny_on_first_deny", (VISIBLE, VISIBLE), [True, True]),
        ("permit_on_first_permit", (HIDDEN, VISIBLE, HIDDEN), [False, True]),
        ("permit_on_first_permit", (HIDDEN, HIDDEN), [False, False]),
    ],
)
def test_evaluations_semantics(
    authzen: AuthZen, semantic: str | None, refs: tuple[str, ...], expected: list[bool]
) -> None:
    """The spec's short-circuits: items after the stop are neither answered nor decided (audit)."""
    before = len(_audited(authzen))
    answer = _batch(authzen, _items(*refs), semantic)
    assert [e.decision for e in answer.evaluations] == expected
    assert len(_audited(authzen)) - before == len(expected)


def test_a_bad_item_is_a_denied_item_not_a_failed_call(authzen: AuthZen) -> None:
    """execute_all: the bad item is false with the error naming its field; the others are answered.
    deny_on_first_deny: it stops there. permit_on_first_permit: it goes on."""
    items = [*_items(VISIBLE), {"resource": {"type": "report", "id": ""}}, 7, {"subject": {"type": 1}},
             {"action": {"name": "x"}, "resource": resource(VISIBLE)}, *_items(VISIBLE)]  # fmt: skip
    answer = _batch(authzen, items)
    assert [e.decision for e in answer.evaluations] == [True, False, False, False, False, True]
    errors = [e.context.error for e in answer.evaluations[1:5] if e.context is not None]
    assert [(e.status, e.message.split(":")[0]) for e in errors if e is not None] == [
        (400, "evaluations[1].resource.id"), (400, "evaluations[2]"), (400, "evaluations[3].subject.type"),
        (400, "evaluations[4].action.name"),
    ]  # fmt: skip
    stopped = _batch(authzen, items, "deny_on_first_deny")
    assert [e.decision for e in stopped.evaluations] == [True, False]
    assert stopped.evaluations[1].context is not None
    assert stopped.evaluations[1].context.error is not None
    going_on = _batch(authzen, [items[1], items[2], *_items(HIDDEN, VISIBLE, VISIBLE)], "permit_on_first_permit")
    assert [e.decision for e in going_on.evaluations] == [False, False, False, True]


def test_an_item_without_a_subject_anywhere_is_a_bad_item(authzen: AuthZen) -> None:
    body = {
        "action": {"name": READ[1]},
        "evaluations": [{"resource": resource(VISIBLE)}, {"subject": subject(READ[0]), "resource": resource(VISIBLE)}],
    }
    answer = authzen.http.post(EVALUATIONS, json=body).json()["evaluations"]
    assert answer[0]["decision"] is False
    assert answer[0]["context"]["error"]["message"].startswith("evaluations[0].subject: is required")
    assert answer[1]["decision"] is True


@pytest.mark.parametrize(
    ("top", "field"),
    [({"subject": {"type": "user", "id": ""}}, "subject.id"), ({"subject": {"type": "user"}}, "subject.id"),
     ({"context": {"min_revision": "x"}}, "context.min_revision"), ({"options": {"evaluations_semantic": "some"}},
     "options.evaluations_semantic"), ({"options": []}, "options"), ({"evaluations": {}}, "evaluations")],
)  # fmt: skip
def test_a_bad_default_or_option_is_a_400(authzen: AuthZen, top: dict[str, Any], field: str) -> None:
    body = {"subject": subject(READ[0]), "action": {"name": READ[1]}, "evaluations": _items(VISIBLE), **top}
    _refused(authzen.http.post(EVALUATIONS, json=body), 400, field)


def test_batch_limit(authzen: AuthZen) -> None:
    assert len(_batch(authzen, _items(VISIBLE) * MAX_BATCH).evaluations) == MAX_BATCH
    over = {"subject": subject(READ[0]), "action": {"name": READ[1]}, "evaluations": _items(VISIBLE) * (MAX_BATCH + 1)}
    assert f"the limit is {MAX_BATCH}" in _refused(authzen.http.post(EVALUATIONS, json=over), 400, "evaluations")


def test_evaluations_without_items_is_one_evaluation(authzen: AuthZen) -> None:
    for items in ({}, {"evaluations": []}):
        answer = authzen.http.post(EVALUATIONS, json={**evaluation(*ALLOWED), **items})
        assert answer.json() == _decide(authzen, evaluation(*ALLOWED)).json()
    _refused(authzen.http.post(EVALUATIONS, json={"evaluations": []}), 400, "subject")


# ---- failures, tokens, TLS, metrics -----------------------------------------------------------


def test_an_internal_failure_denies(authzen: AuthZen, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault while deciding is decision false (never true), one by one and in a batch."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected fault")

    with monkeypatch.context() as patch:
        patch.setattr(CompiledEngine, "evaluate", boom)
        one = _decide(authzen, evaluation(*ALLOWED)).json()
        many = _batch(authzen, _items(VISIBLE, VISIBLE))
    assert one["decision"] is False
    assert "internal error" in one["context"]["reason"]
    assert [e.decision for e in many.evaluations] == [False, False]
    with monkeypatch.context() as patch:
        patch.setattr(resolver, "resource", boom)
        assert _decide(authzen, evaluation(*ALLOWED)).json()["decision"] is False
    assert _decide(authzen, evaluation(*ALLOWED)).json()["decision"] is True, "it keeps serving"


def test_not_ready_is_503(tmp_path: Path) -> None:
    """Before the replica has the store's data (here: no store at all), decisions are 503, not denies."""
    server = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store="127.0.0.1:1", policies=POLICIES, http="127.0.0.1:0")
    )
    try:
        assert server.http_server is not None
        answer = httpx.post(server.http_server.url + EVALUATION, json=evaluation(*ALLOWED), timeout=10)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert "not loaded" in answer.text
    finally:
        server.stop(0)


def test_token_where_required(tmp_path: Path) -> None:
    """401 (with WWW-Authenticate) without the right bearer token; metadata and OpenAPI stay open."""
    with serving(tmp_path, require_token=True, token=TOKEN) as running:
        missing = running.http.post(EVALUATION, json=evaluation(*ALLOWED))
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "missing bearer token" in missing.text
        wrong = running.http.post(EVALUATION, json=evaluation(*ALLOWED), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        for path in (
            EVALUATIONS,
            "/access/v1/search/resource",
            "/access/v1/search/subject",
            "/access/v1/search/action",
        ):
            assert running.http.post(path, json={}).status_code == 401, "before the body is read"
        right = running.http.post(EVALUATION, json=evaluation(*ALLOWED), headers={"Authorization": f"bearer {TOKEN}"})
        assert right.status_code == 200
        assert right.json()["decision"] is True
        assert running.http.get("/.well-known/authzen-configuration").status_code == 200
        assert running.http.get("/openapi.json").status_code == 200


def test_tokens_are_judged_per_address() -> None:
    """gRPC on loopback needs none; HTTP off loopback needs one: without one the service does not start."""
    with pytest.raises(ValueError, match="need a token"):
        create_decision_server(ServerConfig(listen="127.0.0.1:0", store="127.0.0.1:1", policies=POLICIES,
                                            http="0.0.0.0:0", insecure=True))  # fmt: skip


def test_plain_text_off_loopback_is_refused() -> None:
    with pytest.raises(InsecureListen, match="--insecure"):
        create_decision_server(ServerConfig(listen="127.0.0.1:0", store="127.0.0.1:1", policies=POLICIES,
                                            http="0.0.0.0:0", token=TOKEN))  # fmt: skip


def _tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def test_mutual_tls(tmp_path: Path, pki: Pki) -> None:  # noqa: F811 - the fixture
    """HTTPS with the service's certificate; with a client CA, a client certificate it signed is required."""
    config = {"tls_cert": pki.server_cert, "tls_key": pki.server_key, "tls_client_ca": pki.ca}
    client = {"verify": _tls(pki.ca, pki.client_cert, pki.client_key)}
    with serving(tmp_path, client=client, **config) as running:
        assert running.http.base_url.scheme == "https"
        answer = running.http.post(EVALUATION, json=evaluation(*ALLOWED))
        assert answer.status_code == 200
        assert answer.json()["decision"] is True
        metadata = running.http.get("/.well-known/authzen-configuration").json()
        assert metadata["policy_decision_point"] == running.decision.http_server.url
        assert running.decision.http_server is not None
        url = running.decision.http_server.url + EVALUATION
        for refused in (_tls(pki.ca), _tls(pki.ca, pki.rogue_cert, pki.rogue_key)):
            with pytest.raises(httpx.HTTPError):
                httpx.post(url, json=evaluation(*ALLOWED), verify=refused, timeout=10)


def test_tls_without_client_ca(tmp_path: Path, pki: Pki) -> None:  # noqa: F811 - the fixture
    config = {"tls_cert": pki.server_cert, "tls_key": pki.server_key}
    with serving(tmp_path, client={"verify": _tls(pki.ca)}, **config) as running:
        assert running.http.post(EVALUATION, json=evaluation(*ALLOWED)).json()["decision"] is True
        with pytest.raises(httpx.HTTPError):  # plain text to a TLS port
            httpx.post(f"http://127.0.0.1:{running.decision.http_port}{EVALUATION}", json={}, timeout=10)


def test_metrics_count_http_decisions(authzen: AuthZen) -> None:
    _decide(authzen, evaluation(*ALLOWED))
    _decide(authzen, evaluation(*DENIED))
    _decide(authzen, {})
    text = httpx.get(f"http://127.0.0.1:{authzen.decision.metrics_port}/metrics", timeout=10).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("authz_decisions_total", (("action", "report.edit"), ("result", "allow")))] == 1
    assert samples[("authz_decisions_total", (("action", "report.edit"), ("result", "deny")))] == 1
    assert samples[("authz_http_seconds_count", (("endpoint", "access_evaluation"),))] == 3
    assert samples[("authz_http_responses_total", (("code", "400"), ("endpoint", "access_evaluation")))] == 1
    assert samples[("authz_http_responses_total", (("code", "200"), ("endpoint", "access_evaluation")))] == 2


def _error_classes(cls: type[Exception]) -> set[type[Exception]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _error_classes(sub)
    return found


def test_http_statuses_match_grpc_statuses() -> None:
    """Each error of the decision service means the same over HTTP as over gRPC."""
    same = {
        grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 503, grpc.StatusCode.INTERNAL: 500,
    }  # fmt: skip
    for cls in _error_classes(errors.AuthzError):
        error = cls.__new__(cls)
        assert http_app.status_of(error) == same[service.status_of(error)], cls.__name__
