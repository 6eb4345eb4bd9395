"""Evaluate page (AppTest, real core, a tiny real model): headline numbers, threshold, cells, advice, bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.advice import advise
from core.results import confusion_at, load_predictions
from tests.conftest import ROOT

PAGE = str(ROOT / "pages" / "4_evaluate.py")


def run_page(ws: Path, current: bool = True) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if current:
        at.session_state["run"] = str(ws / "runs" / "r1")
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str):
    found = [m for m in at.metric if m.label == label]
    assert found, [m.label for m in at.metric]
    return found[0]


def pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def test_headline_numbers_match_metrics_json(ws: Path) -> None:
    at = run_page(ws)
    m = json.loads((ws / "runs" / "r1" / "metrics.json").read_text())
    assert metric(at, "Accuracy").value == pct(m["accuracy"])
    assert metric(at, "Accuracy").delta == f"{round(m['accuracy'] * m['n'])} of {m['n']} test photos right"
    assert metric(at, "Defects caught (catch rate)").value == pct(m["catch_rate"])
    assert metric(at, "Defects caught (catch rate)").delta == f"{m['defects_caught']} of {m['defects']} defective parts"
    assert metric(at, "False alarms").value == pct(m["false_alarm_rate"])
    assert metric(at, "False alarms").delta == f"{m['false_alarms']} of {m['good_parts']} good parts flagged"
    assert not [e.value for e in at.error if "every photo" not in e.value]  # only advice, never a failure


def test_threshold_slider_changes_catch_rate_and_can_be_saved(ws: Path) -> None:
    at = run_page(ws)
    before = metric(at, "Catch rate at this threshold").value
    target = 1.0 if before == "100%" else 0.0  # 0.0 flags every part; 1.0 (almost) none
    at.select_slider[0].set_value(target).run()
    after = metric(at, "Catch rate at this threshold").value
    assert after != before and after == ("100%" if target == 0.0 else after)
    save = [b for b in at.button if b.label.startswith("Use ")]
    assert save, "a changed threshold offers to save it"
    save[0].click().run()
    assert not at.exception
    spec = json.loads((ws / "runs" / "r1" / "model" / "model.json").read_text())
    decision = json.loads((ws / "runs" / "r1" / "model" / "decision.json").read_text())
    assert spec["threshold"] == target and decision["threshold"] == target and "threshold_from_training" in decision
    assert decision["chosen_on"] == "test"  # chosen while looking at the test photos: views of them are optimistic
    assert any("Saved" in s.value for s in at.success)
    # the headline now follows the saved threshold
    assert metric(at, "Defects caught (catch rate)").value == after


def test_confusion_cell_pickers_show_that_cells_photos(ws: Path) -> None:
    at = run_page(ws)
    preds = load_predictions(ws / "runs" / "r1")
    cm = confusion_at(preds)
    at.selectbox(key="cell_true").set_value("scratch")
    at.selectbox(key="cell_pred").set_value("ok").run()
    n = int(cm[preds.classes.index("scratch"), preds.classes.index("ok")])
    heading = [md.value for md in at.markdown if md.value.startswith("**Really scratch")]
    assert heading and f"{n} photo(s)" in heading[0]
    captions = [c for img in at.get("image") for c in img.captions]
    # the cell's photos (and, for mistakes, the gallery below) carry "really X, said Y" captions
    assert sum("really scratch, said ok" in c for c in captions) >= min(n, 12)


def test_per_class_table_and_advice(ws: Path) -> None:
    at = run_page(ws)
    table = at.dataframe[0].value
    m = json.loads((ws / "runs" / "r1" / "metrics.json").read_text())
    assert list(table["Class"]) == m["classes"]
    assert list(table["Found (recall)"]) == pytest.approx([m["per_class"][c]["recall"] for c in m["classes"]])
    advice = advise(m, [], json.loads((ws / "runs" / "r1" / "check.json").read_text()))
    shown = " ".join(e.value for e in [*at.error, *at.warning, *at.info, *at.success])
    assert advice[0].title.replace("'", "") in shown.replace("\\", "").replace("'", "")


def test_bundle_shows_parity_and_a_download(ws: Path) -> None:
    at = run_page(ws)
    at.button(key="build-bundle").click().run()
    assert not at.exception
    assert any("Parity check passed" in c.value for c in at.caption), [c.value for c in at.caption]
    assert any(b.label == "Download the bundle (zip)" for b in at.get("download_button"))


def test_no_finished_run_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_WORKSPACE", str(tmp_path / "empty"))
    at = run_page(tmp_path, current=False)
    assert any("No finished run yet" in i.value for i in at.info)


def test_report_is_built_on_request_and_offered_for_download(ws: Path) -> None:
    at = run_page(ws)
    assert not at.get("download_button")  # nothing is built until asked (it takes a few seconds)
    at.button(key="build-report").click().run()
    assert not at.exception
    assert not [e.value for e in at.error if "every photo" not in e.value]  # advice may be red; nothing else
    buttons = [b for b in at.get("download_button") if b.label == "Download the report"]
    assert buttons


def test_a_model_without_good_class_shows_plain_accuracy(ws: Path) -> None:
    run = ws / "runs" / "r1"
    for name in ("model/model.json", "metrics.json", "config.json"):
        data = json.loads((run / name).read_text())
        data["good_class"] = None
        (run / name).write_text(json.dumps(data))
    at = run_page(ws)
    assert [m.label for m in at.metric] == ["Accuracy"]
    assert not at.select_slider
    assert any("no good class" in c.value for c in at.caption)
