"""Evaluate page (AppTest, real core, a tiny real model): the verdict above the headline, the threshold chosen
on validation photos with the held-out figures beside it, the optimistic test-photo view, targets, per-class
numbers, cells, advice and the separate downloads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.advice import advise
from core.numbers import fmt_pct
from core.results import at_threshold, confusion_at, load_predictions
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


def rewrite_metrics(run: Path, **changes) -> None:
    m = json.loads((run / "metrics.json").read_text())
    m.update(changes)
    (run / "metrics.json").write_text(json.dumps(m))


def keep_rows(run: Path, keep) -> None:
    """Rewrite predictions.csv keeping the rows ``keep(row)`` accepts."""
    path = run / "predictions.csv"
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, [r for r in reader if keep(r)]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_headline_numbers_match_metrics_json(ws: Path) -> None:
    at = run_page(ws)
    m = json.loads((ws / "runs" / "r1" / "metrics.json").read_text())
    assert metric(at, "Accuracy").value == fmt_pct(m["accuracy"])
    assert metric(at, "Accuracy").delta.startswith(f"{round(m['accuracy'] * m['n'])} of {m['n']} test photos right")
    assert metric(at, "Defects caught (catch rate)").value == fmt_pct(m["catch_rate"])
    assert metric(at, "Defects caught (catch rate)").delta.startswith(f"{m['defects_caught']} of {m['defects']} "
                                                                      "defective parts · range ")
    assert metric(at, "False alarms").value == fmt_pct(m["false_alarm_rate"])
    assert metric(at, "False alarms").delta.startswith(f"{m['false_alarms']} of {m['good_parts']} good parts flagged")


def test_verdict_opens_the_page_and_is_not_green_unless_ready(ws: Path) -> None:
    at = run_page(ws)
    m = json.loads((ws / "runs" / "r1" / "metrics.json").read_text())
    level = m["verdict"]["level"]
    title = {"not_usable": "Not usable", "promising": "Promising, needs more photos", "ready": "Ready for a pilot"}
    kind = {"not_usable": at.error, "promising": at.warning, "ready": at.success}[level]
    assert kind and kind[0].value.startswith(f"**{title[level]}.**")
    if level != "ready":
        assert not any("Ready for a pilot" in s.value for s in at.success)


def test_a_model_that_passes_every_part_is_not_usable_in_red(ws: Path) -> None:
    run = ws / "runs" / "r1"
    m = json.loads((run / "metrics.json").read_text())
    rewrite_metrics(run, defects_caught=0, false_alarms=0, flagged=0, catch_rate=0.0, false_alarm_rate=0.0,
                    predicted_classes=["ok"], verdict={"level": "not_usable", "reason": "x"},
                    accuracy=m["good_parts"] / m["n"])
    at = run_page(ws)
    assert at.error and at.error[0].value.startswith("**Not usable.**")
    assert "passes every part" in at.error[0].value
    assert not [s.value for s in at.success if "Not usable" in s.value or "Ready" in s.value]


def test_slider_moves_over_validation_scores_with_held_out_figures_beside(ws: Path) -> None:
    run = ws / "runs" / "r1"
    at = run_page(ws)
    slider = at.select_slider[0]
    assert "validation photos" in slider.label
    val, test = load_predictions(run, "val"), load_predictions(run, "test")
    for t in (0.0, 0.99):
        at.select_slider[0].set_value(t).run()
        on_val, on_test = at_threshold(val, t), at_threshold(test, t)
        assert metric(at, "Catch rate · validation").value == fmt_pct(on_val.caught.value)
        assert metric(at, "False alarms · validation").value == fmt_pct(on_val.false_alarms.value)
        assert metric(at, "Catch rate · held out").value == fmt_pct(on_test.caught.value)
        assert metric(at, "False alarms · held out").value == fmt_pct(on_test.false_alarms.value)
    low, high = on_test.false_alarms.interval
    assert metric(at, "False alarms · held out").delta == (f"{on_test.false_alarms.k} of {on_test.false_alarms.n} "
                                                           f"good parts · {fmt_pct(low)}–{fmt_pct(high)}")
    assert any("held out" in md.value for md in at.markdown)


def test_saving_a_threshold_keeps_the_held_out_figures(ws: Path) -> None:
    run = ws / "runs" / "r1"
    before = (run / "metrics.json").read_text()
    at = run_page(ws)
    headline = [(m.label, m.value, m.delta) for m in at.metric[:3]]
    at.select_slider[0].set_value(0.0).run()
    save = [b for b in at.button if b.label.startswith("Use ")]
    assert save, "a changed threshold offers to save it"
    save[0].click().run()
    assert not at.exception
    decision = json.loads((run / "model" / "decision.json").read_text())
    assert decision["threshold"] == 0.0 and decision["chosen_on"] == "validation"
    assert json.loads((run / "model" / "model.json").read_text())["threshold"] == 0.0
    assert any("Saved" in s.value for s in at.success)
    assert (run / "metrics.json").read_text() == before  # never rewritten
    assert [(m.label, m.value, m.delta) for m in at.metric[:3]] == headline  # the original held-out figures stay


def test_the_test_photo_view_is_labelled_optimistic(ws: Path) -> None:
    run = ws / "runs" / "r1"
    at = run_page(ws)
    headline = [(m.label, m.value) for m in at.metric[:3]]
    view = [e for e in at.expander if "tuned on the test photos: optimistic" in e.label]
    assert view
    assert any(w.value.startswith("**Tuned on the test photos: optimistic.**") for w in at.warning)
    slider = [s for s in at.select_slider if s.label == "Threshold to try on the test photos"][0]
    slider.set_value(0.0).run()
    test = load_predictions(run, "test")
    assert metric(at, "Catch rate · tuned on test (optimistic)").value == fmt_pct(at_threshold(test, 0.0).caught.value)
    assert [(m.label, m.value) for m in at.metric[:3]] == headline
    assert not (run / "model" / "decision.json").read_text().count('"chosen_on": "test"')  # looking saves nothing


def test_targets_are_editable_and_saved_with_the_run(ws: Path) -> None:
    run = ws / "runs" / "r1"
    at = run_page(ws)
    assert any(e.label.startswith('Targets for "Ready for a pilot": catch at least 95%') for e in at.expander)
    at.number_input(key="target-catch-r1").set_value(80.0)
    at.number_input(key="target-alarms-r1").set_value(20.0).run()
    at.button(key="save-targets").click().run()
    assert not at.exception
    targets = json.loads((run / "model" / "decision.json").read_text())["targets"]
    assert targets == {"catch_rate": pytest.approx(0.8), "false_alarm_rate": pytest.approx(0.2)}
    assert any(e.label.startswith('Targets for "Ready for a pilot": catch at least 80%') for e in at.expander)


def test_per_class_shows_a_dash_for_a_class_without_test_photos(ws: Path) -> None:
    run = ws / "runs" / "r1"
    keep_rows(run, lambda r: not (r["split"] == "test" and r["label"] == "stain"))
    at = run_page(ws)
    table = at.dataframe[0].value.set_index("Class")
    assert table.loc["stain", "Photos"] == 0 and table.loc["stain", "Found"] == "–"
    preds = load_predictions(run)
    k = int(confusion_at(preds)[1, 1])
    assert table.loc["scratch", "Found"] == f"{fmt_pct(k / 2)} ({k} of 2)"
    assert any("not counted as 0% found" in c.value for c in at.caption)


def test_scored_on_validation_never_claims_unseen_photos(ws: Path) -> None:
    run = ws / "runs" / "r1"
    keep_rows(run, lambda r: r["split"] == "val")
    rewrite_metrics(run, evaluated_on="val")
    at = run_page(ws)
    assert not any("never saw" in c.value for c in at.caption)
    assert "validation photos right" in metric(at, "Accuracy").delta
    assert not [e for e in at.expander if "optimistic" in e.label]  # no test photos to tune on


def test_confusion_cell_pickers_show_that_cells_photos(ws: Path) -> None:
    at = run_page(ws)
    preds = load_predictions(ws / "runs" / "r1")
    cm = confusion_at(preds)
    at.selectbox(key="cell_true").set_value("scratch")
    at.selectbox(key="cell_pred").set_value("scratch").run()
    n = int(cm[preds.classes.index("scratch"), preds.classes.index("scratch")])
    heading = [md.value for md in at.markdown if md.value.startswith("**Really scratch")]
    assert heading and f"{n} photo(s)" in heading[0]
    captions = [c for img in at.get("image") for c in img.captions]
    assert sum("really scratch, said scratch" in c for c in captions) == min(n, 12)
    assert any(c.value.startswith("Heatmaps: red and yellow mark") for c in at.caption)  # the legend in words


def test_advice_is_shown(ws: Path) -> None:
    at = run_page(ws)
    m = json.loads((ws / "runs" / "r1" / "metrics.json").read_text())
    advice = advise(m, [], json.loads((ws / "runs" / "r1" / "check.json").read_text()))
    shown = " ".join(e.value for e in [*at.error, *at.warning, *at.info, *at.success])
    assert advice[0].title.replace("'", "") in shown.replace("\\", "").replace("'", "")


def test_onnx_and_graft_model_are_separate_downloads_with_sizes(ws: Path) -> None:
    at = run_page(ws)
    labels = [b.label for b in at.get("download_button")]
    graft = [label for label in labels if label.startswith("Download the Graft model (")]
    assert graft and graft[0].endswith(("KB)", "MB)"))
    at.button(key="build-onnx").click().run()
    assert not at.exception
    assert any("Parity check passed" in c.value for c in at.caption), [c.value for c in at.caption]
    onnx = [b.label for b in at.get("download_button") if b.label.startswith("Download ONNX for deployment (")]
    assert onnx and onnx[0].endswith(("KB)", "MB)"))


def test_no_finished_run_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_WORKSPACE", str(tmp_path / "empty"))
    at = run_page(tmp_path, current=False)
    assert any("No finished run yet" in i.value for i in at.info)


def test_report_is_built_on_request_and_offered_for_download(ws: Path) -> None:
    at = run_page(ws)
    assert not [b for b in at.get("download_button") if "report" in b.label]  # built only when asked
    at.button(key="build-report").click().run()
    assert not at.exception
    assert [b for b in at.get("download_button") if b.label.startswith("Download the report (")]


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


def test_technical_words_stay_off_the_page(ws: Path) -> None:
    at = run_page(ws)
    text = " ".join([*(c.value for c in at.caption), *(m.value for m in at.markdown),
                     *(m.label for m in at.metric), *(e.label for e in at.expander)])
    for word in ("Macro F1", "feature-extraction", "`", "ROC AUC"):
        assert word not in text.replace("\\", "")


def test_confidence_ranges_are_lines_not_filled_blocks() -> None:
    from core.results import Predictions, sweep
    from ui.charts import tradeoff_figure

    import numpy as np

    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    preds = Predictions(tuple("abcd"), np.array([0, 0, 1, 1]), probs, ["ok", "dent"], "ok", 0.5)
    fig = tradeoff_figure(sweep(preds), 0.5, 0.5)
    assert not [t for t in fig.data if t.fill not in (None, "none")]  # two filled bands blend into grey where they cross
    edges = [t for t in fig.data if t.line.dash == "dot"]
    assert len(edges) == 4  # low and high edge of catch rate and of false alarms


def test_a_diffuse_heatmap_is_told_apart_from_a_focused_one() -> None:
    import numpy as np

    from ui.predict_views import heatmap_is_diffuse

    focused = np.zeros((16, 16))
    focused[6:9, 6:9] = 1.0
    assert not heatmap_is_diffuse(focused)
    assert heatmap_is_diffuse(np.full((16, 16), 0.6))  # flat: it points nowhere
    spread = np.ones((16, 16))
    spread[:3] = 0.0
    assert heatmap_is_diffuse(spread)  # hot over most of the photo


def test_without_validation_photos_the_slider_says_it_is_tuned_on_the_test_photos(ws: Path) -> None:
    run = ws / "runs" / "r1"
    keep_rows(run, lambda r: r["split"] == "test")
    at = run_page(ws)
    assert "test photos" in at.select_slider[0].label
    assert any("tuned on these photos: optimistic" in md.value for md in at.markdown)
    assert not [e for e in at.expander if e.label.startswith("Look at the test photos")]  # the slider already does
    at.select_slider[0].set_value(0.0).run()
    [b for b in at.button if b.label.startswith("Use ")][0].click().run()
    assert json.loads((run / "model" / "decision.json").read_text())["chosen_on"] == "test"


def test_the_uncertain_band_shows_its_cost_and_is_saved_with_the_run(ws: Path) -> None:
    from core.results import band_at

    run = ws / "runs" / "r1"
    at = run_page(ws)
    held = load_predictions(str(run))
    at.slider(key="band-r1").set_value(0.3).run()
    cost = band_at(held, held.threshold, 0.3)
    words = [m.value for m in at.markdown if "go to a person" in m.value]
    assert words and words[0].startswith(f"{cost['sent_to_person']} of {cost['n']} held-out photos "
                                          f"({fmt_pct(cost['share'])}) go to a person")
    at.button(key="save-band").click().run()
    assert not at.exception
    assert json.loads((run / "model" / "decision.json").read_text())["uncertain_band"] == pytest.approx(0.3)
    assert any(e.label.startswith("Uncertain answers go to a person: band 0.300 wide") for e in at.expander)


def test_offline_advice_offers_only_what_this_computer_can_do(ws: Path) -> None:
    from core.advice import WEIGHTS_COMMAND

    at = run_page(ws)  # offline (HF_HUB_OFFLINE=1), and r1 started from scratch
    shown = " ".join(e.value for e in [*at.error, *at.warning, *at.info, *at.success])
    assert "Bring a weights file" in shown and f"`{WEIGHTS_COMMAND}`" in shown  # the command as code to copy
    assert "Build on an earlier model of yours" in shown and "Good parts only" in shown
    assert "starts from ImageNet" not in shown and "pretrained" not in shown


def test_the_verdict_needs_neither_pytorch_nor_scikit_learn(ws: Path) -> None:
    """What Evaluate, Test and Runs draw first (the views, the run names, the runs table, the verdict, the decision)
    loads neither PyTorch nor scikit-learn: those take seconds on a fresh server, after the verdict is on screen."""
    import subprocess
    import sys

    run = str(ws / "runs" / "r1")
    code = ("import sys, ui.evaluate_views as ev, ui.runs_views as rv; from core.verdict import judge_run; "
            "from core.decision import read_decision; from core.workspace import Workspace; "
            f"runs = Workspace({str(ws)!r}).list_runs(); labels = ev._run_labels(runs); frame = rv.runs_frame(runs); "
            f"assert judge_run({run!r}) is not None and read_decision({run!r}) and len(frame) == 1; "
            "assert 'From scratch' in labels[runs[0]['path']]; "
            "print(sorted(m for m in ('torch', 'timm', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "[]"
