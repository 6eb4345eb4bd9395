"""Insights on a finished run in plain words: thresholds with their uncertainty, advice, run comparison.

Pure logic behind the Evaluate and Runs pages (no streamlit). Everything is computed from the
files a run leaves behind (``predictions.csv``, ``metrics.json``, ``events.jsonl``, ``check.json``,
``model/model.json``), so the pages never need the model itself to show numbers.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import GraftError
from .evaluate import decide, defect_scores, score
from .jsonio import read_json, write_json_atomic

__all__ = [
    "Rate", "wilson_interval", "Predictions", "load_predictions", "OperatingPoint", "at_threshold", "headline",
    "sweep", "defect_roc", "confusion_at", "cell_indices", "mistake_indices", "resolve_images",
    "threshold_to_catch_all", "Advice", "advise", "run_row", "compare_runs", "epoch_curves", "save_threshold",
    "model_package_zip", "run_files", "folder_in_workspace", "batch_rows", "batch_summary",
]


# --- rates with uncertainty ----------------------------------------------------------------------


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes in ``n`` trials (95% by default).

    Unlike ``p ± z·se`` it stays inside [0, 1] and is honest at 0 of 5 or 5 of 5, which is
    exactly the small-test-set case a pilot has.

    Args:
        k: successes (e.g. defects caught).
        n: trials (e.g. defects in the test set).
        z: the normal quantile; 1.96 gives a 95% interval.

    Returns:
        ``(low, high)``; ``(0.0, 1.0)`` when ``n`` is 0 (nothing is known).
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n``, e.g. 14 of 15 defects caught, with its 95% range."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def text(self) -> str:
        return f"{self.k} of {self.n}"


# --- a run's test-set predictions ------------------------------------------------------------------


@dataclass(frozen=True)
class Predictions:
    """A run's scored test photos: true class, per-class probabilities, and the model's threshold."""

    images: tuple[str, ...]
    y: np.ndarray  # true class index per photo
    probs: np.ndarray  # (N, K) probabilities in the order of ``classes``
    classes: list[str]
    good_class: str | None = None
    threshold: float = 0.5  # the model's current threshold (model.json)
    split: str = "test"

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def has_defects(self) -> bool:
        """True when there is a good class, so catch rate and false alarms make sense."""
        return self.good_class in self.classes and len(self.classes) >= 2

    def decide(self, threshold: float | None = None) -> np.ndarray:
        """Predicted class index per photo at ``threshold`` (default: the model's)."""
        thr = self.threshold if threshold is None else threshold
        return decide(self.probs, self.classes, self.good_class if self.has_defects else None, thr)

    def defect_scores(self) -> np.ndarray:
        return defect_scores(self.probs, self.classes, self.good_class)


def load_predictions(run_dir: str | Path) -> Predictions:
    """Read ``predictions.csv`` of a finished run, with its good class and threshold.

    Args:
        run_dir: the run folder.

    Returns:
        The run's :class:`Predictions`.

    Raises:
        GraftError: the run has no (readable) predictions yet.
    """
    run_dir = Path(run_dir)
    rows, classes = _read_prediction_rows(run_dir / "predictions.csv")
    spec = read_json(run_dir / "model" / "model.json", {}) or {}
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    config = read_json(run_dir / "config.json", {}) or {}
    good = spec.get("good_class", metrics.get("good_class", config.get("good_class")))
    threshold = float(spec.get("threshold", metrics.get("threshold", 0.5)))
    rows = [r for r in rows if r.get("label") in classes]
    y = np.array([classes.index(r["label"]) for r in rows], dtype=int)
    probs = np.array([[_float(r.get(f"p_{c}")) for c in classes] for r in rows], dtype=float).reshape(len(rows), len(classes))
    split = rows[0].get("split", "test") if rows else "test"
    return Predictions(tuple(r.get("image", "") for r in rows), y, probs, classes, good, threshold, split)


def _read_prediction_rows(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            fields = reader.fieldnames or []
    except OSError:
        raise GraftError("This run has no test results yet.",
                         hint="Open a run that finished; results appear when training ends.") from None
    classes = [f[2:] for f in fields if f.startswith("p_")]
    if not classes:
        raise GraftError("This run's predictions.csv has no class probabilities; it can't be evaluated.")
    return rows, classes


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else 0.0
    except ValueError:
        return 0.0


# --- operating points ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatingPoint:
    """What the model does at one threshold, in factory words."""

    threshold: float
    accuracy: Rate
    caught: Rate | None = None  # defective parts flagged, of all defective parts
    false_alarms: Rate | None = None  # good parts flagged, of all good parts

    @property
    def missed(self) -> int | None:
        return None if self.caught is None else self.caught.n - self.caught.k


def at_threshold(preds: Predictions, threshold: float | None = None) -> OperatingPoint:
    """Accuracy, catch rate and false alarms if the model used ``threshold`` (default: its own)."""
    thr = preds.threshold if threshold is None else float(threshold)
    pred = preds.decide(thr)
    accuracy = Rate(int((pred == preds.y).sum()), preds.n)
    if not preds.has_defects:
        return OperatingPoint(thr, accuracy)
    g = preds.classes.index(preds.good_class)
    is_defect, flagged = preds.y != g, pred != g
    caught = Rate(int((flagged & is_defect).sum()), int(is_defect.sum()))
    alarms = Rate(int((flagged & ~is_defect).sum()), int((~is_defect).sum()))
    return OperatingPoint(thr, accuracy, caught, alarms)


def headline(preds: Predictions, metrics: dict[str, Any]) -> OperatingPoint:
    """The numbers to lead with: at the model's threshold.

    While the threshold is still the one training chose, the counts come straight from
    ``metrics.json`` (computed from unrounded probabilities), so the page, the report and the
    training summary agree to the photo. After a user saved a new threshold they are recomputed.
    """
    same = metrics.get("threshold") is not None and abs(float(metrics["threshold"]) - preds.threshold) < 1e-9
    if not same or "accuracy" not in metrics or "n" not in metrics:
        return at_threshold(preds)
    n = int(metrics["n"])
    accuracy = Rate(int(round(float(metrics["accuracy"]) * n)), n)
    if metrics.get("defects") is None or not preds.has_defects:
        return OperatingPoint(preds.threshold, accuracy)
    caught = Rate(int(metrics["defects_caught"]), int(metrics["defects"]))
    alarms = Rate(int(metrics["false_alarms"]), int(metrics["good_parts"]))
    return OperatingPoint(preds.threshold, accuracy, caught, alarms)


def sweep(preds: Predictions, thresholds: Iterable[float] | None = None) -> list[OperatingPoint]:
    """Operating points across thresholds (default 0.00, 0.01, ..., 1.00), for the trade-off chart."""
    grid = np.linspace(0.0, 1.0, 101) if thresholds is None else thresholds
    return [at_threshold(preds, float(t)) for t in grid]


def threshold_to_catch_all(preds: Predictions) -> OperatingPoint | None:
    """The highest threshold that still flags every defective test photo (fewest false alarms then)."""
    if not preds.has_defects:
        return None
    is_defect = preds.y != preds.classes.index(preds.good_class)
    if not is_defect.any():
        return None
    # a part is flagged when its score >= threshold, so the lowest defect score is the answer
    return at_threshold(preds, float(preds.defect_scores()[is_defect].min()))


def defect_roc(preds: Predictions) -> dict[str, Any] | None:
    """ROC of "defect vs good" (false alarm rate against catch rate), or None if it can't be drawn.

    Returns:
        ``{"false_alarm_rate": [...], "catch_rate": [...], "thresholds": [...], "auc": float}``;
        None without a good class or without both good and defective photos.
    """
    if not preds.has_defects:
        return None
    from sklearn.metrics import roc_auc_score, roc_curve

    is_defect = preds.y != preds.classes.index(preds.good_class)
    if is_defect.all() or not is_defect.any():
        return None
    scores = preds.defect_scores()
    fpr, tpr, thr = roc_curve(is_defect, scores)
    return {"false_alarm_rate": fpr.tolist(), "catch_rate": tpr.tolist(),
            "thresholds": np.clip(thr, 0.0, 1.0).tolist(), "auc": float(roc_auc_score(is_defect, scores))}


def confusion_at(preds: Predictions, threshold: float | None = None) -> np.ndarray:
    """Counts (K, K): rows are the true class, columns what the model said."""
    k = len(preds.classes)
    out = np.zeros((k, k), dtype=int)
    np.add.at(out, (preds.y, preds.decide(threshold)), 1)
    return out


def cell_indices(preds: Predictions, true_class: str, predicted_class: str,
                 threshold: float | None = None) -> list[int]:
    """Photos of ``true_class`` the model called ``predicted_class``, most confident first."""
    t, p = preds.classes.index(true_class), preds.classes.index(predicted_class)
    idx = np.flatnonzero((preds.y == t) & (preds.decide(threshold) == p))
    return idx[np.argsort(-preds.probs[idx, p], kind="stable")].tolist()


def mistake_indices(preds: Predictions, threshold: float | None = None, limit: int | None = None) -> list[int]:
    """Wrong answers, the most confidently wrong first (those are the label errors worth checking)."""
    pred = preds.decide(threshold)
    idx = np.flatnonzero(pred != preds.y)
    order = idx[np.argsort(-preds.probs[idx, pred[idx]], kind="stable")]
    return order[:limit].tolist() if limit is not None else order.tolist()


def run_files(run_dir: str | Path) -> dict[str, Any]:
    """A run's small files, each ``{}``/``[]`` when missing: metrics, config, check, spec (model.json), events."""
    from .jsonio import read_jsonl

    run_dir = Path(run_dir)

    def obj(path: Path) -> dict[str, Any]:
        data = read_json(path, {})
        return data if isinstance(data, dict) else {}

    return {"metrics": obj(run_dir / "metrics.json"), "config": obj(run_dir / "config.json"),
            "check": obj(run_dir / "check.json"), "spec": obj(run_dir / "model" / "model.json"),
            "events": read_jsonl(run_dir / "events.jsonl")}


def resolve_images(run_dir: str | Path) -> dict[str, str]:
    """Map each photo name in ``predictions.csv`` to its file, via the run's dataset.

    Returns an empty mapping when the dataset is gone or unreadable: the numbers still stand,
    only the photos can't be shown.
    """
    from .datasets import load_dataset

    config = read_json(Path(run_dir) / "config.json", {}) or {}
    data = config.get("data")
    if not data:
        return {}
    try:
        ds = load_dataset(data)
    except (GraftError, OSError):
        return {}
    return {s.rel: s.path for s in ds.samples}


# --- advice ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Advice:
    """One plain-words suggestion. ``level`` is ``problem``, ``warning``, ``tip`` or ``good``."""

    level: str
    title: str
    detail: str


FEW_TRAIN_PER_CLASS = 30  # below this, pretrained starts and feature extraction matter most
SMALL_TEST = 30  # below this, one photo moves accuracy by more than 3 points
IMBALANCE_ADVICE = 3.0


def advise(metrics: dict[str, Any], events: Sequence[dict[str, Any]] = (), check: dict[str, Any] | None = None,
           config: dict[str, Any] | None = None) -> list[Advice]:
    """What to try next, most important first, from a run's metrics, training curves and data check.

    Args:
        metrics: the run's ``metrics.json``.
        events: the run's events (only ``epoch`` events are used).
        check: the run's ``check.json`` (class counts, imbalance).
        config: the run's ``config.json`` (start point, strategy).

    Returns:
        A list of :class:`Advice`; a single ``good`` one when nothing stands out.
    """
    epochs = [e for e in events if e.get("event") == "epoch"]
    found = [*_advice_collapse(metrics), *_advice_data(metrics, check or {}), *_advice_curves(epochs, metrics),
             *_advice_classes(metrics), *_advice_threshold(metrics), *_advice_start(config or {}, check or {})]
    order = {"problem": 0, "warning": 1, "tip": 2}
    found.sort(key=lambda a: order.get(a.level, 3))
    if not any(a.level in ("problem", "warning") for a in found):  # lead with the good news, then the tips
        found.insert(0, Advice("good", "No obvious problems",
                               "Check any mistakes for mislabelled photos, then try the model on new photos on "
                               "the Test page."))
    return found


def _advice_collapse(metrics: dict[str, Any]) -> list[Advice]:
    predicted, classes = metrics.get("predicted_classes") or [], metrics.get("classes") or []
    if len(predicted) == 1 and len(classes) > 1:
        return [Advice("problem", f"The model answers '{predicted[0]}' for every photo",
                       "It has not learned to tell the classes apart yet. Train for more epochs, start from a "
                       "pretrained or earlier model, or add photos to the smaller classes.")]
    return []


def _advice_data(metrics: dict[str, Any], check: dict[str, Any]) -> list[Advice]:
    out = []
    counts = {c: int(n) for c, n in (check.get("counts") or {}).items() if n}
    if counts:
        small = min(counts, key=counts.get)
        if counts[small] < FEW_TRAIN_PER_CLASS:
            out.append(Advice("warning", f"Few photos: '{small}' has only {counts[small]}",
                              f"Aim for at least {FEW_TRAIN_PER_CLASS}, better 50 or more, per class. With few photos, "
                              "start from a pretrained model and use feature extraction."))
        ratio = max(counts.values()) / max(1, counts[small])
        if ratio >= IMBALANCE_ADVICE:
            big = max(counts, key=counts.get)
            out.append(Advice("warning", f"Unbalanced classes: {ratio:.0f}× more '{big}' than '{small}'",
                              f"Graft already gives rare classes more weight, but more '{small}' photos help most. "
                              "Judge the model by the catch rate, not by accuracy."))
    n = int(metrics.get("n") or 0)
    if 0 < n < SMALL_TEST:
        out.append(Advice("tip", f"Only {n} test photos: read the numbers as rough",
                          f"Each photo moves accuracy by {100 / n:.0f} points. The ranges next to the numbers show "
                          "how far off they could be; more photos make them narrower."))
    return out


def _advice_curves(epochs: list[dict[str, Any]], metrics: dict[str, Any]) -> list[Advice]:
    if len(epochs) < 2:
        return []
    last = epochs[-1]
    train_acc, val_acc = last.get("train_acc"), last.get("val_acc")
    out = []
    val_losses = [e["val_loss"] for e in epochs if e.get("val_loss") is not None]
    rising = len(val_losses) >= 3 and val_losses[-1] > 1.2 * min(val_losses) and val_losses.index(min(val_losses)) < len(val_losses) - 1
    if train_acc is not None and val_acc is not None and (train_acc - val_acc > 0.15 and train_acc > 0.85 or rising):
        out.append(Advice("warning", "It learns the training photos by heart (overfitting)",
                          f"Training accuracy {train_acc:.0%} but validation {val_acc:.0%}. Add photos, use feature "
                          "extraction (fewer weights to learn), or start from a pretrained model. Graft keeps the "
                          "best epoch, so the saved model is not the last one."))
    elif train_acc is not None and train_acc < 0.7:
        out.append(Advice("warning", f"It hasn't learned the training photos yet ({train_acc:.0%} right)",
                          "Train for more epochs, or start from a pretrained or earlier model."))
    best, run = metrics.get("best_epoch"), metrics.get("epochs_run") or len(epochs)
    if best is not None and best >= run and not metrics.get("stopped_early") and val_acc is not None and val_acc < 0.98:
        out.append(Advice("tip", "Still improving at the last epoch",
                          "The best result came at the very end; more epochs will probably help."))
    return out


def _advice_classes(metrics: dict[str, Any]) -> list[Advice]:
    per_class, classes, confusion = metrics.get("per_class") or {}, metrics.get("classes") or [], metrics.get("confusion") or []
    if len(set(metrics.get("predicted_classes") or [])) <= 1:
        return []  # already explained by the collapse advice
    weak = [(v["recall"], c) for c, v in per_class.items() if v.get("support") and v["recall"] < 0.7]
    if not weak:
        return []
    recall, cls = min(weak)
    detail = "Check that its photos are labelled right, and add photos where it is clearly visible."
    if cls in classes and confusion:
        row = list(confusion[classes.index(cls)])
        row[classes.index(cls)] = -1
        other = classes[int(np.argmax(row))]
        if row[classes.index(other)] > 0:
            detail = f"It is most often taken for '{other}'. " + detail
    return [Advice("warning", f"'{cls}' is often missed (only {recall:.0%} found)", detail)]


def _advice_threshold(metrics: dict[str, Any]) -> list[Advice]:
    catch, alarms = metrics.get("catch_rate"), metrics.get("false_alarm_rate")
    if catch is None or alarms is None or len(set(metrics.get("predicted_classes") or [])) <= 1:
        return []
    if catch < 0.9 and alarms < 0.2:
        return [Advice("tip", f"{metrics.get('defects', 0) - metrics.get('defects_caught', 0)} defect(s) slip through",
                       "Lower the threshold to catch more of them; the slider shows how many extra false alarms "
                       "that costs.")]
    if alarms > 0.2 and catch >= 0.9:
        return [Advice("tip", "Many good parts are flagged",
                       "Raise the threshold to cut false alarms; the slider shows how many defects that would miss.")]
    return []


def _advice_start(config: dict[str, Any], check: dict[str, Any]) -> list[Advice]:
    if str(config.get("start", "")) != "scratch":
        return []
    return [Advice("tip", "Started from scratch",
                   "A model that starts from ImageNet or from an earlier model of yours usually needs far fewer "
                   "photos for the same result. Try it on the Model page.")]


# --- runs --------------------------------------------------------------------------------------------


def _start_words(start: str) -> str:
    kind, _, path = start.partition(":")
    return {"imagenet": "ImageNet", "scratch": "scratch", "file": f"file {Path(path).name}",
            "run": f"run {Path(path).name}"}.get(kind, start or "")


def run_row(run: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """One line of the runs table from a :func:`core.runs.list_runs` entry.

    Returns:
        Plain values: run, dataset, backbone, start, strategy, images, accuracy, f1, catch_rate,
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
            "started": time.strftime("%d %b %H:%M", time.localtime(float(started))) if started else "",
            "minutes": duration, "status": status.get("state", "unknown"), "message": status.get("message", ""),
            "path": run["path"]}


COMPARE_METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "Accuracy"), ("macro_f1", "F1 (macro)"), ("catch_rate", "Catch rate"),
    ("false_alarm_rate", "False alarm rate"), ("roc_auc", "ROC AUC"), ("n", "Test photos"),
    ("best_epoch", "Best epoch"), ("epochs_run", "Epochs run"),
)


def compare_runs(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Metrics side by side: ``{metric label: {run id: value}}`` for the chosen runs."""
    out: dict[str, dict[str, Any]] = {}
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


# --- the model's threshold ---------------------------------------------------------------------------


def save_threshold(run_dir: str | Path, threshold: float) -> float:
    """Store a new decision threshold in the run's model package (``model/model.json``), atomically.

    The threshold training chose is kept in ``info.threshold_from_training`` so it can be restored.

    Args:
        run_dir: the run folder (or its ``model/`` folder).
        threshold: the defect score at which a part is flagged, between 0 and 1.

    Returns:
        The threshold as stored.

    Raises:
        GraftError: no finished model, no good class, or a threshold outside 0..1.
    """
    from .package import SPEC_FILE, resolve_model_dir

    if not 0.0 <= float(threshold) <= 1.0 or math.isnan(float(threshold)):
        raise GraftError("The threshold must be between 0 and 1.")
    spec_file = resolve_model_dir(run_dir) / SPEC_FILE
    spec = read_json(spec_file)
    if not isinstance(spec, dict):
        raise GraftError("This model's model.json can't be read.")
    if not spec.get("good_class"):
        raise GraftError("This model has no good class, so it has no threshold to set.",
                         hint="Mark the good class on the Data page and train again.")
    info = spec.setdefault("info", {})
    info.setdefault("threshold_from_training", spec.get("threshold", 0.5))
    spec["threshold"] = float(threshold)
    info["threshold_set"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json_atomic(spec_file, spec)
    _drop_stale_exports(spec_file.parent)
    _rescore_metrics(spec_file.parent.parent)
    return spec["threshold"]


def _rescore_metrics(run_dir: Path) -> None:
    """Bring ``metrics.json`` to the new threshold, so the report and the runs table agree with the app."""
    metrics = read_json(run_dir / "metrics.json")
    if not isinstance(metrics, dict) or not (run_dir / "predictions.csv").is_file():
        return
    preds = load_predictions(run_dir)
    metrics.update(score(preds.y, preds.probs, preds.classes, preds.good_class, preds.threshold))
    write_json_atomic(run_dir / "metrics.json", metrics)


def _drop_stale_exports(model_dir: Path) -> None:
    """An exported ONNX file and bundle carry the old threshold in their metadata: remove them so the
    next export is made afresh (export only re-exports when the *weights* changed)."""
    for folder in {model_dir, model_dir.parent}:
        for name in ("model.onnx", "model-bundle.zip"):
            (folder / name).unlink(missing_ok=True)


def model_package_zip(run_dir: str | Path) -> bytes:
    """The run's model package (``model.safetensors`` + ``model.json``) as zip bytes, for a download.

    Raises:
        GraftError: the run has no finished model.
    """
    import io
    import zipfile

    from .package import SPEC_FILE, WEIGHTS_FILE, resolve_model_dir

    model_dir = resolve_model_dir(run_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in (WEIGHTS_FILE, SPEC_FILE):
            zf.write(model_dir / name, arcname=f"model/{name}")
    return buf.getvalue()


# --- batch tests ---------------------------------------------------------------------------------


def folder_in_workspace(root: str | Path, text: str) -> Path:
    """A folder the user typed, accepted only when it lies inside the workspace (the app may be shared).

    Args:
        root: the workspace folder.
        text: an absolute path, or a path relative to the workspace.

    Raises:
        GraftError: empty, outside the workspace, or not a folder.
    """
    text = (text or "").strip().strip('"')
    if not text:
        raise GraftError("Type the path of a folder of photos.")
    base = Path(root).resolve()
    path = Path(text).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    if path != base and base not in path.parents:
        raise GraftError("That folder is outside the workspace.",
                         hint=f"Copy the photos into a folder inside {base} first, or upload them as a zip.")
    if not path.is_dir():
        raise GraftError(f"There is no folder '{text}' in the workspace.")
    return path


def batch_rows(predictions: Sequence[Any], good_class: str | None, root: str | Path | None = None) -> list[dict[str, Any]]:
    """Table rows for a batch test: photo, verdict, confidence, defect score, flagged, problem.

    Args:
        predictions: :class:`core.predict.Prediction` objects.
        good_class: the model's good class (None: no flagged column).
        root: folder the photo names are shown relative to.
    """
    rows = []
    for p in predictions:
        name = p.source
        if root is not None:
            try:
                name = Path(p.source).relative_to(root).as_posix()
            except ValueError:
                pass
        row: dict[str, Any] = {"photo": name, "predicted": p.label, "confidence": None if p.error else p.confidence}
        if good_class is not None:
            row["defect_score"] = p.defect_score
            row["flagged"] = None if p.error else p.label != good_class
        row["problem"] = p.error
        rows.append(row)
    return rows


def batch_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts for a batch: photos, readable, unreadable, per predicted class, flagged as defects."""
    readable = [r for r in rows if not r.get("problem")]
    per_class: dict[str, int] = {}
    for r in readable:
        per_class[str(r["predicted"])] = per_class.get(str(r["predicted"]), 0) + 1
    flagged = sum(1 for r in readable if r.get("flagged")) if any("flagged" in r for r in rows) else None
    return {"photos": len(rows), "readable": len(readable), "unreadable": len(rows) - len(readable),
            "per_class": dict(sorted(per_class.items(), key=lambda kv: -kv[1])), "flagged": flagged}
