"""The runs table on hand-made run entries: names people can tell apart, plain states, plain comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import GraftError
from core.runs_table import (MAX_NAME, compare_runs, default_run_name, run_names, run_row, set_run_name,
                             status_words, stored_run_name)


def entry(path: Path, run_id: str, started: float | None = 1000.0, **config) -> dict:
    path.mkdir(parents=True, exist_ok=True)
    cfg = {"data": "/w/datasets/bottle", "backbone": "resnet18.a1_in1k", "strategy": "feature-extraction",
           "start": "imagenet", **config}
    (path / "config.json").write_text(json.dumps(cfg))
    status = {"state": "done", "created": 900.0, "updated": 1100.0}
    if started is not None:
        status["started"] = started
    return {"id": run_id, "path": str(path), "config": cfg, "status": status, "metrics": {}}


def test_default_name_uses_the_model_pages_words() -> None:
    assert default_run_name({"strategy": "feature-extraction", "backbone": "resnet18.a1_in1k",
                             "data": "/w/datasets/bottle"}) == "Feature extraction · ResNet-18 · bottle"
    # a run from random weights says so, never "Fine-tune" nor an ImageNet tag
    assert default_run_name({"strategy": "fine-tune", "start": "scratch", "backbone": "test_resnet",
                             "data": "parts"}) == "From scratch · test_resnet · parts"
    assert default_run_name({}) == "Run"


def test_set_run_name_stores_it_beside_the_config(tmp_path: Path) -> None:
    run = entry(tmp_path / "r1", "r1")
    before = (tmp_path / "r1" / "config.json").read_text()
    assert set_run_name(run["path"], "  Line 3 \n first try ") == "Line 3 first try"
    assert stored_run_name(run["path"]) == "Line 3 first try"
    assert (tmp_path / "r1" / "config.json").read_text() == before  # the training process's file stays
    assert run_row(run)["name"] == "Line 3 first try"
    assert set_run_name(run["path"], "") == "Feature extraction · ResNet-18 · bottle"  # back to the default
    assert stored_run_name(run["path"]) == ""


def test_set_run_name_refuses_plainly(tmp_path: Path) -> None:
    run = entry(tmp_path / "r1", "r1")
    with pytest.raises(GraftError, match=f"at most {MAX_NAME}"):
        set_run_name(run["path"], "x" * (MAX_NAME + 1))
    with pytest.raises(GraftError, match="no run"):
        set_run_name(tmp_path / "missing", "a name")


def test_run_names_are_unique(tmp_path: Path) -> None:
    runs = [entry(tmp_path / "r3", "r3", started=3000.0), entry(tmp_path / "r2", "r2", started=2000.0),
            entry(tmp_path / "r1", "r1", started=None), entry(tmp_path / "r0", "r0", strategy="fine-tune")]
    names = run_names(runs)
    assert len(set(names.values())) == 4
    assert names["r0"] == "Fine-tune · ResNet-18 · bottle"  # a unique name stays plain
    assert all(names[k].startswith("Feature extraction · ResNet-18 · bottle") for k in ("r1", "r2", "r3"))


def test_a_run_stopped_before_it_started_reads_cancelled(tmp_path: Path) -> None:
    assert status_words({"state": "stopped", "created": 1.0}) == "Cancelled"
    assert status_words({"state": "stopped", "started": 2.0}) == "Stopped"
    assert status_words({"state": "done"}) == "Finished" and status_words({}) == "Unknown"
    run = entry(tmp_path / "r1", "r1", started=None)
    run["status"]["state"] = "stopped"
    row = run_row(run)
    assert row["status_words"] == "Cancelled" and row["minutes"] is None and row["started"]


def test_compare_uses_plain_words_and_the_saved_targets(tmp_path: Path) -> None:
    run = entry(tmp_path / "r1", "r1")
    run["metrics"] = {"accuracy": 0.9, "macro_f1": 0.8, "catch_rate": 0.5}
    table = compare_runs([run])
    assert table["Strategy"] == {"r1": "Feature extraction"} and table["Backbone"] == {"r1": "ResNet-18"}
    labels = list(table)
    assert labels.index("Catch rate") < labels.index("Accuracy")
    assert not [label for label in labels if label in ("F1 (macro)", "ROC AUC", "Macro F1")]
    assert "Found-and-right balance (F1)" in labels  # plain words first, the technical name in brackets
