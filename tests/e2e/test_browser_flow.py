"""The whole flow in a real browser: sample data -> tiny model -> live training -> results -> test a photo.

Starts ``streamlit run app.py`` on a free port with its own workspace, drives headless Debian
Chromium with Playwright, and keeps a screenshot of every page in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EPOCHS = 1000  # far more than needed: the test stops the run once the curves have grown (any machine speed)

pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright (requirements-dev.txt)")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(420),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's Chromium at {CHROMIUM}"),
]

POINTS_JS = """() => {
    const chart = document.querySelector('[data-testid=stPlotlyChart]');
    if (!chart) return -1;
    const trace = chart.querySelector('.scatterlayer .trace');
    return trace ? trace.querySelectorAll('.points path').length : 0;
}"""


LIVE_JS = f"""() => {{
    const bar = document.querySelector('[data-testid=stProgress]');
    return [bar ? bar.innerText : '', ({POINTS_JS})()];
}}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("streamlit did not become healthy")


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
        wait_healthy(url, proc)
        yield url, workspace
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        _stop_runs(workspace)


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


def open_page(page, slug: str, heading: str) -> None:
    page.locator(f'[data-testid=stSidebarNav] a[href$="/{slug}"]').click()
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


def load_sample(page) -> None:
    button(page, "Load sample data").click()
    page.get_by_text("Loaded the sample: 120 photos in 4 classes.").wait_for(timeout=60_000)
    idle(page)
    page.locator("[data-testid=stMetricValue]").first.wait_for()
    metrics = page.locator("[data-testid=stMetricValue]").all_inner_texts()
    assert metrics[:2] == ["120", "4"]
    assert page.locator("[data-testid=stPlotlyChart]").count() == 1
    no_errors(page)
    snap(page, "1-data")


def choose_tiny_model(page) -> None:
    open_page(page, "model", "Model")
    assert page.get_by_text("can't reach the internet").count() == 1
    assert button(page, "Use this").count() + button(page, "Selected").count() >= 6
    page.get_by_text("Any other timm model").click()
    fill(page, "timm model name", "test_resnet")
    button(page, "Use this model").click()
    page.get_by_text("Using test_resnet.").wait_for(timeout=30_000)
    page.locator("[data-testid=stRadio] label", has_text="From scratch").click()
    idle(page)
    page.get_by_text("Advanced settings").click()
    fill(page, "Epochs", str(EPOCHS))
    fill(page, "Stop when no progress for (epochs)", str(EPOCHS))
    choose(page, "Image size (pixels)", "32")
    choose(page, "Batch size", "32")
    page.get_by_text(f"{EPOCHS} epochs at 32 px").wait_for(timeout=30_000)
    no_errors(page)
    snap(page, "2-model")


def train_and_watch(page, workspace: Path) -> None:
    open_page(page, "train", "Train")
    button(page, "Start training").click()
    button(page, "Stop training").or_(button(page, "Cancel")).first.wait_for(timeout=60_000)
    seen = watch_until_the_curves_grow(page, workspace)
    if run_active(workspace):
        button(page, "Stop training").click()  # the Stop button ends it; the best model so far is kept
    page.get_by_text("Results on photos the model never saw").wait_for(timeout=240_000)
    idle(page)
    run = next((workspace / "runs").iterdir())
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    ran = len([e for e in events if e.get("event") == "epoch"])
    assert page.evaluate(POINTS_JS) == ran, "the final curves show every epoch"
    # The live view redrew on its own (no clicks) and the curves grew: at least two sizes, in order.
    points = [n for _, n in seen if n > 0]
    assert len(set(points)) >= 2 and points == sorted(points) and points[-1] <= ran, seen
    assert any(text.startswith("Epoch ") for text, _ in seen), seen
    labels = page.locator("[data-testid=stMetricLabel]").all_inner_texts()
    assert any("Accuracy" in t for t in labels) and any("False alarms" in t for t in labels)
    no_errors(page)
    snap(page, "3-train-done")


def run_active(workspace: Path) -> bool:
    """From the run folder, not the page: buttons vanish for a moment while the page redraws."""
    from core import ACTIVE_STATES, read_status

    runs = list((workspace / "runs").glob("*")) if (workspace / "runs").is_dir() else []
    return not runs or any(read_status(r).get("state") in ACTIVE_STATES for r in runs)


def watch_until_the_curves_grow(page, workspace: Path, timeout_s: float = 240) -> list[tuple[str, int]]:
    """(progress text, points on the curves) while the run is active, until two sizes were seen."""
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not run_active(workspace):
            break  # ended on its own
        text, points = page.evaluate(LIVE_JS)  # one atomic read: the live view redraws every second
        seen.append((text.strip(), points))
        if len({n for _, n in seen if n > 0}) >= 2:
            snap(page, "3-train-live")
            break
        page.wait_for_timeout(200)
    return seen


def visit_evaluate(page) -> None:
    open_page(page, "evaluate", "Evaluate")
    page.wait_for_timeout(1500)
    idle(page)
    no_errors(page)
    snap(page, "4-evaluate")


def try_one_photo(page, photo: Path) -> None:
    open_page(page, "test", "Test")
    uploader = page.locator("[data-testid=stFileUploader]", has_text="Upload photos")
    uploader.locator("input[type=file]").set_input_files(str(photo))
    page.get_by_text(re.compile(r"Good part|Defect: |% sure")).first.wait_for(timeout=90_000)
    idle(page)
    assert page.get_by_text(photo.name).count() >= 1
    no_errors(page)
    snap(page, "5-test")


def visit_runs(page) -> None:
    open_page(page, "runs", "Runs")
    page.wait_for_timeout(1000)
    no_errors(page)
    snap(page, "6-runs")


def test_whole_flow_in_chromium(server: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, workspace = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            # a bookmark straight to a page, as the very first request to a fresh server, gets the frame
            page.goto(f"{url}/runs")
            page.locator("h1", has_text="Runs").wait_for()
            page.get_by_text("Workspace", exact=True).first.wait_for()
            page.goto(url)
            page.locator("h1", has_text="Data").wait_for()
            idle(page)
            photo = ROOT / "sample_data" / "defects" / "scratch" / "scratch_0001.jpg"
            steps = [("data", load_sample), ("model", choose_tiny_model),
                     ("train", lambda pg: train_and_watch(pg, workspace)), ("evaluate", visit_evaluate),
                     ("test", lambda pg: try_one_photo(pg, photo)), ("runs", visit_runs)]
            for name, step in steps:
                t0 = time.monotonic()
                step(page)
                print(f"e2e {name}: {time.monotonic() - t0:.1f} s")
        finally:
            browser.close()
