"""A run's scored photos and what they say at any threshold: operating points, ROC, confusion, mistakes.

Pure logic behind the Evaluate page (no streamlit), computed from the files a run leaves behind
(``predictions.csv``, ``metrics.json``, ``model/model.json`` and ``model/decision.json``), so the page
never needs the model itself to show numbers.

Which photos a view uses matters: :func:`load_predictions` reads one split. The *held-out* figures
(:func:`held_out`) are the test photos (or the out-of-fold scores of a cross-validation) decided with
the threshold training chose without looking at them; a threshold chosen by looking at the same photos
makes their numbers optimistic (:func:`is_optimistic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import GraftError
from .jsonio import read_json
from .metrics import Rate, band_summary, decide, defect_scores, score
from .predictions_file import PREDICTIONS_FILE, SPLIT_ORDER, read_predictions

__all__ = ["Predictions", "load_predictions", "available_splits", "OperatingPoint", "at_threshold", "headline",
           "held_out", "held_out_metrics", "sweep", "threshold_to_catch_all", "threshold_for_target", "defect_roc",
           "confusion_at", "cell_indices", "mistake_indices", "band_at", "is_optimistic", "run_files",
           "resolve_images", "recorded", "tuning_split", "CHOSEN_ON_SPLIT", "per_class_rates"]

# the Decision.chosen_on of a threshold picked on a split's photos
CHOSEN_ON_SPLIT = {"val": "validation", "oof": "out-of-fold", "test": "test"}


# --- a run's test-set predictions ------------------------------------------------------------------


@dataclass(frozen=True)
class Predictions:
    """A run's scored photos of one split: true class, per-class probabilities, and the model's threshold."""

    images: tuple[str, ...]
    y: np.ndarray  # true class index per photo
    probs: np.ndarray  # (N, K) probabilities in the order of ``classes``
    classes: list[str]
    good_class: str | None = None
    threshold: float = 0.5  # the model's current threshold (decision.json)
    split: str = "test"  # test, oof (out-of-fold) or val
    decided_at: np.ndarray | None = None  # per photo: the threshold training decided it with
    folds: np.ndarray | None = None  # per photo: its cross-validation fold (1..K), else None
    uncertain_band: float = 0.0  # the model's current "send to a person" band (decision.json)

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def has_defects(self) -> bool:
        """True when there is a good class, so catch rate and false alarms make sense."""
        return self.good_class in self.classes and len(self.classes) >= 2

    def decide(self, threshold: float | np.ndarray | None = None) -> np.ndarray:
        """Predicted class index per photo at ``threshold`` (default: the model's)."""
        thr = self.threshold if threshold is None else threshold
        return decide(self.probs, self.classes, self.good_class if self.has_defects else None, thr)

    def defect_scores(self) -> np.ndarray:
        return defect_scores(self.probs, self.classes, self.good_class)


def load_predictions(run_dir: str | Path, split: str | None = None) -> Predictions:
    """Read one split of a finished run's ``predictions.csv``, with its good class and decision settings.

    Args:
        run_dir: the run folder.
        split: ``test``, ``oof`` or ``val``; default the split the headline numbers come from
            (``metrics.json``'s ``evaluated_on``, else the first of test, oof, val in the file).

    Returns:
        The run's :class:`Predictions` for that split (empty when the file has none of it).

    Raises:
        GraftError: the run has no (readable) predictions yet.
    """
    run_dir = Path(run_dir)
    rows, classes = read_predictions(run_dir / PREDICTIONS_FILE)
    spec = read_json(run_dir / "model" / "model.json", {}) or {}
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    config = read_json(run_dir / "config.json", {}) or {}
    good = spec.get("good_class", metrics.get("good_class", config.get("good_class")))
    threshold, band = _decision(run_dir, spec, metrics)
    present = [r.get("split") or "test" for r in rows]
    chosen = split or _default_split(metrics, present)
    rows = [r for r, sp in zip(rows, present) if sp == chosen and r.get("label") in classes]
    y = np.array([classes.index(r["label"]) for r in rows], dtype=int)
    probs = np.array([[_float(r.get(f"p_{c}")) for c in classes] for r in rows], dtype=float).reshape(len(rows), len(classes))
    decided = np.array([_float(r.get("threshold"), threshold) for r in rows], dtype=float)
    folds = np.array([int(r["fold"]) for r in rows]) if rows and all(r.get("fold") for r in rows) else None
    return Predictions(tuple(r.get("image", "") for r in rows), y, probs, classes, good, threshold, chosen,
                       decided, folds, band)


def available_splits(run_dir: str | Path) -> list[str]:
    """The splits a run's ``predictions.csv`` holds, headline split first (e.g. ``["test", "val"]``)."""
    rows, _ = read_predictions(Path(run_dir) / PREDICTIONS_FILE)
    found = {r.get("split") or "test" for r in rows}
    return [s for s in SPLIT_ORDER if s in found] + sorted(found - set(SPLIT_ORDER))


def _default_split(metrics: dict[str, Any], present: list[str]) -> str:
    if metrics.get("evaluated_on") in present:
        return str(metrics["evaluated_on"])
    return next((s for s in SPLIT_ORDER if s in present), present[0] if present else "test")


def _decision(run_dir: Path, spec: dict[str, Any], metrics: dict[str, Any]) -> tuple[float, float]:
    from .decision import read_decision

    try:
        decision = read_decision(run_dir)
        return decision.threshold, decision.uncertain_band
    except GraftError:  # no model package (yet): the numbers still stand
        return float(spec.get("threshold", metrics.get("threshold") or 0.5)), 0.0


def _float(text: str | None, default: float = 0.0) -> float:
    try:
        return float(text) if text not in (None, "") else default
    except ValueError:
        return default


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


def at_threshold(preds: Predictions, threshold: float | np.ndarray | None = None) -> OperatingPoint:
    """Accuracy, catch rate and false alarms if the model used ``threshold`` (default: its own)."""
    thr = preds.threshold if threshold is None else threshold
    thr = float(thr) if np.ndim(thr) == 0 else np.asarray(thr, dtype=float)
    pred = preds.decide(thr)
    accuracy = Rate(int((pred == preds.y).sum()), preds.n)
    if not preds.has_defects:
        return OperatingPoint(thr, accuracy)
    g = preds.classes.index(preds.good_class)
    is_defect, flagged = preds.y != g, pred != g
    caught = Rate(int((flagged & is_defect).sum()), int(is_defect.sum()))
    alarms = Rate(int((flagged & ~is_defect).sum()), int((~is_defect).sum()))
    return OperatingPoint(thr if np.ndim(thr) == 0 else preds.threshold, accuracy, caught, alarms)


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


def recorded(metrics: dict[str, Any]) -> OperatingPoint | None:
    """The held-out figures exactly as training recorded them in ``metrics.json`` (which is never rewritten):
    what the Evaluate page leads with, whatever threshold was saved later. None without metrics."""
    if "accuracy" not in metrics or not metrics.get("n"):
        return None
    n = int(metrics["n"])
    accuracy = Rate(int(round(float(metrics["accuracy"]) * n)), n)
    threshold = float(metrics.get("threshold") or 0.5)
    if not metrics.get("good_class") or metrics.get("defects") is None or metrics.get("good_parts") is None:
        return OperatingPoint(threshold, accuracy)
    return OperatingPoint(threshold, accuracy, Rate(int(metrics["defects_caught"]), int(metrics["defects"])),
                          Rate(int(metrics["false_alarms"]), int(metrics["good_parts"])))


def tuning_split(splits: Iterable[str]) -> str | None:
    """The split a threshold is chosen on, from :func:`available_splits`: the out-of-fold scores of a
    cross-validation, else the validation photos, else (no validation photos) the held-out split."""
    found = list(splits)
    return next((s for s in ("oof", "val") if s in found), found[0] if found else None)


def per_class_rates(preds: Predictions, threshold: float | None = None) -> dict[str, dict[str, Rate | None]]:
    """Per class at ``threshold``: ``found`` (its photos named right, the recall) and ``right_when_said``
    (photos it was named for that really are it, the precision); None where there is nothing to count,
    e.g. a class with no photos here (shown as "–")."""
    pred = preds.decide(threshold)
    out: dict[str, dict[str, Rate | None]] = {}
    for k, c in enumerate(preds.classes):
        mine, said = preds.y == k, pred == k
        out[c] = {"found": Rate(int((said & mine).sum()), int(mine.sum())) if mine.any() else None,
                  "right_when_said": Rate(int((said & mine).sum()), int(said.sum())) if said.any() else None}
    return out


def held_out(preds: Predictions) -> OperatingPoint:
    """The figures as training measured them: each photo decided with the threshold it was decided with then
    (the validation threshold; for cross-validation, the one chosen on the other folds)."""
    point = at_threshold(preds, preds.decided_at if preds.decided_at is not None else None)
    return OperatingPoint(preds.threshold, point.accuracy, point.caught, point.false_alarms)


def held_out_metrics(preds: Predictions) -> dict[str, Any]:
    """:func:`core.metrics.score` of the held-out decisions (what ``metrics.json`` recorded in training)."""
    thresholds = preds.decided_at if preds.decided_at is not None else preds.threshold
    return score(preds.y, preds.probs, preds.classes, preds.good_class if preds.has_defects else None, thresholds)


def is_optimistic(preds: Predictions, chosen_on: str) -> bool:
    """Whether these photos' figures flatter a threshold chosen on ``chosen_on`` (a ``Decision.chosen_on``).

    Validation photos always do (they chose training's threshold). Test photos do
    when the threshold was chosen on the test photos, out-of-fold scores when it was chosen on all of
    them at once: label such views "tuned on the ... photos: optimistic".
    """
    if preds.split == "val":
        return True
    return (preds.split, chosen_on) in {("test", "test"), ("oof", "out-of-fold")}


def band_at(preds: Predictions, threshold: float | None = None, band: float | None = None) -> dict[str, Any]:
    """What an uncertain band costs on these photos: how many go to a person, and the mistakes left.

    See :func:`core.metrics.band_summary`; default threshold and band are the model's.
    """
    thr = preds.threshold if threshold is None else float(threshold)
    width = preds.uncertain_band if band is None else float(band)
    return band_summary(preds.probs, preds.y, preds.classes, preds.good_class if preds.has_defects else None,
                        thr, width)


def sweep(preds: Predictions, thresholds: Iterable[float] | None = None) -> list[OperatingPoint]:
    """Operating points across thresholds (default 0.00, 0.01, ..., 1.00), for the trade-off chart."""
    grid = np.linspace(0.0, 1.0, 101) if thresholds is None else thresholds
    return [at_threshold(preds, float(t)) for t in grid]


def threshold_for_target(preds: Predictions, catch_rate: float) -> OperatingPoint | None:
    """The highest threshold whose catch rate on these photos reaches ``catch_rate`` (fewest false alarms then).

    None without a good class or without defective photos. On the photos it was chosen on, its
    numbers are optimistic (see :func:`is_optimistic`).
    """
    if not preds.has_defects:
        return None
    is_defect = preds.y != preds.classes.index(preds.good_class)
    if not is_defect.any():
        return None
    scores = np.sort(preds.defect_scores()[is_defect])[::-1]
    needed = int(np.ceil(catch_rate * len(scores) - 1e-9))
    return at_threshold(preds, float(scores[max(needed, 1) - 1]))


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
    """A run's small files, each ``{}``/``[]`` when missing: metrics, config, check, spec (model.json),
    decision (decision.json), events."""
    from .jsonio import read_jsonl

    run_dir = Path(run_dir)

    def obj(path: Path) -> dict[str, Any]:
        data = read_json(path, {})
        return data if isinstance(data, dict) else {}

    return {"metrics": obj(run_dir / "metrics.json"), "config": obj(run_dir / "config.json"),
            "check": obj(run_dir / "check.json"), "spec": obj(run_dir / "model" / "model.json"),
            "decision": obj(run_dir / "model" / "decision.json"), "events": read_jsonl(run_dir / "events.jsonl")}


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

