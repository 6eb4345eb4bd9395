"""Cross-validation end to end through the CLI: every photo gets an out-of-fold score, the thresholds are
cross-fitted, a final model ships, folds are recorded and a resume keeps finished folds."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.crossval import cross_fit_thresholds, default_folds
from core.errors import GraftError
from core.jsonio import read_jsonl
from core.metrics import choose_threshold
from core.results import held_out, load_predictions
from core.runs import read_status, request_stop
from tests.conftest import ROOT, make_dataset

ARGS = ["--backbone", "test_resnet", "--start", "scratch", "--image-size", "32", "--batch-size", "8", "--seed", "0",
        "--good-class", "ok"]


@pytest.fixture(scope="module")
def cv_run(easy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cv") / "run"
    assert main(["train", str(easy_data), "--out", str(out), *ARGS, "--epochs", "3", "--folds", "3"]) == 0
    return out


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "predictions.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_every_photo_gets_an_out_of_fold_score_and_a_final_model_ships(cv_run: Path, easy_data: Path) -> None:
    rows = _rows(cv_run)
    photos = sorted(p.relative_to(easy_data).as_posix() for p in easy_data.rglob("*.png"))
    assert sorted(r["image"] for r in rows) == photos  # every photo once
    assert {r["split"] for r in rows} == {"oof"} and {r["fold"] for r in rows} == {"1", "2", "3"}
    config = json.loads((cv_run / "config.json").read_text())
    assert config["folds"] == 3 and config["resize"] == "squash"
    metrics = json.loads((cv_run / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "oof" and metrics["n"] == len(photos)
    cv = metrics["crossval"]
    assert cv["folds"] == 3 and cv["completed"] and len(cv["fold_thresholds"]) == 3 and cv["final_epochs"] >= 1
    assert metrics["verdict"]["level"] in ("not_usable", "promising", "ready")
    status = read_status(cv_run)
    assert status["state"] == "done"
    assert status["message"].startswith({"not_usable": "Not usable", "promising": "Promising",
                                         "ready": "Ready for a pilot"}[metrics["verdict"]["level"]])
    for name in ("model.safetensors", "model.json", "decision.json", "training_photos.json"):
        assert (cv_run / "model" / name).is_file(), name
    hashes = json.loads((cv_run / "model" / "training_photos.json").read_text())["sha256"]
    assert len(hashes) == len(photos)  # the final model trained on every photo
    spec = json.loads((cv_run / "model" / "model.json").read_text())
    assert "/" not in spec["info"]["dataset"] and str(easy_data) not in json.dumps(spec)  # no machine paths


def test_held_out_figures_come_from_cross_fitted_thresholds(cv_run: Path) -> None:
    preds = load_predictions(cv_run)
    assert preds.split == "oof" and preds.folds is not None
    metrics = json.loads((cv_run / "metrics.json").read_text())
    per_photo, per_fold, final = cross_fit_thresholds(preds.y, preds.probs, preds.folds, preds.classes, "ok")
    assert np.allclose(preds.decided_at, per_photo)
    for fold, threshold in per_fold.items():  # each fold decided with a threshold chosen without its photos
        others = preds.folds != fold
        assert threshold == choose_threshold(preds.y[others], preds.probs[others], preds.classes, "ok")
    point = held_out(preds)  # recomputed from predictions.csv alone: metrics.json's figures
    assert (point.caught.k, point.false_alarms.k) == (metrics["defects_caught"], metrics["false_alarms"])
    assert point.accuracy.k == round(metrics["accuracy"] * metrics["n"])
    decision = json.loads((cv_run / "model" / "decision.json").read_text())
    assert decision["chosen_on"] == "out-of-fold" and decision["threshold"] == metrics["threshold"]


def test_fold_events_carry_an_eta_for_the_whole_run(cv_run: Path) -> None:
    events = read_jsonl(cv_run / "events.jsonl")
    folds = [e for e in events if e["event"] == "fold"]
    assert [(e.get("fold"), e["state"]) for e in folds if e["stage"] == "fold"] == [
        (1, "start"), (1, "done"), (2, "start"), (2, "done"), (3, "start"), (3, "done")]
    assert folds[-1]["stage"] == "final" and folds[-1]["state"] == "start"
    during_first = [e for e in events if e["event"] == "epoch" and e.get("fold") == 1]
    assert during_first and all(e["folds"] == 3 and e["stage"] == "fold" for e in during_first)
    # the ETA in fold 1 counts the two folds and the final fit still to come, not only this fit
    assert all(e["eta_s"] > e["fit_eta_s"] for e in during_first)
    final = [e for e in events if e["event"] == "epoch" and e.get("stage") == "final"]
    assert len(final) == json.loads((cv_run / "metrics.json").read_text())["crossval"]["final_epochs"]


def test_resume_keeps_finished_folds(cv_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    import shutil

    shutil.copytree(cv_run, run)
    (run / "crossval" / "fold-3.json").unlink()  # as if it died during fold 3
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "out": str(run)}))
    assert main(["train", "--config", str(run / "config.json"), "--resume"]) == 0
    events = read_jsonl(run / "events.jsonl")
    resumed = [e for e in events if e["event"] == "fold"][-5:]
    assert [(e.get("fold"), e["state"]) for e in resumed] == [(1, "reused"), (2, "reused"), (3, "start"),
                                                               (3, "done"), (None, "start")]
    assert json.loads((run / "metrics.json").read_text())["n"] == 60


def test_stop_during_a_fold_keeps_its_best_model(easy_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "core", "train", str(easy_data), "--out", str(out), *ARGS, "--folds", "3",
           "--epochs", "300", "--patience", "300"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and '"epoch"' not in _text(out / "events.jsonl"):
        time.sleep(0.1)
    request_stop(out)
    assert proc.wait(timeout=120) == 0
    status = read_status(out)
    assert status["state"] == "stopped" and "best model so far was kept" in status["message"]
    assert "fold 1 of 3" in status["message"] and (out / "model" / "model.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["crossval"] == {"folds": 3, "completed": False, "stopped_in_fold": 1}
    assert metrics["evaluated_on"] == "test" and {r["split"] for r in _rows(out)} == {"val", "test"}


def test_default_folds_follow_the_dataset_size_and_are_recorded(tmp_path: Path) -> None:
    assert default_folds(300) == 5 and default_folds(301) == 1 and default_folds(40) == 5
    data = make_dataset(tmp_path / "small", {"ok": 8, "scratch": 8}, size=32)
    out = tmp_path / "run"
    assert main(["train", str(data), "--out", str(out), *ARGS, "--epochs", "1"]) == 0
    assert json.loads((out / "config.json").read_text())["folds"] == 5
    assert json.loads((out / "metrics.json").read_text())["crossval"]["folds"] == 5


def test_folds_on_a_csv_with_fixed_splits_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_dataset(tmp_path / "d", {"ok": 6, "scratch": 6}, size=24)
    rows = ["image,label,split"] + [f"{f.relative_to(data).as_posix()},{f.parent.name},{'test' if i % 3 == 0 else 'train'}"
                                    for i, f in enumerate(sorted(data.rglob("*.png")))]
    (data / "labels.csv").write_text("\n".join(rows))
    code = main(["train", str(data / "labels.csv"), "--out", str(tmp_path / "run"), *ARGS, "--folds", "3"])
    assert code == 2 and "can't be cross-validated" in capsys.readouterr().err
    with pytest.raises(GraftError):
        from core.config import RunConfig

        RunConfig(data="x", out="y", folds=0)


def test_relative_cost_for_the_time_estimate() -> None:
    from core.crossval import relative_cost

    assert relative_cost(1, "fine-tune") == 1.0
    assert relative_cost(5, "feature-extraction") <= 1.5  # the features are computed once for every fold
    assert 5 < relative_cost(5, "fine-tune") < 7  # five fits on 68% of the photos and one on all, against 70%
