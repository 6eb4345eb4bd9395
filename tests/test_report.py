"""The stakeholder report: every section, escaped user text, and it renders offline in Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.cli import main
from core.errors import GraftError
from core.report import SECTION_IDS, build_report, find_scratch_baseline
from tests.conftest import make_dataset

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ODD = "<dent> & co"  # a class name that must come out as text, never as markup
TINY = ["--backbone", "test_resnet", "--start", "scratch", "--image-size", "32", "--batch-size", "8",
        "--good-class", "ok", "--seed", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fine-tuned run and a scratch baseline on the same photos, side by side in one runs folder."""
    data = make_dataset(tmp_path_factory.mktemp("data") / "parts", {"ok": 12, ODD: 12, "scratch": 12}, size=40)
    root = tmp_path_factory.mktemp("runs")
    out = {"main": root / "fine-tuned", "base": root / "baseline"}
    assert main(["train", str(data), "--out", str(out["main"]), *TINY, "--strategy", "fine-tune", "--epochs", "2"]) == 0
    assert main(["train", str(data), "--out", str(out["base"]), *TINY, "--strategy", "scratch", "--epochs", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def report(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", str(runs["main"]), "--out", str(out)]) == 0
    return out


def test_all_sections_and_inlined_assets(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in html, sid
    assert html.count("Plotly.newPlot") >= 3  # curves, confusion matrix, baseline comparison
    assert "data:image/jpeg;base64," in html  # example photos and heatmaps are inlined
    assert "<script src=" not in html and "<link" not in html and 'src="http' not in html
    baseline = html.split('<section id="baseline">')[1]
    assert "From scratch" in baseline and "baseline" in baseline


def test_user_text_is_escaped(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert ODD not in html and "<dent>" not in html
    assert "&lt;dent&gt; &amp; co" in html


def test_scratch_baseline_is_found_only_for_other_runs(runs: dict[str, Path]) -> None:
    assert find_scratch_baseline(runs["main"]) == runs["base"]
    assert find_scratch_baseline(runs["base"]) is None


def test_moved_dataset_and_unfinished_run(runs: dict[str, Path], tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(runs["main"], moved)
    config = json.loads((moved / "config.json").read_text())
    (moved / "config.json").write_text(json.dumps({**config, "data": str(tmp_path / "gone")}))
    html = build_report(moved).read_text(encoding="utf-8")
    assert "no longer at" in html and "No finished run trained from scratch" in html
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraftError, match="no finished model"):
        build_report(tmp_path / "empty")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium for the offline render")
def test_renders_offline_in_chromium(report: Path) -> None:
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            failed, errors, blocked = [], [], []
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", lambda route: (blocked.append(route.request.url), route.abort())
                       if route.request.url.startswith(("http:", "https:")) else route.continue_())
            page.goto(report.as_uri())
            page.wait_for_selector(".plotly .main-svg", timeout=20_000)
            assert page.locator(".plotly .main-svg").count() >= 3
            assert not blocked and not failed and not errors
            assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
            assert ODD in page.locator("#confusion").inner_text()  # shown as text in the chart, not markup
        finally:
            browser.close()


def test_the_verdict_opens_the_report_with_the_apps_ranges(report: Path, runs: dict[str, Path]) -> None:
    html = report.read_text(encoding="utf-8")
    metrics = json.loads((runs["main"] / "metrics.json").read_text())
    verdict = html.split('<section id="verdict"')[1].split("</section>")[0]
    assert html.index('<section id="verdict"') < html.index('<section id="results">')
    titles = {"not_usable": "Not usable", "promising": "Promising", "ready": "Ready for a pilot"}
    assert titles[metrics["verdict"]["level"]] in verdict
    results = html.split('<section id="results">')[1]
    from core.numbers import fmt_range

    assert f"95% range {fmt_range(*metrics['ranges']['catch_rate'])}" in results
    if metrics["evaluated_on"] == "oof":  # the default for 36 photos: cross-validation, honestly described
        assert "scored by a model trained without it" in html and "never saw while training" not in html


def test_a_run_scored_on_validation_never_claims_unseen_photos(tmp_path: Path) -> None:
    from core.config import RunConfig
    from core.pipeline import train_run

    data = make_dataset(tmp_path / "data", {"ok": 6, "scratch": 6}, size=32)
    out = tmp_path / "run"
    assert train_run(RunConfig(data=str(data), out=str(out), backbone="test_resnet", start="scratch", image_size=32,
                               batch_size=8, epochs=1, good_class="ok", test_fraction=0.0, folds=1)) == "done"
    assert json.loads((out / "metrics.json").read_text())["evaluated_on"] == "val"
    html = build_report(out).read_text(encoding="utf-8")
    assert "never saw" not in html and "never seen" not in html and "optimistic" in html
