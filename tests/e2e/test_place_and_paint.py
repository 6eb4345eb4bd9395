"""Issue 12 in a real browser: the place survives a refresh and a second tab, the first paint never shows raw
page names, Stop ends within one batch, a fake weights file is refused at once, and offline advice is plain.

Timings are printed (for the report), never asserted: speed goals belong in ``bench/``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import (CHROMIUM, CHROMIUM_ARGS, browser_marks, button, choose, fill, goto, idle,
                               no_errors, open_page)

pytestmark = browser_marks(420)

RAW_NAMES_JS = """() => {
    const nav = document.querySelector('[data-testid=stSidebarNav]');
    const text = nav ? nav.innerText : '';
    return /\\b(app|data|model|train|evaluate|test|runs)\\b/.test(text) ? text : '';
}"""
FIRST_PAINT_JS = """() => [
    !!document.querySelector('[data-testid=stAppSkeleton], [data-testid=stSpinner]')
        || document.body.innerText.includes('Loading Graft'),
    document.querySelector('h1')?.innerText || '',
]"""


def _browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def _seed_sample(workspace: Path) -> None:
    from core.workspace import Workspace

    Workspace(workspace).add_sample()


def _watch_first_paint(page, url: str, heading: str, timeout_s: float = 60) -> dict[str, float]:
    """Poll a direct link's first seconds: raw lowercase names must never show; note when things appear."""
    seen: dict[str, float] = {}
    t0 = time.monotonic()
    page.goto(url, wait_until="commit")
    while time.monotonic() - t0 < timeout_s:
        raw = page.evaluate(RAW_NAMES_JS)
        assert not raw, f"Streamlit's raw page names showed: {raw!r}"
        loading, h1 = page.evaluate(FIRST_PAINT_JS)
        now = round(time.monotonic() - t0, 2)
        if loading:
            seen.setdefault("loading", now)
        if h1:
            seen.setdefault("heading", now)
            if h1 == heading:
                break
        page.wait_for_timeout(50)
    assert page.locator("h1", has_text=heading).count() == 1
    return seen


def test_direct_links_never_show_raw_page_names(server: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, workspace = server
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            seen = _watch_first_paint(page, f"{url}/model", "Model")  # the very first request to a fresh server
            page.get_by_text("Use this").first.wait_for(timeout=60_000)
            seen["model cards"] = round(seen.get("heading", 0), 2)
            print(f"first paint /model on a fresh server: {seen}")
            links = page.locator("[data-testid=stSidebar] a").all_inner_texts()
            assert [t.split("\n")[-1].strip() for t in links[:6]] == ["Data", "Model", "Train", "Evaluate", "Test",
                                                                      "Runs"]
            for slug, heading in (("train", "Train"), ("evaluate", "Evaluate")):
                fresh = browser.new_page(viewport={"width": 1440, "height": 1000})
                print(f"first paint /{slug}: {_watch_first_paint(fresh, f'{url}/{slug}', heading)}")
                no_errors(fresh)
                fresh.close()
        finally:
            browser.close()


def _model_settings(page, epochs: str, size: str) -> None:
    open_page(page, "model", "Model")
    page.get_by_text("Advanced settings").click()
    fill(page, "Epochs", epochs)
    choose(page, "Image size (pixels)", size)
    page.get_by_text(f"{epochs} epochs at {size} px").wait_for(timeout=30_000)


def _sidebar(page) -> str:
    """The sidebar's dataset line (the page links and the run line left out)."""
    text = page.locator("[data-testid=stSidebar]").inner_text()
    return text.split("Dataset", 1)[-1].split("Run", 1)[0].replace("model_training", "").strip()


def test_the_place_survives_a_refresh_a_second_tab_and_a_shared_link(server: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, workspace = server
    _seed_sample(workspace)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            goto(page, url, "Data")
            page.locator('input[role=combobox][aria-label="Open a saved dataset"]').click()
            page.locator("[role=option]", has_text="sample").first.click()
            idle(page)
            _model_settings(page, "8", "96")
            assert _sidebar(page) == "sample"
            shared = page.url
            assert "dataset=sample" in shared and "epochs=8" in shared and "size=96" in shared

            page.reload()  # a refresh: a new session
            page.locator("h1", has_text="Model").wait_for(timeout=60_000)
            idle(page)
            page.get_by_text("8 epochs at 96 px").wait_for(timeout=30_000)
            assert _sidebar(page) == "sample"

            second = browser.new_page(viewport={"width": 1400, "height": 1000})  # a second tab, no parameters
            goto(second, f"{url}/train", "Train")
            second.get_by_text("8 epochs at 96 px").wait_for(timeout=30_000)
            assert _sidebar(second) == "sample"

            other = browser.new_context().new_page()  # someone else opening the shared link
            goto(other, shared, "Model")
            other.get_by_text("8 epochs at 96 px").wait_for(timeout=30_000)
            no_errors(other)
        finally:
            browser.close()
    saved = json.loads((workspace / "last_used.json").read_text())
    assert saved["dataset"] == "sample" and saved["choices"]["epochs"] == 8 and saved["choices"]["image_size"] == 96


def test_a_fake_weights_file_is_refused_at_once(server: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url, workspace = server
    _seed_sample(workspace)
    fake = tmp_path / "fake_weights.pth"
    fake.write_bytes(b"this is not a checkpoint" * 100)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            goto(page, f"{url}/model?dataset=sample", "Model")
            page.locator("[data-testid=stRadio] label", has_text="A weights file").click()
            idle(page)
            t0 = time.monotonic()
            page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(fake))
            alert = page.locator("[data-testid=stAlertContentError]", has_text="fake_weights.pth")
            alert.wait_for(timeout=60_000)
            print(f"fake weights refused after {time.monotonic() - t0:.1f} s: {alert.inner_text()!r}")
            assert "Error)" not in alert.inner_text()
            idle(page)
            assert page.get_by_text("Using fake_weights.pth").count() == 0
            assert button(page, "Next: train").count() == 0
            assert not list((workspace / "weights").glob("*")) if (workspace / "weights").exists() else True
            no_errors(page)
        finally:
            browser.close()


def test_offline_from_scratch_says_what_to_expect_and_the_ways_forward(server: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, workspace = server
    _seed_sample(workspace)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            goto(page, f"{url}/model?dataset=sample", "Model")
            warning = page.locator("[data-testid=stAlertContentWarning]", has_text="From scratch on 120 photos")
            warning.wait_for(timeout=30_000)
            assert "It takes about" in warning.inner_text()
            ways = page.locator("[data-testid=stExpander]", has_text="Better ways forward without the internet")
            assert "python -m core weights download" in ways.inner_text()
            assert "USB" in ways.inner_text()
            assert page.get_by_text("ImageNet accuracy").count() == 0  # no ImageNet numbers it can't use
            assert page.get_by_text("Expected training time").count() == 1
            no_errors(page)
        finally:
            browser.close()


@pytest.mark.timeout(900)  # two runs on a shared CPU
def test_stop_ends_within_one_batch_and_a_queued_run_is_cancelled(server: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, workspace = server
    _seed_sample(workspace)
    # ResNet-18 from scratch at 128 px, 2 photos a step: ~40 steps an epoch, so a stop lands inside one
    link = (f"{url}/train?dataset=sample&start=scratch&strategy=scratch&epochs=1000&size=128&batch=2"
            "&patience=1000&folds=1")
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            goto(page, link, "Train")
            button(page, "Start training").click()
            button(page, "Stop training").wait_for(timeout=90_000)
            run = next((workspace / "runs").iterdir())
            # a second run waits in line behind the first; cancel it
            page.get_by_text("Start a new run").click()
            button(page, "Start training").click()
            page.get_by_text("The run is queued").wait_for(timeout=60_000)
            idle(page)
            button(page, "Cancel").click()
            page.get_by_text("Cancelled before it started").wait_for(timeout=60_000)
            assert page.get_by_text("Stopping").count() == 0
            page.locator("button", has_text="Show").first.click()  # back to the training run
            button(page, "Stop training").wait_for(timeout=30_000)
            _wait_training(run)  # the photos are prepared and batches are running: the click lands inside an epoch
            t0 = time.monotonic()
            button(page, "Stop training").click()
            page.get_by_text("Stopped on request").wait_for(timeout=240_000)
            print(f"stop: stopped, saved and scored {time.monotonic() - t0:.1f} s after the click")
        finally:
            browser.close()
    epochs = _epochs(run)
    assert 0 < epochs[-1]["stopped_after_batch"] < epochs[-1]["batches"], epochs[-1]  # not the whole epoch
    assert (run / "model" / "model.json").is_file() and (run / "metrics.json").is_file()


def _epochs(run: Path) -> list[dict]:
    lines = (run / "events.jsonl").read_text().splitlines() if (run / "events.jsonl").exists() else []
    return [e for e in map(json.loads, lines) if e.get("event") == "epoch"]


def _wait_training(run: Path, timeout_s: float = 300) -> None:
    """Until the first training batch has been reported (the fit loop runs; one epoch takes seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = (run / "events.jsonl").read_text().splitlines() if (run / "events.jsonl").exists() else []
        if any(e.get("event") == "progress" and e.get("phase") == "train" for e in map(json.loads, lines)):
            return
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.1)
