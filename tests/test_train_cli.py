"""Every strategy trains end to end through the CLI, writes a complete run folder, and learns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.cli import main
from core.jsonio import read_jsonl

STRATEGY_EPOCHS = {"feature-extraction": 40, "fine-tune": 10, "progressive": 10, "scratch": 20}
TINY_ARGS = ["--backbone", "test_resnet", "--image-size", "48", "--batch-size", "8", "--seed", "0", "--folds", "1"]


def _train(data: Path, out: Path, args: list[str], *extra: str) -> int:
    return main(["train", str(data), "--out", str(out), *args, *extra])


@pytest.fixture(scope="module")
def pretrained_run(easy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished model to transfer from: nothing can be downloaded here, so we grow our own trunk."""
    out = tmp_path_factory.mktemp("pretrained") / "run"
    assert _train(easy_data, out, TINY_ARGS, "--start", "scratch", "--strategy", "scratch", "--epochs", "20") == 0
    return out


@pytest.mark.parametrize("strategy", sorted(STRATEGY_EPOCHS))
def test_strategy_trains_and_beats_chance(strategy: str, easy_data: Path, tmp_path: Path, pretrained_run: Path) -> None:
    out = tmp_path / "run"
    start = "scratch" if strategy == "scratch" else f"run:{pretrained_run}"
    code = _train(easy_data, out, TINY_ARGS, "--start", start, "--strategy", strategy,
                  "--epochs", str(STRATEGY_EPOCHS[strategy]))
    assert code == 0
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done", status
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.6, metrics  # chance is 1/3
    assert metrics["n"] > 0 and metrics["evaluated_on"] == "test"


def test_multitask_with_good_class_reports_per_task(easy_data: Path, tmp_path: Path, pretrained_run: Path) -> None:
    out = tmp_path / "run"
    assert _train(easy_data, out, TINY_ARGS, "--start", f"run:{pretrained_run}", "--strategy", "multi-task",
                  "--good-class", "ok", "--epochs", "10") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"defect", "defect_type"}
    assert metrics["accuracy"] >= 0.6
    assert metrics["catch_rate"] is not None and metrics["false_alarm_rate"] is not None
    spec = json.loads((out / "model" / "model.json").read_text())
    assert [t["name"] for t in spec["tasks"]] == ["defect", "defect_type"]
    assert spec["classes"] == ["ok", "scratch", "stain"]


def test_run_folder_contents(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    out = tmp_path / "run"
    assert _train(easy_data, out, tiny_args, "--strategy", "fine-tune", "--epochs", "2", "--good-class", "ok") == 0
    for name in ("config.json", "events.jsonl", "status.json", "metrics.json", "predictions.csv",
                 "model/model.safetensors", "model/model.json"):
        assert (out / name).is_file(), name
    events = read_jsonl(out / "events.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] != "epoch" and "run_start" in kinds and kinds[-1] == "run_end"
    epochs = [e for e in events if e["event"] == "epoch"]
    assert len(epochs) == 2
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr", "images_per_s", "elapsed_s", "eta_s",
                "val_recall"):
        assert key in epochs[0], key
    assert set(epochs[0]["val_recall"]) <= {"ok", "scratch", "stain"}
    start = next(e for e in events if e["event"] == "run_start")
    assert start["device"] == "cpu" and start["precision"] in ("bf16", "fp32")
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "per_class", "confusion", "catch_rate", "false_alarm_rate", "roc_auc", "threshold"):
        assert key in metrics, key
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    held = [r for r in rows if r["split"] == metrics["evaluated_on"]]  # validation photos are in the file too
    assert len(held) == metrics["n"] and {"image", "label", "predicted", "p_ok", "threshold"} <= set(rows[0])
    assert {r["split"] for r in rows} == {"val", "test"}


def test_same_seed_same_result(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    results = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        assert _train(easy_data, out, tiny_args, "--strategy", "scratch", "--epochs", "2") == 0
        results.append(json.loads((out / "metrics.json").read_text())["confusion"])
    assert results[0] == results[1]
