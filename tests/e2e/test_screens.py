"""Screenshots of Data, Model and Train at 900 and 1440 px wide, to ``test-artifacts/`` (looked at by a person).

The workspace holds the sample data and one finished tiny run, so Train shows a real ended run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_marks, idle, no_errors
from tests.pages.tiny_run import trained_workspace

pytestmark = browser_marks(420)
WIDTHS = (900, 1440)


def _shot(page, name: str, width: int) -> None:
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]')?.scrollHeight || 1000")
    page.set_viewport_size({"width": width, "height": max(800, min(height + 40, 6000))})
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / f"issue12-{name}-{width}.png"), full_page=True)


def test_screens_at_900_and_1440(server: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    from playwright.sync_api import sync_playwright

    from core.workspace import Workspace

    url, workspace = server
    template = trained_workspace(tmp_path_factory)
    Workspace(workspace).add_sample()
    shutil.copytree(template / "datasets" / "parts", workspace / "datasets" / "parts")
    shutil.copytree(template / "runs" / "r1", workspace / "runs" / "r1")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": 900})
                for slug, heading, query in (("", "Data", "?dataset=sample"), ("model", "Model", "?dataset=sample"),
                                             ("train", "Train", "?dataset=parts&run=r1")):
                    page.goto(f"{url}/{slug}{query}")
                    page.locator("h1", has_text=heading).wait_for(timeout=90_000)
                    idle(page)
                    page.wait_for_timeout(1500)
                    no_errors(page)
                    _shot(page, heading.lower(), width)
                page.close()
        finally:
            browser.close()
