"""The decision file, predict's verdict column, batch scores against class folders, and evaluate's warning
about photos the model trained on."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from core.cli import main
from core.decision import Targets, read_decision, save_decision
from core.errors import GraftError
from core.predict import Predictor
from core.results import held_out, load_predictions
from core.verdict import judge_run

ARGS = ["--backbone", "test_resnet", "--start", "scratch", "--image-size", "32", "--batch-size", "8", "--seed", "0",
        "--good-class", "ok", "--folds", "1"]


@pytest.fixture(scope="module")
def run(easy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("decision") / "run"
    assert main(["train", str(easy_data), "--out", str(out), *ARGS, "--strategy", "scratch", "--epochs", "6"]) == 0
    return out


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest


def test_saving_a_threshold_never_changes_the_held_out_figures(copy: Path) -> None:
    metrics_before = (copy / "metrics.json").read_text()
    preds = load_predictions(copy)
    before = held_out(preds)
    for threshold in (0.05, 0.95):
        save_decision(copy, threshold=threshold, chosen_on="test")
        assert (copy / "metrics.json").read_text() == metrics_before
        after = held_out(load_predictions(copy))  # recomputed from predictions.csv: still training's decisions
        assert (after.caught, after.false_alarms, after.accuracy) == (before.caught, before.false_alarms,
                                                                       before.accuracy)
    decision = read_decision(copy)
    assert decision.threshold == 0.95 and decision.chosen_on == "test"
    assert decision.threshold_from_training == json.loads(metrics_before)["threshold"]
    assert Predictor.load(copy).spec.threshold == 0.95  # the package decides with it from now on


def test_band_and_targets_are_saved_with_the_run(copy: Path) -> None:
    first = judge_run(copy)
    assert first is not None and first.to_dict() == json.loads((copy / "metrics.json").read_text())["verdict"]
    save_decision(copy, uncertain_band=0.3, targets={"catch_rate": 0.0, "false_alarm_rate": 1.0})
    decision = read_decision(copy)
    assert decision.uncertain_band == 0.3 and decision.targets == Targets(0.0, 1.0)
    assert Predictor.load(copy).spec.uncertain_band == 0.3
    with pytest.raises(GraftError):
        save_decision(copy, uncertain_band=1.5)


def test_a_package_without_its_decision_file_is_refused(copy: Path) -> None:
    (copy / "model" / "decision.json").unlink()
    with pytest.raises(GraftError, match="decision.json"):
        Predictor.load(copy)


def test_predict_csv_has_a_verdict_and_scores_class_folders(run: Path, easy_data: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run), str(easy_data), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60
    assert {r["verdict"] for r in rows} <= {"good", "defect", "uncertain"}
    assert {"label", "correct", "p_ok", "defect_score"} <= set(rows[0])
    assert {r["label"] for r in rows} == {"ok", "scratch", "stain"}
    for r in rows:  # full precision: the verdict follows from the written score
        if r["verdict"] != "uncertain":
            assert (float(r["defect_score"]) >= Predictor.load(run).spec.threshold) == (r["verdict"] == "defect")
    assert "Against the class folders (60 labelled photos)" in printed and "95% range" in printed
    assert "defects caught" in printed and "false alarms" in printed


def test_batch_score_counts_and_ranges() -> None:
    from core.batch import batch_score

    rows = [{"predicted": "ok", "label": "ok", "verdict": "good"},
            {"predicted": "scratch", "label": "ok", "verdict": "uncertain"},
            {"predicted": "scratch", "label": "scratch", "verdict": "defect"},
            {"predicted": "ok", "label": "stain", "verdict": "good"},
            {"predicted": "ok", "label": None, "verdict": "good"},
            {"predicted": None, "label": "ok", "problem": "broken"}]
    scored = batch_score(rows, ["ok", "scratch", "stain"], "ok")
    assert scored["n"] == 4
    assert (scored["accuracy"]["k"], scored["accuracy"]["n"]) == (2, 4)
    assert (scored["catch_rate"]["k"], scored["catch_rate"]["n"]) == (1, 2)
    assert (scored["false_alarm_rate"]["k"], scored["false_alarm_rate"]["n"]) == (1, 2)
    assert scored["sent_to_person"]["k"] == 1
    low, high = scored["catch_rate"]["range"]
    assert 0 < low < 0.5 < high < 1


def test_evaluate_warns_about_training_photos_and_reports_them_apart(run: Path, easy_data: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(run), str(easy_data)]) == 0
    captured = capsys.readouterr()
    splits = json.loads((run / "metrics.json").read_text())["splits"]
    seen = splits["train"] + splits["val"]  # the test photos are the only fresh ones
    assert f"Warning: {seen} of 60 photos were training photos" in captured.err
    assert f"on {splits['test']} photos the model did not train on" in captured.out
    assert f"on {seen} of its training photos (optimistic)" in captured.out
    assert main(["evaluate", str(run), str(easy_data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == splits["test"] and report["overlap"]["training_photos"] == seen
    assert report["overlap"]["metrics_training_photos"]["n"] == seen and report["verdict"]["level"]
