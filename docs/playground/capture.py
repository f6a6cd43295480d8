"""Take the screenshots of the policy playground in this directory, one per tab.

    .venv/bin/python docs/playground/capture.py

Starts a throwaway stack (a SQLite store in a temporary directory with the demo world, a decision
service with `--http` and `--playground` on free loopback ports, the repository's policies/), drives
Debian's chromium with Playwright (`apt-get install chromium`; never `playwright install`), and
writes check-tab.png, tests-tab.png, matrix-tab.png, diff-tab.png and lint-tab.png. The edit shown
in the Matrix and Diff tabs lets members edit every report (RP3); the Lint tab shows a line with a
missing field. Nothing under policies/ or in any store but the throwaway one is written.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from authz.server import ServerConfig
from authz.server import create_server as create_decision_server
from store.client import StoreClient
from store.server import StoreConfig, create_server

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
WORLD = ROOT / "examples" / "demo-world.yaml"
TOKEN = "capture-token-0123456789"  # noqa: S105 - the throwaway store's
RP3 = "p, RP3, report.edit, team:member, r.obj.creator == r.sub.ref, allow"


def edit_line(page: Page, name: str, old: str, new: str) -> None:
    editor = page.get_by_test_id(f"policy-file-{name}")
    editor.fill(editor.input_value().replace(old, new, 1))


def shoot(page: Page, tab: str) -> None:
    if page.get_by_test_id(f"tab-{tab}").get_attribute("aria-selected") != "true":
        page.get_by_test_id(f"tab-{tab}").click()
    expect(page.locator(f"[data-testid={tab}-result][aria-busy]")).to_have_count(0)
    page.screenshot(path=str(OUT / f"{tab}-tab.png"))
    print(f"wrote {OUT / f'{tab}-tab.png'}")


def capture(base: str) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is not installed: apt-get install chromium")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{base}/playground")
        expect(page.get_by_test_id("lint-ok")).to_be_attached()
        page.get_by_test_id("check-run").click()
        expect(page.get_by_test_id("check-verdict")).to_have_text("ALLOWED")
        shoot(page, "check")
        page.get_by_test_id("tab-tests").click()
        page.get_by_test_id("tests-run").click()
        expect(page.get_by_test_id("tests-summary")).to_be_visible()
        shoot(page, "tests")
        edit_line(page, "reports.csv", RP3, RP3.replace("r.obj.creator == r.sub.ref", "True"))
        page.get_by_test_id("policy-file-reports.csv").focus()
        page.get_by_test_id("tab-matrix").click()
        page.get_by_test_id("matrix-run").click()
        expect(page.get_by_test_id("matrix-changed").first).to_be_visible()
        page.get_by_test_id("matrix-changed").first.scroll_into_view_if_needed()
        shoot(page, "matrix")
        page.get_by_test_id("tab-diff").click()
        page.get_by_test_id("diff-run").click()
        expect(page.get_by_test_id("diff-changes")).to_be_visible()
        shoot(page, "diff")
        edit_line(page, "reports.csv", "p, RP4, report.delete, team:member,", "p, RP4, report.delete team:member,")
        page.get_by_test_id("tab-lint").click()
        expect(page.get_by_test_id("lint-badge")).to_have_text("1")  # linted as the author types
        expect(page.locator("[data-testid=lint-result][aria-busy]")).to_have_count(0)
        page.locator("[data-testid=lint-result] button.problem").first.click()  # selects reports.csv:19
        shoot(page, "lint")
        browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        store = create_server(StoreConfig(listen="127.0.0.1:0", database_url=f"sqlite:///{scratch}/store.db",
                                          token=TOKEN))  # fmt: skip
        decision = None
        try:
            with StoreClient(f"127.0.0.1:{store.port}", TOKEN) as client:
                revision = client.import_world(WORLD.read_bytes(), name=str(WORLD)).revision
            decision = create_decision_server(ServerConfig(
                listen="127.0.0.1:0", store=f"127.0.0.1:{store.port}", store_token=TOKEN, policies=ROOT / "policies",
                http="127.0.0.1:0", playground=True, playground_world=WORLD,
            ))  # fmt: skip
            decision.replica.wait_for(revision, 30)
            assert decision.http_server is not None
            capture(decision.http_server.url)
        finally:
            if decision is not None:
                decision.stop(0)
            store.stop(0)


if __name__ == "__main__":
    main()
