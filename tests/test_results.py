"""Results on hand-made numbers: Wilson ranges, threshold sweeps, advice, runs, saving a threshold."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from core import GraftError
from core.advice import advise
from core.batch import batch_rows, batch_summary, folder_in_workspace
from core.metrics import Rate, wilson_interval
from core.package import model_package_zip
from core.results import (Predictions, at_threshold, cell_indices, confusion_at, defect_roc, headline,
                          load_predictions, mistake_indices, sweep, threshold_to_catch_all)
from core.runs_table import compare_runs, run_row
from core.thresholds import save_threshold

CLASSES = ["ok", "scratch", "stain"]
# defect score = 1 - p_ok: 0.1, 0.3, 0.6 (good parts); 0.4, 0.8, 0.95 (defects)
PROBS = np.array([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.4, 0.5, 0.1],
                  [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.05, 0.15, 0.8]])
Y = np.array([0, 0, 0, 1, 1, 2])


def preds(threshold: float = 0.5, good: str | None = "ok") -> Predictions:
    return Predictions(tuple(f"img{i}.png" for i in range(6)), Y, PROBS, CLASSES, good, threshold)


def test_wilson_matches_textbook_values() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0] < wilson_interval(5, 10)[1] - wilson_interval(5, 10)[0]


def test_rate_words() -> None:
    r = Rate(3, 4)
    assert r.value == 0.75 and r.text() == "3 of 4"
    assert Rate(0, 0).value is None


def test_operating_point_counts_by_hand() -> None:
    p = at_threshold(preds(), 0.5)
    # flagged (score >= .5): good #2 (0.6) -> false alarm; defects 0.8, 0.95 caught, 0.4 missed
    assert (p.caught.k, p.caught.n) == (2, 3) and (p.false_alarms.k, p.false_alarms.n) == (1, 3)
    assert p.missed == 1
    # correct: ok, ok, (img2 flagged as scratch: wrong), (img3 ok: wrong), scratch, stain
    assert p.accuracy.k == 4
    low = at_threshold(preds(), 0.35)
    assert low.caught.k == 3 and low.false_alarms.k == 1
    assert at_threshold(preds(), 0.0).caught.k == 3 and at_threshold(preds(), 0.0).false_alarms.k == 3
    assert at_threshold(preds(), 0.99).caught.k == 0


def test_sweep_is_monotone() -> None:
    points = sweep(preds())
    assert len(points) == 101
    caught = [p.caught.k for p in points]
    assert caught == sorted(caught, reverse=True)


def test_without_good_class_no_defect_numbers() -> None:
    p = at_threshold(preds(good=None))
    assert p.caught is None and p.false_alarms is None and p.accuracy.k == 4  # argmax
    assert defect_roc(preds(good=None)) is None


def test_roc_and_confusion() -> None:
    roc = defect_roc(preds())
    assert roc["auc"] == pytest.approx(8 / 9)  # 8 of 9 defect/good pairs ranked right
    cm = confusion_at(preds(), 0.5)
    assert cm.sum() == 6 and cm.tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert cell_indices(preds(), "scratch", "ok", 0.5) == [3]
    assert mistake_indices(preds(), 0.5) == [3, 2]  # the more confident mistake first (p=.6 vs .5)


def write_run(tmp: Path, threshold: float = 0.5) -> Path:
    run = tmp / "run1"
    (run / "model").mkdir(parents=True)
    with open(run / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "split", "label", "predicted", "correct"] + [f"p_{c}" for c in CLASSES])
        for i, (y, p) in enumerate(zip(Y, PROBS)):
            w.writerow([f"img{i}.png", "test", CLASSES[y], "", ""] + [f"{v:.5f}" for v in p])
    (run / "model" / "model.json").write_text(json.dumps({"format": "graft-model", "good_class": "ok",
                                                          "threshold": threshold, "info": {}}))
    metrics = {"n": 6, "accuracy": 4 / 6, "threshold": threshold, "defects": 3, "defects_caught": 2,
               "good_parts": 3, "false_alarms": 1, "macro_f1": 0.6}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_load_predictions_and_headline(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    p = load_predictions(run)
    assert p.classes == CLASSES and p.good_class == "ok" and p.threshold == 0.5 and p.n == 6
    h = headline(p, json.loads((run / "metrics.json").read_text()))
    assert h.caught.text() == "2 of 3" and h.accuracy.k == 4


def test_save_threshold_is_atomic_and_keeps_the_original(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    held_out = (run / "metrics.json").read_text()
    assert save_threshold(run, 0.3) == 0.3
    spec = json.loads((run / "model" / "model.json").read_text())
    decision = json.loads((run / "model" / "decision.json").read_text())  # the one file for the decision
    assert spec["threshold"] == 0.3 and spec["decision"] == "decision.json"
    assert decision["threshold"] == 0.3 and decision["threshold_from_training"] == 0.5
    save_threshold(run, 0.4)
    assert json.loads((run / "model" / "decision.json").read_text())["threshold_from_training"] == 0.5
    assert not list((run / "model").glob("*.tmp")) and not list((run / "model").glob(".*.tmp"))
    assert (run / "metrics.json").read_text() == held_out  # saving never rewrites the held-out figures
    p = load_predictions(run)
    assert p.threshold == 0.4
    # headline now recomputed at 0.4 (not metrics.json's 0.5): all 3 defects caught
    assert headline(p, json.loads((run / "metrics.json").read_text())).caught.k == 3
    with pytest.raises(GraftError):
        save_threshold(run, 1.5)


def test_load_predictions_missing_says_so(tmp_path: Path) -> None:
    with pytest.raises(GraftError, match="no test results"):
        load_predictions(tmp_path)


def test_advice_collapse_imbalance_overfit() -> None:
    metrics = {"n": 10, "classes": CLASSES, "predicted_classes": ["ok"], "catch_rate": 0.0, "false_alarm_rate": 0.0}
    check = {"counts": {"ok": 90, "scratch": 12, "stain": 10}}
    events = [{"event": "epoch", "train_acc": a, "val_acc": v, "val_loss": l}
              for a, v, l in [(0.6, 0.5, 1.0), (0.9, 0.6, 0.9), (0.99, 0.6, 1.4)]]
    advice = advise(metrics, events, check, {"start": "scratch"})
    titles = " | ".join(a.title for a in advice)
    assert advice[0].level == "problem" and "'ok' for every photo" in advice[0].title
    assert "Unbalanced" in titles and "Few photos: 'stain'" in titles and "overfitting" in titles
    assert "Only 10 test photos" in titles and "scratch" in titles
    assert all(a.level != "good" for a in advice)


def test_advice_good_run_and_weak_class() -> None:
    metrics = {"n": 200, "classes": CLASSES, "predicted_classes": CLASSES, "catch_rate": 0.99,
               "false_alarm_rate": 0.01, "best_epoch": 3, "epochs_run": 8,
               "per_class": {c: {"recall": 0.99, "support": 60} for c in CLASSES}}
    check = {"counts": {"ok": 300, "scratch": 300, "stain": 300}}
    assert [a.level for a in advise(metrics, [], check, {"start": "imagenet"})] == ["good"]
    metrics["per_class"]["stain"]["recall"] = 0.5
    metrics["confusion"] = [[60, 0, 0], [0, 60, 0], [0, 30, 30]]
    weak = [a for a in advise(metrics, [], check) if "stain" in a.title]
    assert weak and "'scratch'" in weak[0].detail


def test_run_row_and_compare(tmp_path: Path) -> None:
    run = {"id": "r1", "path": str(tmp_path), "config": {"data": "/w/datasets/parts", "backbone": "resnet18.a1_in1k",
                                                        "start": "run:/w/runs/r0", "strategy": "fine-tune"},
           "status": {"state": "interrupted", "started": 1000.0, "updated": 1120.0},
           "metrics": {"accuracy": 0.9, "macro_f1": 0.8, "splits": {"train": 7, "val": 2, "test": 1}}}
    row = run_row(run)
    assert row["dataset"] == "parts" and row["backbone"] == "resnet18" and row["start"] == "run r0"
    assert row["images"] == 10 and row["status"] == "interrupted" and row["minutes"] == pytest.approx(2.0)
    table = compare_runs([run, {**run, "id": "r2", "metrics": {"accuracy": 0.5}}])
    assert table["Accuracy"] == {"r1": 0.9, "r2": 0.5}


def test_result_modules_never_import_streamlit() -> None:
    import subprocess

    # a fresh interpreter: the test session itself may have imported streamlit already
    code = "import core.results, core.advice, core.runs_table, core.thresholds, core.batch, sys; assert 'streamlit' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent).returncode == 0


def test_catch_all_threshold_is_the_lowest_defect_score() -> None:
    point = threshold_to_catch_all(preds())
    assert point.threshold == pytest.approx(0.4) and point.caught.k == 3 and point.false_alarms.k == 1


def test_saving_a_threshold_drops_stale_exports(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    (run / "model.onnx").write_bytes(b"old")
    (run / "model-bundle.zip").write_bytes(b"old")
    save_threshold(run, 0.42)
    assert not (run / "model.onnx").exists() and not (run / "model-bundle.zip").exists()


def test_model_package_zip(tmp_path: Path) -> None:
    import io
    import zipfile

    run = write_run(tmp_path)
    (run / "model" / "model.safetensors").write_bytes(b"weights")
    names = zipfile.ZipFile(io.BytesIO(model_package_zip(run))).namelist()
    assert sorted(names) == ["model/model.json", "model/model.safetensors"]
    with pytest.raises(GraftError):
        model_package_zip(tmp_path / "nothing")


def test_folder_in_workspace_refuses_escapes(tmp_path: Path) -> None:
    (tmp_path / "ws" / "new").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    assert folder_in_workspace(tmp_path / "ws", "new") == (tmp_path / "ws" / "new").resolve()
    assert folder_in_workspace(tmp_path / "ws", str(tmp_path / "ws" / "new")) == (tmp_path / "ws" / "new").resolve()
    for bad in ("../outside", str(tmp_path / "outside"), "", "missing"):
        with pytest.raises(GraftError):
            folder_in_workspace(tmp_path / "ws", bad)


def test_batch_rows_and_summary() -> None:
    from core.predict import Prediction

    results = [Prediction("/b/x/1.png", "ok", 0.9, {"ok": 0.9, "scratch": 0.1}, 0.1),
               Prediction("/b/x/2.png", "scratch", 0.8, {"ok": 0.2, "scratch": 0.8}, 0.8),
               Prediction("/b/3.png", None, 0.0, {}, error="it is not an image")]
    rows = batch_rows(results, "ok", "/b")
    assert [r["photo"] for r in rows] == ["x/1.png", "x/2.png", "3.png"]
    assert [r["flagged"] for r in rows] == [False, True, None]
    summary = batch_summary(rows)
    assert summary == {"photos": 3, "readable": 2, "unreadable": 1, "per_class": {"ok": 1, "scratch": 1}, "flagged": 1}


def test_recorded_is_what_training_measured_whatever_is_saved_later(tmp_path: Path) -> None:
    from core.results import recorded

    run = write_run(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    save_threshold(run, 0.3)
    point = recorded(json.loads((run / "metrics.json").read_text()) | {"good_class": "ok"})
    assert point.threshold == 0.5 and point.caught.text() == "2 of 3" and point.false_alarms.text() == "1 of 3"
    assert recorded({**metrics, "good_class": None}).caught is None  # no good class: accuracy only
    assert recorded({}) is None


def test_tuning_split_never_picks_test_while_validation_exists() -> None:
    from core.results import tuning_split

    assert tuning_split(["test", "val"]) == "val"
    assert tuning_split(["oof"]) == "oof" and tuning_split(["test", "oof", "val"]) == "oof"
    assert tuning_split(["test"]) == "test" and tuning_split([]) is None


def test_per_class_rates_leave_absent_classes_out() -> None:
    from core.results import per_class_rates

    rates = per_class_rates(preds(), 0.5)
    assert rates["scratch"]["found"].text() == "1 of 2" and rates["stain"]["found"].text() == "1 of 1"
    only_good = Predictions(("a", "b"), np.array([0, 0]), PROBS[:2], CLASSES, "ok", 0.5)
    absent = per_class_rates(only_good)
    assert absent["stain"]["found"] is None and absent["stain"]["right_when_said"] is None


def test_labels_from_class_folders_even_inside_one_more_folder(tmp_path: Path) -> None:
    from core.batch import labels_from_folders

    files = [tmp_path / "ok" / "a.png", tmp_path / "batch" / "scratch" / "b.png", tmp_path / "c.png",
             tmp_path / "other" / "d.png"]
    assert labels_from_folders(files, tmp_path, CLASSES) == ["ok", "scratch", None, None]
    assert labels_from_folders(files, None, CLASSES) == [None] * 4


def test_per_class_found_and_csv_text() -> None:
    from core.batch import per_class_found, rows_csv

    rows = [{"photo": "ok/1.png", "predicted": "ok", "label": "ok", "confidence": 0.123456789, "problem": ""},
            {"photo": "scratch/2.png", "predicted": "ok", "label": "scratch", "confidence": 0.6, "problem": ""},
            {"photo": "x.png", "predicted": None, "label": "ok", "confidence": None, "problem": "unreadable"}]
    found = per_class_found(rows, CLASSES)
    assert found["ok"]["k"] == 1 and found["ok"]["n"] == 1 and found["scratch"]["value"] == 0.0
    assert found["stain"] is None  # no photos of it: shown "–", never "0% found"
    text = rows_csv(rows)
    assert text.splitlines()[0] == "photo,predicted,label,confidence,problem"
    assert "0.123456789" in text  # full precision


def test_the_runs_and_evaluate_pages_size_and_zip_a_model_without_loading_pytorch() -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys, core.modeldir, ui.evaluate_views; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", out.stderr
