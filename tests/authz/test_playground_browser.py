"""The policy playground in a real browser (issue 16): Playwright driving Debian's chromium.

A real stack (a store with the demo world, a decision service with AuthZEN and the playground on
free loopback ports, the repository's policies/) and a real page. Chromium is the system's
(`apt-get install chromium`; `.ci/run` installs it), never one `playwright install` downloads.
Outside CI these tests skip when chromium is missing; in CI (``$CI`` set) they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.authz.authzen_stack import AuthZen, serving
from tests.authz.test_playground import RP3, TOKEN, policy_hashes
from tests.conftest import DEMO_WORLD

CHROMIUM = shutil.which("chromium")


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the browser tests (.ci/run installs Debian's chromium)", pytrace=False)
    pytest.skip(why, allow_module_level=True)


try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    _unavailable("playwright is not installed (pip install -e '.[dev]')")
    raise

expect.set_options(timeout=30_000)  # a wait for the page, not a timing assertion


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses its sandbox to root
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthZen]:
    with serving(tmp_path_factory.mktemp("browser"), playground=True, playground_world=DEMO_WORLD) as running:
        yield running


@pytest.fixture
def page(browser: Browser, stack: AuthZen) -> Iterator[Page]:
    """The playground, loaded: the serving policy and the demo world in the editors, linted."""
    assert stack.decision.http_server is not None
    untouched = (policy_hashes(), stack.store_client.revision())
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.goto(f"{stack.decision.http_server.url}/playground")
    expect(opened.get_by_test_id("lint-ok")).to_be_attached()
    yield opened
    context.close()
    assert problems == []  # no script error, whatever the test did
    # The playground never writes the policy directory or the store.
    assert (policy_hashes(), stack.store_client.revision()) == untouched


def edit(page: Page, name: str, old: str, new: str) -> None:
    editor = page.get_by_test_id(f"policy-file-{name}")
    text = editor.input_value()
    assert old in text
    editor.fill(text.replace(old, new, 1))


def caret_line(page: Page, testid: str) -> Any:
    return page.get_by_test_id(testid).evaluate("e => e.value.slice(0, e.selectionStart).split('\\n').length")


def test_the_page_loads_the_serving_policy_and_the_world(page: Page, stack: AuthZen) -> None:
    from authz.policy import read_files
    from tests.conftest import POLICIES

    for name, data in read_files(POLICIES).items():
        expect(page.get_by_test_id(f"policy-file-{name}")).to_have_value(data.decode())
    expect(page.get_by_test_id("world-editor")).to_have_value(DEMO_WORLD.read_text())
    expect(page.get_by_test_id("serving-version")).to_contain_text(stack.decision.decider.engines.policy.version)
    expect(page.get_by_test_id("lint-ok")).to_contain_text("No problems")


def test_a_check_on_the_demo_world_shows_allowed_and_rp3(page: Page) -> None:
    page.get_by_test_id("check-subject").fill("user:carol")
    page.get_by_test_id("check-action").fill("report.edit")
    page.get_by_test_id("check-resource").fill("report:rep-weekly-vision")
    page.get_by_test_id("check-context").fill("")
    page.get_by_test_id("check-run").click()
    result = page.get_by_test_id("check-result")
    expect(result.get_by_test_id("check-verdict")).to_have_text("ALLOWED")
    expect(result.get_by_test_id("check-rule").first).to_have_text("RP3")
    expect(result).to_contain_text("reports.csv:17")
    expect(result).to_contain_text(RP3)  # the policy line
    expect(result.get_by_test_id("check-explanation")).to_contain_text("creator=user:carol")  # the --explain facts

    page.get_by_test_id("check-subject").fill("user:dave")
    page.get_by_test_id("check-action").fill("model_registry.add_alias")
    page.get_by_test_id("check-resource").fill("model_registry:vision")
    page.get_by_test_id("check-context").fill("alias=production")
    page.get_by_test_id("check-run").click()
    expect(result.get_by_test_id("check-verdict")).to_have_text("DENIED")


def test_the_tests_tab_shows_the_pass_count(page: Page) -> None:
    import yaml

    count = len(yaml.safe_load(DEMO_WORLD.read_text())["cases"])
    page.get_by_test_id("tab-tests").click()
    page.get_by_test_id("tests-run").click()
    result = page.get_by_test_id("tests-result")
    expect(result.get_by_test_id("tests-summary")).to_have_text(f"{count} passed, 0 failed of {count}")
    expect(result.locator("tbody tr")).to_have_count(count)

    edit(page, "reports.csv", RP3, RP3.replace("allow", "deny"))  # carol may no longer edit her report
    page.get_by_test_id("tests-run").click()
    expect(result.get_by_test_id("tests-summary")).not_to_contain_text(" 0 failed")
    expect(result.locator("tr.fail").first).to_contain_text("report:rep-weekly-vision")


def test_an_edit_to_a_line_shows_a_diff_and_an_updated_matrix(page: Page) -> None:
    page.get_by_test_id("tab-matrix").click()
    page.get_by_test_id("matrix-run").click()
    matrix = page.get_by_test_id("matrix-result")
    expect(matrix.get_by_test_id("matrix-summary")).to_contain_text("Same as the serving policy")
    expect(matrix.get_by_test_id("matrix-changed")).to_have_count(0)
    page.get_by_test_id("tab-diff").click()
    page.get_by_test_id("diff-run").click()
    diff = page.get_by_test_id("diff-result")
    expect(diff.get_by_test_id("diff-summary")).to_contain_text("No edits")

    edit(page, "reports.csv", RP3, RP3.replace("r.obj.creator == r.sub.ref", "True"))  # members edit any report
    page.get_by_test_id("diff-run").click()
    expect(diff.get_by_test_id("diff-summary")).to_contain_text("deny → allow")
    expect(diff.get_by_test_id("diff-counts")).to_contain_text("report.edit")
    expect(diff.get_by_test_id("diff-changes").locator("tbody tr").first).to_contain_text("report.edit")

    page.get_by_test_id("tab-matrix").click()
    page.get_by_test_id("matrix-run").click()
    expect(matrix.get_by_test_id("matrix-summary")).to_contain_text("differ from the serving policy")
    changed = matrix.get_by_test_id("matrix-changed")
    expect(changed).to_have_count(1)
    expect(changed).to_have_text("X")
    expect(changed).to_have_attribute("title", "serving: own")


def test_a_syntax_error_shows_file_and_line_in_lint_and_moves_the_editor(page: Page) -> None:
    edit(page, "reports.csv", RP3, RP3.replace("RP3, report.edit", "RP3 report.edit"))
    page.get_by_test_id("tab-lint").click()
    page.get_by_test_id("lint-run").click()
    problem = page.get_by_test_id("lint-result").locator("button.problem")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("reports.csv:17: a p line has 5 fields")
    expect(page.get_by_test_id("lint-badge")).to_have_text("1")
    page.get_by_test_id("world-editor").focus()
    problem.click()
    expect(page.get_by_test_id("policy-file-reports.csv")).to_be_focused()
    assert caret_line(page, "policy-file-reports.csv") == 17
    expect(page.get_by_test_id("policy-file-reports.csv")).to_be_in_viewport()

    # The other tabs say why they cannot answer, in the page.
    page.get_by_test_id("tab-check").click()
    page.get_by_test_id("check-run").click()
    error = page.get_by_test_id("check-result").get_by_test_id("error")
    expect(error).to_contain_text("The edited policy does not load")
    expect(error).to_contain_text("reports.csv:17")


def test_bad_world_yaml_shows_its_path_in_the_page(page: Page) -> None:
    page.get_by_test_id("world-editor").fill("world:\n  orgs:\n    - id: acme\n      users: [carol]\n  teams: [\n")
    page.get_by_test_id("tab-tests").click()
    page.get_by_test_id("tests-run").click()
    error = page.get_by_test_id("tests-result").get_by_test_id("error")
    expect(error).to_contain_text("The world does not load")
    expect(error).to_contain_text("not valid YAML")
    error.locator("button.problem").click()
    expect(page.get_by_test_id("world-editor")).to_be_focused()

    page.get_by_test_id("world-editor").fill("world:\n  orgs:\n    - {id: acme, users: [carol]}\n  teams:\n"
                                             "    - {id: vision, org: elsewhere}\n")  # fmt: skip
    page.get_by_test_id("tests-run").click()
    expect(error).to_contain_text("world.teams[0].org")

    page.get_by_test_id("tab-check").click()
    page.get_by_test_id("check-subject").fill("carol")  # not kind:id
    page.get_by_test_id("check-run").click()
    expect(page.get_by_test_id("check-result").get_by_test_id("error")).to_contain_text("subject: 'carol' is not")


def test_the_page_sends_the_token_when_one_is_required(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with serving(tmp_path_factory.mktemp("token"), playground=True, require_token=True, token=TOKEN) as locked:
        assert locked.decision.http_server is not None
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{locked.decision.http_server.url}/playground")
        expect(page.get_by_test_id("status")).to_contain_text("needs its bearer token")
        page.get_by_test_id("token").fill(TOKEN)
        page.get_by_test_id("token").dispatch_event("change")
        expect(page.get_by_test_id("policy-file-model.conf")).to_be_attached()
        assert "[matchers]" in page.get_by_test_id("policy-file-model.conf").input_value()
        page.get_by_test_id("check-run").click()
        expect(page.get_by_test_id("check-verdict")).to_have_text("ALLOWED")
        context.close()
