"""A run's scored photos and what they say at any threshold: operating points, ROC, confusion, mistakes.

Pure logic behind the Evaluate page (no streamlit), computed from the files a run leaves behind
(``predictions.csv``, ``metrics.json``, ``model/model.json``), so the page never needs the model
itself to show numbers.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import GraftError
from .jsonio import read_json
from .metrics import Rate, decide, defect_scores

__all__ = ["Predictions", "load_predictions", "OperatingPoint", "at_threshold", "headline", "sweep",
           "threshold_to_catch_all", "defect_roc", "confusion_at", "cell_indices", "mistake_indices",
           "run_files", "resolve_images"]


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

