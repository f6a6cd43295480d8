"""The policy playground's JSON API and page (issue 16), over real HTTP on a real stack.

A store with the demo world and a decision service serving AuthZEN and the playground on free
loopback ports (tests/authz/authzen_stack.py); every call is an httpx request. The browser tests
are in test_playground_browser.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from authz.cli import main
from authz.policy import read_files
from authz.server import ServerConfig
from authz.server import create_server as create_decision_server
from tests.authz.authzen_stack import AuthZen, serving
from tests.conftest import DEMO_WORLD, POLICIES

RP3 = "p, RP3, report.edit, team:member, r.obj.creator == r.sub.ref, allow"
TOKEN = "playground-token-0123456789"
STATIC = Path(__file__).resolve().parents[2] / "src" / "authz" / "http" / "playground" / "static"


def policy_hashes() -> dict[str, str]:
    """The sha256 of every file under policies/."""
    return {str(p.relative_to(POLICIES)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(POLICIES.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthZen]:
    with serving(tmp_path_factory.mktemp("playground"), playground=True, playground_world=DEMO_WORLD) as running:
        yield running


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return {name: data.decode() for name, data in read_files(POLICIES).items()}


@pytest.fixture(scope="module")
def world() -> str:
    return DEMO_WORLD.read_text()


def post(stack: AuthZen, path: str, body: Any) -> httpx.Response:
    return stack.http.post(f"/playground/api/{path}", json=body)


def edited(files: dict[str, str], name: str, old: str, new: str) -> dict[str, str]:
    assert old in files[name]
    return {**files, name: files[name].replace(old, new, 1)}


def check_body(files: dict[str, str], world: str, subject: str, action: str, resource: str, context: str = "") -> Any:
    return {"files": files, "world": world, "world_name": "demo-world.yaml", "subject": subject, "action": action,
            "resource": resource, "context": context}  # fmt: skip


# ---- the page ---------------------------------------------------------------------------------


def test_the_page_and_its_assets_come_from_the_package_and_name_no_other_host(stack: AuthZen) -> None:
    page = stack.http.get("/playground")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert 'data-testid="world-editor"' in page.text
    for name, kind in (("playground.js", "text/javascript"), ("playground.css", "text/css")):
        asset = stack.http.get(f"/playground/static/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(kind)
        assert asset.content == (STATIC / name).read_bytes()
    assert stack.http.get("/playground/static/../app.py").status_code == 404
    assert stack.http.get("/playground/static/secret.txt").status_code == 404
    for path in STATIC.iterdir():  # no request to any other host: no absolute URL at all
        assert "://" not in path.read_text(), path.name
    assert set(re.findall(r'(?:src|href)="([^"]*)"', page.text)) == {
        "/playground/static/playground.css", "/playground/static/playground.js", "data:,",
    }  # fmt: skip


def test_serving_gives_the_policy_serving_and_the_world_file(stack: AuthZen, files: dict[str, str]) -> None:
    answer = stack.http.get("/playground/api/serving").json()
    assert answer["files"] == files
    assert answer["version"] == stack.decision.decider.engines.policy.version
    assert answer["world"] == {"name": "demo-world.yaml", "text": DEMO_WORLD.read_text()}


def test_the_playground_is_off_unless_asked(tmp_path: Path) -> None:
    with serving(tmp_path) as plain:
        assert plain.http.get("/playground").status_code == 404
        assert plain.http.post("/playground/api/lint", json={"files": {}}).status_code == 404


# ---- the tabs ---------------------------------------------------------------------------------


def test_check_on_the_demo_world_is_allowed_by_rp3_with_lines_and_facts(
    stack: AuthZen, files: dict[str, str], world: str
) -> None:
    response = post(stack, "check", check_body(files, world, "user:carol", "report.edit", "report:rep-weekly-vision"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["allowed"] is True
    assert "RP3" in answer["rules"]
    line = answer["policy_lines"][0]
    assert (line["name"], line["line"], line["text"]) == ("reports.csv", 17, RP3)
    assert answer["explanation"].startswith("subject: kind=user, id=carol")
    denied = post(stack, "check", check_body(files, world, "user:dave", "report.edit", "report:rep-weekly-vision"))
    assert denied.json()["allowed"] is False
    body = check_body(files, world, "user:dave", "model_registry.add_alias", "model_registry:vision",
                      "# a comment\nalias = production\n")  # fmt: skip
    context = post(stack, "check", body)
    assert context.json()["request"]["context"] == {"alias": "production"}
    assert context.json()["allowed"] is False


def test_tests_run_every_case_of_the_world(stack: AuthZen, files: dict[str, str], world: str) -> None:
    cases = yaml.safe_load(world)["cases"]
    answer = post(stack, "tests", {"files": files, "world": world, "world_name": "demo-world.yaml"}).json()
    assert (answer["passed"], answer["failed"], answer["total"]) == (len(cases), 0, len(cases))
    first = answer["results"][0]
    assert (first["subject"], first["expected"], first["got"]) == ("user:carol", "allow", "allow")
    assert first["passed"] is True
    assert first["where"] == f"demo-world.yaml:{first['line']}"
    broken = edited(files, "reports.csv", RP3, RP3.replace("allow", "deny"))
    failing = post(stack, "tests", {"files": broken, "world": world}).json()
    assert failing["failed"] >= 1
    assert any(not r["passed"] and r["resource"] == "report:rep-weekly-vision" for r in failing["results"])


def test_an_edit_changes_the_diff_and_the_matrix(stack: AuthZen, files: dict[str, str], world: str) -> None:
    same = post(stack, "diff", {"files": files, "world": world}).json()
    assert same["total"] == 0
    assert same["version"] == same["serving_version"]
    assert post(stack, "matrix", {"files": files}).json()["changed"] == 0

    wider = edited(files, "reports.csv", RP3, RP3.replace("r.obj.creator == r.sub.ref", "True"))
    diff = post(stack, "diff", {"files": wider, "world": world}).json()
    assert diff["total"] > 0
    assert diff["counts"]["report.edit"]["deny_to_allow"] == diff["total"]
    assert diff["counts"]["report.edit"]["allow_to_deny"] == 0
    assert all(c["action"] == "report.edit" and not c["before"] and c["after"] for c in diff["changes"])
    assert diff["version"] != diff["serving_version"]

    matrix = post(stack, "matrix", {"files": wider}).json()
    assert matrix["changed"] >= 1
    reports = next(t for t in matrix["tables"] if t["title"] == "4.5 Reports")
    row = next(r for r in reports["rows"] if r["action"] == "report.edit")
    member = reports["columns"].index("member")
    assert (row["cells"][member], row["was"][member]) == ("X", "own")


def test_lint_names_file_and_line(stack: AuthZen, files: dict[str, str]) -> None:
    assert post(stack, "lint", {"files": files}).json()["ok"] is True
    broken = edited(files, "reports.csv", RP3, RP3.replace("RP3, report.edit", "RP3 report.edit"))
    answer = post(stack, "lint", {"files": broken}).json()
    assert answer["ok"] is False
    problem = answer["problems"][0]
    assert (problem["name"], problem["line"]) == ("reports.csv", 17)
    assert problem["text"].startswith(f"{POLICIES.name}/reports.csv:17: ")
    typo = edited(files, "reports.csv", "r.obj.creator == r.sub.ref", "r.obj.creater == r.sub.ref")
    assert "did you mean creator?" in post(stack, "lint", {"files": typo}).json()["problems"][0]["message"]
    missing = {name: text for name, text in files.items() if name != "roles.csv"}
    assert any(p["name"] == "roles.csv" for p in post(stack, "lint", {"files": missing}).json()["problems"])


# ---- bad input: a message, never a blank page or a stack trace --------------------------------


def test_a_policy_that_does_not_load_is_422_with_every_problem(
    stack: AuthZen, files: dict[str, str], world: str
) -> None:
    broken = edited(files, "reports.csv", RP3, RP3.replace("RP3, report.edit", "RP3 report.edit"))
    for path, body in (("check", check_body(broken, world, "user:carol", "report.edit", "report:rep-weekly-vision")),
                       ("tests", {"files": broken, "world": world}), ("matrix", {"files": broken}),
                       ("diff", {"files": broken, "world": world})):  # fmt: skip
        response = post(stack, path, body)
        assert response.status_code == 422, (path, response.text)
        answer = response.json()
        assert answer["error"] == "policy"
        assert "reports.csv:17: a p line has 5 fields" in answer["message"]
        assert [(p["name"], p["line"]) for p in answer["problems"]] == [("reports.csv", 17)]


@pytest.mark.parametrize(
    ("text", "expected", "line"),
    [
        ("world: [\n  nope\n", "demo-world.yaml: not valid YAML", 3),
        ("world:\n  teams:\n    - {id: t, org: nowhere}\n", "world.teams[0].org", 0),
        ("world: {}\ncases:\n  - {subject: bob, action: report.view, resource: report:r, allow: true}\n",
         "demo-world.yaml:3: cases[0].subject", 3),
        ("cases: []\n", "demo-world.yaml:1: world: is required", 1),
        ("- just a list\n", "the document must be a mapping", 0),
    ],
)  # fmt: skip
def test_a_world_that_does_not_load_is_422_with_its_path(
    stack: AuthZen, files: dict[str, str], text: str, expected: str, line: int
) -> None:
    response = post(stack, "tests", {"files": files, "world": text, "world_name": "demo-world.yaml"})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "world"
    assert expected in answer["message"]
    assert answer["problems"][0]["line"] == line


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body: is empty: send a JSON object"),
        (b"{nope", "body: is not JSON"),
        (b"[]", "body: must be a JSON object"),
        (b"{}", "files: is required"),
        (b'{"files": []}', "files: must be an object"),
        (b'{"files": {"model.conf": 7}}', "files.model.conf: must be a string, not the number 7"),
        (b'{"files": {}}', "files: is empty"),
        (b'{"files": {"../model.conf": ""}}', "files: '../model.conf' is not a policy file name"),
        (b'{"files": {".model.conf.swp": ""}}', "files: '.model.conf.swp' is not a policy file name"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field(stack: AuthZen, body: bytes, message: str) -> None:
    response = stack.http.post("/playground/api/lint", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.text.startswith(message), response.text


def test_check_fields_are_checked(stack: AuthZen, files: dict[str, str], world: str) -> None:
    cases = [
        (check_body(files, world, "carol", "report.edit", "report:r"), "subject: 'carol' is not kind:id"),
        (check_body(files, world, "user:carol", "report.edit", "report"), "resource: 'report' is not kind:id"),
        (check_body(files, world, "user:carol", "report.edit", "report:r", "alias"), "context: line 1: 'alias' is not"),
        (check_body(files, world, "user:carol", "Report Edit", "report:r"), "action: "),
        (check_body(files, world, "robot:carol", "report.edit", "report:r"), "subject.kind: "),
        ({k: v for k, v in check_body(files, world, "user:c", "a.b", "r:r").items() if k != "world"},
         "world: is required"),
    ]  # fmt: skip
    for body, message in cases:
        response = post(stack, "check", body)
        assert response.status_code == 400, response.text
        assert response.text.startswith(message), response.text
    wrong_type = stack.http.post("/playground/api/check", content=b"{}", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 400
    assert wrong_type.text.startswith("Content-Type: must be application/json")


# ---- the security rules of the API, and nothing written -----------------------------------------


def test_the_api_needs_the_token_where_decisions_do_and_the_page_does_not(
    tmp_path: Path, files: dict[str, str]
) -> None:
    with serving(tmp_path, playground=True, require_token=True, token=TOKEN) as locked:
        assert locked.http.get("/playground").status_code == 200
        assert locked.http.get("/playground/static/playground.js").status_code == 200
        for method, path, body in (("GET", "serving", None), ("POST", "lint", {"files": files})):
            refused = locked.http.request(method, f"/playground/api/{path}", json=body)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            wrong = locked.http.request(method, f"/playground/api/{path}", json=body,
                                        headers={"Authorization": "Bearer wrong-token-0123456789"})  # fmt: skip
            assert wrong.status_code == 401
            allowed = locked.http.request(method, f"/playground/api/{path}", json=body,
                                          headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            assert allowed.status_code == 200, allowed.text
        # Without a world file, the playground offers a small example world.
        example = locked.http.get("/playground/api/serving", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert example["world"]["name"] == "example-world.yaml"


def test_nothing_is_written_to_the_store_or_the_policies(stack: AuthZen, files: dict[str, str], world: str) -> None:
    before, revision = policy_hashes(), stack.store_client.revision()
    replaced = edited(files, "reports.csv", RP3, RP3.replace("r.obj.creator == r.sub.ref", "True"))
    replaced["zz.csv"] = "p, RP3, report.edit, anyone, True, allow\n"
    other_world = world.replace("rep-weekly-vision", "rep-renamed")
    for path in ("lint", "matrix", "tests", "diff", "check"):
        post(stack, path, check_body(replaced, other_world, "user:carol", "report.edit", "report:rep-renamed"))
        post(stack, path, check_body(files, other_world, "user:carol", "report.edit", "report:rep-renamed"))
    assert policy_hashes() == before
    assert stack.store_client.revision() == revision
    assert stack.decision.decider.engines.policy.version == post(stack, "lint", {"files": files}).json()["version"]


# ---- wiring -----------------------------------------------------------------------------------


def test_playground_needs_http(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--playground", "--store", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "--playground is served over HTTP: give --http HOST:PORT too" in result.output
    with pytest.raises(ValueError, match="needs an HTTP address"):
        create_decision_server(ServerConfig(listen="127.0.0.1:0", store="127.0.0.1:1", policies=POLICIES,
                                            playground=True))  # fmt: skip


def test_help_names_the_playground() -> None:
    for command in ("serve", "up"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "--playground" in result.output
        assert "/playground" in " ".join(result.output.split())
