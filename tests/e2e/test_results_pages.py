"""Evaluate, Test and Runs in a real browser, on a tiny finished run: the verdict opens Evaluate, its threshold
slider moves over the validation photos while the held-out test figures at that threshold sit beside them; and
screenshots of the three pages at 900 and 1440 px wide go to ``test-artifacts/``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from core.numbers import fmt_pct
from core.results import at_threshold, load_predictions
from tests.e2e.conftest import ARTIFACTS, browser_marks, goto, idle, no_errors
from tests.pages.tiny_run import trained_workspace

pytestmark = browser_marks(420)

WIDTHS = (900, 1440)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_workspace(tmp_path_factory)


@pytest.fixture
def ready(server, template: Path) -> tuple[str, Path]:
    """The server's workspace holding the finished run ``r1`` (its dataset stays in the template)."""
    url, workspace = server
    shutil.copytree(template, workspace, dirs_exist_ok=True)
    return url, workspace


def metric_value(page, label: str) -> str:
    """The value of the metric whose label is exactly ``label``."""
    box = page.locator("[data-testid=stMetric]").filter(
        has=page.locator("[data-testid=stMetricLabel]", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")))
    assert box.count() == 1, f"{label}: {box.count()} metrics"
    return box.locator("[data-testid=stMetricValue]").inner_text().strip()


def snap_at(page, name: str, width: int) -> None:
    """The whole page at ``width`` px (the main area scrolls, so the viewport grows to fit it)."""
    page.set_viewport_size({"width": width, "height": 1000})
    page.wait_for_timeout(800)
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]')?.scrollHeight || 1000")
    page.set_viewport_size({"width": width, "height": max(900, min(height + 40, 7000))})
    page.wait_for_timeout(900)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def move_slider(page, key: str) -> None:
    """Move the threshold slider (the first one: chosen on validation photos) with the keyboard."""
    handle = page.locator("[data-testid=stSlider] input[type=range]").first
    handle.focus()
    handle.press(key)
    idle(page)


def test_evaluate_slider_moves_over_validation_with_held_out_figures(ready, browser_page) -> None:
    url, workspace = ready
    page = browser_page
    goto(page, f"{url}/evaluate", "Evaluate", 90_000)
    no_errors(page)
    run = workspace / "runs" / "r1"
    # the verdict opens the page, above the headline numbers, and is not green for a run that isn't ready
    alert = page.locator("[data-testid=stAlert]").first
    assert re.search(r"(Not usable|Promising, needs more photos|Ready for a pilot)\. ", alert.inner_text())
    assert alert.bounding_box()["y"] < page.locator("[data-testid=stMetric]").first.bounding_box()["y"]
    label = page.locator("[data-testid=stSlider]").first.inner_text()
    assert "chosen on the validation photos" in label
    val, test = load_predictions(run, "val"), load_predictions(run, "test")
    for key, threshold in (("Home", 0.0), ("End", 1.0)):
        move_slider(page, key)
        on_val, on_test = at_threshold(val, threshold), at_threshold(test, threshold)
        assert metric_value(page, "Catch rate · validation") == fmt_pct(on_val.caught.value)
        assert metric_value(page, "False alarms · validation") == fmt_pct(on_val.false_alarms.value)
        assert metric_value(page, "Catch rate · held out") == fmt_pct(on_test.caught.value)
        assert metric_value(page, "False alarms · held out") == fmt_pct(on_test.false_alarms.value)
    assert page.get_by_text(re.compile(r"test photos · held out")).count() == 1
    assert page.get_by_text("tuned on the test photos: optimistic", exact=False).count() >= 1
    # the headline stays what training measured
    recorded = json.loads((run / "metrics.json").read_text())
    assert metric_value(page, "Defects caught (catch rate)") == fmt_pct(recorded["catch_rate"])
    no_errors(page)


def test_screenshots_of_evaluate_test_and_runs(ready, browser_page) -> None:
    url, workspace = ready
    page = browser_page
    goto(page, f"{url}/evaluate", "Evaluate", 90_000)
    for width in WIDTHS:
        snap_at(page, "evaluate", width)
    no_errors(page)
    goto(page, f"{url}/test", "Test", 90_000)
    data = workspace / "datasets" / "parts"
    page.locator("[data-testid=stFileUploaderDropzoneInput]").first.set_input_files(
        str(data / "scratch" / "scratch_000.png"))
    page.get_by_text("Where it looked", exact=False).first.wait_for(timeout=90_000)
    idle(page)
    for width in WIDTHS:
        snap_at(page, "test-photo", width)
    page.get_by_role("tab", name="A batch (zip or folder)").click()
    page.get_by_text("A folder in the workspace").click()
    idle(page)
    box = page.locator('input[aria-label="Folder inside the workspace"]')
    box.fill("datasets/parts")
    box.press("Enter")
    page.get_by_text("Against the class folders", exact=False).wait_for(timeout=90_000)
    idle(page)
    for width in WIDTHS:
        snap_at(page, "test-batch", width)
    no_errors(page)
    goto(page, f"{url}/runs", "Runs", 90_000)
    assert page.get_by_text("From scratch · test_resnet · parts").count() >= 1
    for width in WIDTHS:
        snap_at(page, "runs", width)
    no_errors(page)


def test_a_stopped_model_that_passes_every_part_is_not_usable_on_train_and_evaluate(ready, browser_page) -> None:
    url, workspace = ready
    page = browser_page
    run = workspace / "runs" / "r1"
    m = json.loads((run / "metrics.json").read_text())
    m.update(defects_caught=0, false_alarms=0, flagged=0, catch_rate=0.0, false_alarm_rate=0.0,
             predicted_classes=["ok"], accuracy=m["good_parts"] / m["n"],
             verdict={"level": "not_usable", "reason": "It passes every part as good."})
    (run / "metrics.json").write_text(json.dumps(m))
    status = json.loads((run / "status.json").read_text())
    status.update(state="stopped", message="Not usable. Stopped on request after 1 epoch(s).")
    (run / "status.json").write_text(json.dumps(status))
    for slug, heading in (("train", "Train"), ("evaluate", "Evaluate")):
        goto(page, f"{url}/{slug}?dataset=parts&run=r1", heading, 90_000)
        no_errors(page)
        verdict = page.locator("[data-testid=stAlertContentError]", has_text="Not usable.")
        assert verdict.count() >= 1, slug
        green = page.locator("[data-testid=stAlertContentSuccess]")
        assert all("finished" not in t.lower() and "Ready" not in t for t in green.all_inner_texts()), slug
