"""The runs table and side-by-side comparison of runs, from :func:`core.runs.list_runs` entries."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from .jsonio import read_json

__all__ = ["run_row", "compare_runs", "epoch_curves", "COMPARE_METRICS"]


def _start_words(start: str) -> str:
    kind, _, path = start.partition(":")
    return {"imagenet": "ImageNet", "scratch": "scratch", "file": f"file {Path(path).name}",
            "run": f"run {Path(path).name}"}.get(kind, start or "")


def run_row(run: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """One line of the runs table from a :func:`core.runs.list_runs` entry.

    Returns:
        Plain values: run, dataset, backbone, start, strategy, images, accuracy, f1, catch_rate,
        verdict (``not_usable``/``promising``/``ready`` or None), folds (None for one split),
        started (local time text), minutes, status, message, path.
    """
    config, status, metrics = run.get("config") or {}, run.get("status") or {}, run.get("metrics") or {}
    splits = metrics.get("splits") or {}
    check = read_json(Path(run["path"]) / "check.json", {}) or {}
    images = sum(int(v) for v in splits.values()) if splits else check.get("total")
    started = status.get("started") or status.get("created")
    ended = status.get("ended") or (status.get("updated") if status.get("state") not in ("queued", "running") else None)
    duration = None
    if started:
        duration = max(0.0, float(ended or now or time.time()) - float(started)) / 60.0
    return {"run": run.get("id", Path(run["path"]).name), "dataset": Path(str(config.get("data", ""))).name,
            "backbone": str(config.get("backbone", "")).split(".")[0], "start": _start_words(str(config.get("start", ""))),
            "strategy": config.get("strategy", ""), "images": images, "accuracy": metrics.get("accuracy"),
            "f1": metrics.get("macro_f1"), "catch_rate": metrics.get("catch_rate"),
            "verdict": (metrics.get("verdict") or {}).get("level"),
            "folds": (metrics.get("crossval") or {}).get("folds"),
            "started": time.strftime("%d %b %H:%M", time.localtime(float(started))) if started else "",
            "minutes": duration, "status": status.get("state", "unknown"), "message": status.get("message", ""),
            "path": run["path"]}


COMPARE_METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "Accuracy"), ("macro_f1", "F1 (macro)"), ("catch_rate", "Catch rate"),
    ("false_alarm_rate", "False alarm rate"), ("roc_auc", "ROC AUC"), ("n", "Photos scored"),
    ("best_epoch", "Best epoch"), ("epochs_run", "Epochs run"),
)


def compare_runs(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Metrics side by side: ``{metric label: {run id: value}}`` for the chosen runs (the verdict first)."""
    from .verdict import LEVEL_TITLES

    out: dict[str, dict[str, Any]] = {"Verdict": {r["id"]: LEVEL_TITLES.get(run_row(r)["verdict"]) for r in runs}}
    for key, label in (("backbone", "Backbone"), ("strategy", "Strategy"), ("start", "Start")):
        out[label] = {r["id"]: run_row(r)[key] for r in runs}
    for key, label in COMPARE_METRICS:
        out[label] = {r["id"]: (r.get("metrics") or {}).get(key) for r in runs}
    return out


def epoch_curves(events: Sequence[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Per-epoch series (epoch, train/val loss and accuracy, val F1) from a run's events."""
    keys = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "val_f1")
    epochs = [e for e in events if e.get("event") == "epoch"]
    return {k: [e.get(k) for e in epochs] for k in keys}

