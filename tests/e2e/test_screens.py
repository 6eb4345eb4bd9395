"""Screenshots of every page at 900 and 1440 px wide, to ``test-artifacts/`` (looked at by a person).

The workspace holds the sample data and one finished tiny run, so Train, Evaluate, Test and Runs show a real
ended run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_marks, idle, no_errors
from tests.pages.tiny_run import trained_workspace

pytestmark = browser_marks(600)
WIDTHS = (900, 1440)
# slug, heading, query of every page
SCREENS = (("", "Data", "?dataset=sample"), ("model", "Model", "?dataset=sample"),
           ("train", "Train", "?dataset=parts&run=r1"), ("evaluate", "Evaluate", "?dataset=parts&run=r1"),
           ("test", "Test", "?dataset=parts&run=r1"), ("runs", "Runs", "?dataset=parts&run=r1"))


def _shot(page, name: str, width: int) -> None:
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]')?.scrollHeight || 1000")
    page.set_viewport_size({"width": width, "height": max(800, min(height + 40, 6000))})
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / f"issue12-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": width, "height": 900})  # else the next page's height is this one's


_CARDS_JS = """(prefix) => [...document.querySelectorAll(`[class*="st-key-${prefix}"]`)].map(card => [
    Math.round(card.getBoundingClientRect().top), Math.round(card.querySelector('button').getBoundingClientRect().top)])"""


def _card_buttons_line_up(page, prefix: str) -> None:
    """The cards of one row (same top) have their buttons at the same height, whatever their words' length."""
    rows: dict[int, set[int]] = {}
    for card_top, button_top in page.evaluate(_CARDS_JS, prefix):
        rows.setdefault(card_top, set()).add(button_top)
    assert len(rows) >= 2, rows  # six cards: two rows of three
    assert all(max(tops) - min(tops) <= 2 for tops in rows.values()), rows


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
                for slug, heading, query in SCREENS:
                    page.goto(f"{url}/{slug}{query}")
                    page.locator("h1", has_text=heading).wait_for(timeout=90_000)
                    idle(page)
                    page.wait_for_timeout(1500)
                    no_errors(page)
                    if heading == "Model":
                        _card_buttons_line_up(page, "backbone_card_")
                        _card_buttons_line_up(page, "strategy_card_")
                    _shot(page, heading.lower(), width)
                page.close()
        finally:
            browser.close()
