"""The runs table and side-by-side comparison of runs, from :func:`core.runs.list_runs` entries.

Runs have names people can tell apart: by default "strategy · backbone · dataset" in plain words
(:func:`default_run_name`); a user may rename a run (:func:`set_run_name`), which is stored in the run
folder's ``name.json`` (``config.json`` stays as the training process read it). :func:`run_names`
makes the names of a list of runs unique, so they can label table rows and chart legends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from .errors import GraftError
from .jsonio import read_json, write_json_atomic

__all__ = ["run_row", "compare_runs", "epoch_curves", "COMPARE_METRICS", "NAME_FILE", "MAX_NAME", "STRATEGY_WORDS",
           "strategy_words", "backbone_words", "default_run_name", "stored_run_name", "set_run_name", "run_names",
           "status_words", "group_by_sweep", "RATE_METRICS", "run_strategy_words"]

NAME_FILE = "name.json"  # {"name": "..."}: the user's name for a run
MAX_NAME = 80
# the Model page's card names, so a run reads as the choice the user made
STRATEGY_WORDS = {"feature-extraction": "Feature extraction", "fine-tune": "Fine-tune",
                  "progressive": "Progressive unfreezing", "multi-task": "Multi-task", "scratch": "From scratch"}
STATUS_WORDS = {"queued": "Waiting in line", "running": "Training", "done": "Finished", "failed": "Failed",
                "stopped": "Stopped", "interrupted": "Interrupted", "cancelled": "Cancelled", "unknown": "Unknown"}


def strategy_words(strategy: object) -> str:
    """``"feature-extraction"`` -> ``"Feature extraction"`` (unknown values as they are)."""
    value = str(getattr(strategy, "value", strategy) or "")
    return STRATEGY_WORDS.get(value, value)


def backbone_words(name: str) -> str:
    """The friendly name of a curated backbone (``resnet18`` or ``resnet18.a1_in1k`` -> ``ResNet-18``),
    else the timm name without its pretrained tag."""
    from .catalogue import CURATED  # torch-free: the pages name runs before PyTorch is loaded

    base = str(name or "").split(".")[0]
    return next((b.label for b in CURATED if b.name.split(".")[0] == base), base)


def run_strategy_words(config: dict[str, Any]) -> str:
    """The strategy of a run's config in card words; a run that starts from random weights reads
    "From scratch", whatever its recipe (a fine-tune of random weights is training from scratch)."""
    if config.get("start") == "scratch":
        return STRATEGY_WORDS["scratch"]
    return strategy_words(config.get("strategy"))


def default_run_name(config: dict[str, Any]) -> str:
    """``"Feature extraction · ResNet-18 · bottle"``: what a run was, in the words of the Model page."""
    parts = [run_strategy_words(config), backbone_words(str(config.get("backbone", ""))),
             Path(str(config.get("data", ""))).name]
    return " · ".join(p for p in parts if p) or "Run"


def stored_run_name(run_dir: str | Path) -> str:
    """The name a user gave the run, or an empty string."""
    data = read_json(Path(run_dir) / NAME_FILE, {})
    return str(data.get("name") or "").strip() if isinstance(data, dict) else ""


def set_run_name(run_dir: str | Path, name: str) -> str:
    """Give a run a name (an empty name goes back to the default); returns the name shown from now on.

    Raises:
        GraftError: no such run, or a name longer than :data:`MAX_NAME` characters.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise GraftError(f"There is no run '{run_dir.name}' to rename.")
    text = " ".join(str(name or "").split())  # one line, single spaces
    if len(text) > MAX_NAME:
        raise GraftError(f"A run name can have at most {MAX_NAME} characters (this one has {len(text)}).")
    if not text:
        (run_dir / NAME_FILE).unlink(missing_ok=True)
        return default_run_name(read_json(run_dir / "config.json", {}) or {})
    write_json_atomic(run_dir / NAME_FILE, {"name": text, "saved": time.strftime("%Y-%m-%d %H:%M:%S")})
    return text


def _short_time(run: dict[str, Any]) -> str:
    status = run.get("status") or {}
    when = status.get("started") or status.get("created")
    return time.strftime("%d %b %H:%M", time.localtime(float(when))) if when else ""


def run_names(runs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """``{run id: name}``, unique within ``runs``: the stored or default name; where two runs share one,
    the start time is added, then a number."""
    names = {r["id"]: stored_run_name(r["path"]) or default_run_name(r.get("config") or {}) for r in runs}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    for r in runs:
        if counts[names[r["id"]]] > 1 and _short_time(r):
            names[r["id"]] = f"{names[r['id']]} · {_short_time(r)}"
    seen: dict[str, int] = {}
    for r in reversed(runs):  # the oldest keeps the plain name
        name = names[r["id"]]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[r["id"]] = f"{name} #{seen[name]}"
    return names


def status_words(status: dict[str, Any]) -> str:
    """The run's state in plain words; a run stopped before it ever started reads "Cancelled"."""
    state = str(status.get("state") or "unknown")
    if state == "stopped" and not status.get("started"):
        return STATUS_WORDS["cancelled"]
    return STATUS_WORDS.get(state, STATUS_WORDS["unknown"])


def _start_words(start: str) -> str:
    kind, _, path = start.partition(":")
    return {"imagenet": "ImageNet", "scratch": "none (random weights)", "file": f"file {Path(path).name}",
            "run": f"run {Path(path).name}"}.get(kind, start or "")


def run_row(run: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """One line of the runs table from a :func:`core.runs.list_runs` entry.

    Returns:
        Plain values: run (the folder's name), name (the user's or the default name), dataset, backbone,
        start, strategy, images, accuracy, f1, catch_rate, false_alarm_rate, verdict
        (``not_usable``/``promising``/``ready`` or None), folds (None for one split), started (local
        time text), minutes (None when it never started), status, status_words (``Cancelled`` for a
        run stopped before it started), message, sweep (the sweep id of a sweep's trial), path.
    """
    config, status, metrics = run.get("config") or {}, run.get("status") or {}, run.get("metrics") or {}
    splits = metrics.get("splits") or {}
    check = read_json(Path(run["path"]) / "check.json", {}) or {}
    images = sum(int(v) for v in splits.values()) if splits else check.get("total")
    started = status.get("started") or status.get("created")
    ended = status.get("ended") or (status.get("updated") if status.get("state") not in ("queued", "running") else None)
    duration = None
    if status.get("started") or (started and status.get("state") != "stopped"):
        duration = max(0.0, float(ended or now or time.time()) - float(started)) / 60.0
    run_id = run.get("id", Path(run["path"]).name)
    return {"run": run_id, "name": stored_run_name(run["path"]) or default_run_name(config),
            "dataset": Path(str(config.get("data", ""))).name,
            "backbone": str(config.get("backbone", "")).split(".")[0], "start": _start_words(str(config.get("start", ""))),
            "strategy": config.get("strategy", ""), "images": images, "accuracy": metrics.get("accuracy"),
            "f1": metrics.get("macro_f1"), "catch_rate": metrics.get("catch_rate"),
            "false_alarm_rate": metrics.get("false_alarm_rate"),
            "verdict": (metrics.get("verdict") or {}).get("level"),
            "folds": (metrics.get("crossval") or {}).get("folds"),
            "started": time.strftime("%d %b %H:%M", time.localtime(float(started))) if started else "",
            "minutes": duration, "status": status.get("state", "unknown"), "status_words": status_words(status),
            "message": status.get("message", ""), "sweep": (config.get("extra") or {}).get("sweep"),
            "path": run["path"]}


# (metrics.json key, label in plain words); the technical name in brackets where people may know it
COMPARE_METRICS: tuple[tuple[str, str], ...] = (
    ("catch_rate", "Catch rate"), ("false_alarm_rate", "False alarms"), ("accuracy", "Accuracy"),
    ("macro_f1", "Found-and-right balance (F1)"), ("roc_auc", "Ranks defects first (ROC AUC)"), ("n", "Photos scored"),
    ("best_epoch", "Best epoch"), ("epochs_run", "Epochs run"),
)
RATE_METRICS = ("catch_rate", "false_alarm_rate", "accuracy")  # shown as percentages


def compare_runs(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Metrics side by side: ``{metric label: {run id: value}}`` for the chosen runs (the verdict first)."""
    from .verdict import LEVEL_TITLES

    from .verdict import judge_run

    def level(run: dict[str, Any]) -> str | None:
        found = judge_run(run["path"]) if run.get("metrics") else None  # with the targets saved with it
        return found.level if found else run_row(run)["verdict"]

    out: dict[str, dict[str, Any]] = {"Verdict": {r["id"]: LEVEL_TITLES.get(level(r)) for r in runs}}
    rows = {r["id"]: run_row(r) for r in runs}
    out["Backbone"] = {k: backbone_words(v["backbone"]) for k, v in rows.items()}
    out["Strategy"] = {r["id"]: run_strategy_words(r.get("config") or {}) for r in runs}
    out["Start"] = {k: v["start"] for k, v in rows.items()}
    for key, label in COMPARE_METRICS:
        out[label] = {r["id"]: (r.get("metrics") or {}).get(key) for r in runs}
    return out


def epoch_curves(events: Sequence[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Per-epoch series (epoch, train/val loss and accuracy, val F1) from a run's events."""
    keys = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "val_f1")
    epochs = [e for e in events if e.get("event") == "epoch"]
    return {k: [e.get(k) for e in epochs] for k in keys}



def group_by_sweep(runs: Sequence[dict[str, Any]], sweeps: Sequence[dict[str, Any]],
                   trials: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Runs grouped by the sweep they were trials of, newest sweep first, then the other runs.

    Args:
        runs: :func:`core.runs.list_runs` entries.
        sweeps: :func:`core.sweeps.list_sweeps` entries.
        trials: ``{sweep id: core.sweeps.sweep_trials(path)}``; read from disk when not given.

    Returns:
        ``[{"sweep": sweep entry or None, "runs": [...], "best": run id or None}]``; a sweep without
        runs left is dropped, and the last group (``sweep`` None) holds runs of no sweep.
    """
    from .sweeps import sweep_trials

    by_path = {str(Path(r["path"]).resolve()): r for r in runs}
    placed: set[str] = set()
    groups = []
    for sweep in sweeps:
        found = trials.get(sweep["id"]) if trials is not None else sweep_trials(sweep["path"])
        members, best = [], None
        for t in found or []:
            run = by_path.get(str(Path(str(t.get("run", ""))).resolve()))
            if run is None or run["id"] in placed:
                continue
            members.append(run)
            placed.add(run["id"])
            best = run["id"] if t.get("best") else best
        tagged = [r for r in runs if r["id"] not in placed and (r.get("config") or {}).get("extra", {}).get("sweep")
                  == sweep["id"]]
        members += tagged
        placed.update(r["id"] for r in tagged)
        if members:
            groups.append({"sweep": sweep, "runs": members, "best": best})
    rest = [r for r in runs if r["id"] not in placed]
    if rest or not groups:
        groups.append({"sweep": None, "runs": rest, "best": None})
    return groups
