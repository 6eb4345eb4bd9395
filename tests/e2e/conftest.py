"""Shared by the real-browser tests: a Streamlit server with its own workspace, Chromium, and page helpers.

Each test file starts ``streamlit run app.py`` on a free port through the ``server`` fixture and drives
Debian's Chromium with Playwright (``browser_page``); screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.standby import stop_standbys
from tests.conftest import ROOT
from tests.serving import wait_until_served

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]



def browser_marks(timeout_s: int = 420) -> list:
    """The marks of a real-browser test module: e2e, a timeout, and a skip without Chromium/Playwright."""
    return [pytest.mark.e2e, pytest.mark.timeout(timeout_s),
            pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's Chromium at {CHROMIUM}")]


@pytest.fixture
def browser_page(request: pytest.FixtureRequest) -> Iterator:
    """A fresh Chromium page (1400x1000 unless the test asks for ``viewport`` via indirect param)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright")
    viewport = getattr(request, "param", None) or {"width": 1400, "height": 1000}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport=viewport)
        finally:
            browser.close()

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Streamlit server with its own workspace; stopped (with any run it started) at the end."""
    workspace, port = tmp_path / "workspace", free_port()
    env = {**os.environ, "GRAFT_WORKSPACE": str(workspace), "GRAFT_CACHE_DIR": str(tmp_path / "cache"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_served(f"{url}/_stcore/health", proc, "streamlit", 90)
        yield url, workspace
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        _stop_runs(workspace)
        stop_standbys(workspace)


def _stop_runs(workspace: Path) -> None:
    from core import ACTIVE_STATES, read_status, request_stop

    runs = [p for p in (workspace / "runs").glob("*") if p.is_dir()]
    for run in runs:
        if read_status(run).get("state") in ACTIVE_STATES:
            request_stop(run)
    deadline = time.monotonic() + 60
    while any(read_status(r).get("state") in ACTIVE_STATES for r in runs) and time.monotonic() < deadline:
        time.sleep(0.5)



# --- page helpers -------------------------------------------------------------------------------


def idle(page, timeout_s: float = 60) -> None:
    """Wait until Streamlit has finished running the script: its "running" indicator stays away."""
    deadline, calm = time.monotonic() + timeout_s, 0
    page.wait_for_timeout(300)
    while calm < 3:
        if time.monotonic() > deadline:
            raise AssertionError("the app kept running")
        running = page.locator("[data-testid=stStatusWidgetRunningIcon]").count()
        calm = 0 if running else calm + 1
        page.wait_for_timeout(200)


def snap(page, name: str) -> None:
    """A screenshot of the whole page (the main area scrolls, so the viewport grows to fit it)."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]')?.scrollHeight || 1000")
    page.set_viewport_size({"width": 1400, "height": max(900, min(height + 40, 6000))})
    page.wait_for_timeout(600)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def no_errors(page) -> None:
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.get_by_text("Something went wrong").count() == 0


def goto(page, url: str, heading: str, timeout_ms: int = 60_000) -> None:
    """Open ``url`` and wait until its page (titled ``heading``) has finished drawing."""
    page.goto(url)
    page.locator("h1", has_text=heading).wait_for(timeout=timeout_ms)
    idle(page)


def open_page(page, slug: str, heading: str) -> None:
    # the sidebar's page links (app.py draws them; Streamlit's own navigation from pages/ is off)
    page.locator(f'[data-testid=stSidebar] a[href="{slug}"], [data-testid=stSidebar] a[href$="/{slug}"]').first.click()
    page.locator("h1", has_text=heading).wait_for(timeout=60_000)
    idle(page)


def button(page, text: str):
    return page.locator("button", has_text=text)


def choose(page, label: str, value: str) -> None:
    box = page.locator(f'input[role=combobox][aria-label="{label}"]')
    box.click()
    box.fill(value)
    page.locator("[role=option]", has_text=re.compile(rf"^\s*{re.escape(value)}\s*$")).first.click()
    idle(page)


def fill(page, label: str, value: str) -> None:
    box = page.locator(f'input[aria-label="{label}"]')
    box.fill(value)
    box.press("Enter")
    idle(page)


# --- the flow -----------------------------------------------------------------------------------
