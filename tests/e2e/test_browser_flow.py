"""The whole flow in a real browser: sample data -> tiny model -> live training -> results -> test a photo.

Starts ``streamlit run app.py`` on a free port with its own workspace, drives headless Debian
Chromium with Playwright, and keeps a screenshot of every page in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path


from tests.conftest import ROOT
from tests.e2e.conftest import (ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_marks, button, choose, fill, idle,
                               no_errors, open_page, snap)

EPOCHS = 1000  # far more than needed: the test stops the run once the curves have grown (any machine speed)

pytestmark = browser_marks(420)

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


# --- page helpers -------------------------------------------------------------------------------


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
