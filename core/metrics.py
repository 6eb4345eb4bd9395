"""Pure metrics in business words: catch rate (recall on defects), false alarms, rates with ranges."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["decide", "choose_threshold", "score", "defect_scores", "wilson_interval", "Rate", "uncertain_mask",
           "answers", "band_summary", "bootstrap_auc_range", "bootstrap_balanced_range", "metric_ranges",
           "balanced_accuracy", "GOOD_ANSWER", "DEFECT_ANSWER", "UNCERTAIN_ANSWER"]

GOOD_ANSWER, DEFECT_ANSWER, UNCERTAIN_ANSWER = "good", "defect", "uncertain"
BOOTSTRAP_REPS = 2000


def defect_scores(probs: np.ndarray, classes: list[str], good_class: str) -> np.ndarray:
    """How likely each photo shows a defect: 1 - P(good)."""
    return 1.0 - probs[:, classes.index(good_class)]


def decide(probs: np.ndarray, classes: list[str], good_class: str | None = None,
           threshold: float | np.ndarray = 0.5) -> np.ndarray:
    """Predicted class index per photo. With a good class, a part is flagged when its defect
    score reaches the threshold (one for all photos, or one per photo), and then gets its most
    likely defect type."""
    pred = probs.argmax(1)
    if good_class is None or len(classes) < 2:
        return pred
    g = classes.index(good_class)
    masked = probs.copy()
    masked[:, g] = -1.0
    flagged = defect_scores(probs, classes, good_class) >= threshold
    return np.where(flagged, masked.argmax(1), g)


def uncertain_mask(probs: np.ndarray, classes: list[str], good_class: str | None, threshold: float | np.ndarray,
                   band: float) -> np.ndarray:
    """Photos too close to call, to be sent to a person.

    With a good class: the defect score lies in ``[threshold - band/2, threshold + band/2)``.
    Without: the two most likely classes are less than ``band`` apart. ``band`` 0 sends none.
    """
    if band <= 0 or len(probs) == 0:
        return np.zeros(len(probs), dtype=bool)
    if good_class is None or len(classes) < 2:
        top = np.sort(probs, axis=1)
        return (top[:, -1] - top[:, -2]) < band if probs.shape[1] > 1 else np.zeros(len(probs), dtype=bool)
    scores = defect_scores(probs, classes, good_class)
    return (scores >= threshold - band / 2) & (scores < threshold + band / 2)


def answers(probs: np.ndarray, classes: list[str], good_class: str | None, threshold: float | np.ndarray = 0.5,
            band: float = 0.0) -> list[str]:
    """The verdict per photo: ``good`` / ``defect`` / ``uncertain`` (or the class name without a good class)."""
    pred = decide(probs, classes, good_class, threshold)
    unsure = uncertain_mask(probs, classes, good_class, threshold, band)
    has_good = good_class is not None and len(classes) >= 2
    g = classes.index(good_class) if has_good else -1
    out = []
    for k, u in zip(pred, unsure):
        if u:
            out.append(UNCERTAIN_ANSWER)
        elif has_good:
            out.append(GOOD_ANSWER if k == g else DEFECT_ANSWER)
        else:
            out.append(classes[k])
    return out


def band_summary(probs: np.ndarray, y: np.ndarray, classes: list[str], good_class: str | None,
                 threshold: float | np.ndarray, band: float) -> dict[str, Any]:
    """What the uncertain band costs and saves: photos sent to a person, and the mistakes left outside it.

    Returns:
        ``band``, ``n``, ``sent_to_person`` (count) and ``share``; with a good class also
        ``defects_missed`` (defects passed as good outside the band) and ``false_alarms`` (good parts
        flagged outside the band) and the counts they are out of.
    """
    unsure = uncertain_mask(probs, classes, good_class, threshold, band)
    n = len(y)
    out: dict[str, Any] = {"band": float(band), "n": int(n), "sent_to_person": int(unsure.sum()),
                           "share": float(unsure.mean()) if n else None}
    if good_class is not None and len(classes) >= 2:
        g = classes.index(good_class)
        is_defect, flagged = y != g, decide(probs, classes, good_class, threshold) != g
        out.update(defects=int(is_defect.sum()), defects_missed=int((~flagged & is_defect & ~unsure).sum()),
                   good_parts=int((~is_defect).sum()), false_alarms=int((flagged & ~is_defect & ~unsure).sum()))
    else:
        out.update(wrong=int(((decide(probs, classes) != y) & ~unsure).sum()))
    return out


def choose_threshold(y: np.ndarray, probs: np.ndarray, classes: list[str], good_class: str) -> float:
    """The threshold that best separates ok from defect on validation (Youden's J), else 0.5.

    Every threshold in the gap between two neighbouring scores decides the same, so take the
    middle of the best gap: a part scored just below the lowest validation defect is still caught.
    """
    is_defect = y != classes.index(good_class)
    if is_defect.all() or not is_defect.any():
        return 0.5
    from sklearn.metrics import roc_curve  # here, not at the top: the app's pages import this module (~1 s)

    fpr, tpr, thr = roc_curve(is_defect, defect_scores(probs, classes, good_class), drop_intermediate=False)
    thr = np.clip(thr, 0.0, 1.0)  # the first threshold is +inf ("flag nothing")
    j = tpr - fpr
    best = np.flatnonzero(j == j.max())
    lower = np.append(thr[1:], 0.0)  # the next lower score: the bottom of each gap
    candidates = (thr[best] + lower[best]) / 2
    # among equally good gaps take the one nearest 0.5 (the least surprising)
    return float(candidates[np.argmin(np.abs(candidates - 0.5))])


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float | None:
    """The mean recall over the classes present in ``y`` (chance is 1 / their number); None when empty."""
    present = np.unique(y)
    if not len(present):
        return None
    return float(np.mean([(pred[y == c] == c).mean() for c in present]))


def score(y: np.ndarray, probs: np.ndarray, classes: list[str], good_class: str | None = None,
          threshold: float | np.ndarray = 0.5) -> dict[str, Any]:
    """Accuracy, macro-F1, balanced accuracy, per-class numbers, the confusion matrix, and defect numbers.

    Macro scores average over the classes present in ``y`` only; a class with no photos here gets
    ``None`` for recall and F1 (shown as "–"), and a precision only if the model named it.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    pred = decide(probs, classes, good_class, threshold)
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    present = [k for k in labels if support[k] > 0]
    named = np.bincount(pred, minlength=len(classes)) if len(pred) else np.zeros(len(classes), dtype=int)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)) if len(y) else 0.0,
        "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0)) if present else 0.0,
        "balanced_accuracy": balanced_accuracy(y, pred),
        "per_class": {c: {"precision": float(p[k]) if named[k] else None,
                          "recall": float(r[k]) if support[k] else None,
                          "f1": float(f[k]) if support[k] else None, "support": int(support[k])}
                      for k, c in enumerate(classes)},
        "confusion": confusion_matrix(y, pred, labels=labels).tolist() if len(y) else [],
        "classes": classes,
        "classes_scored": [classes[k] for k in present],
        "predicted_classes": sorted({classes[k] for k in pred}),
    }
    if good_class is not None:
        out.update(_defect_metrics(y, probs, pred, classes, good_class, threshold))
    out["ranges"] = metric_ranges(out, y, probs, pred, classes, good_class)
    return out


def _defect_metrics(y: np.ndarray, probs: np.ndarray, pred: np.ndarray, classes: list[str],
                    good_class: str, threshold: float | np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    g = classes.index(good_class)
    is_defect, flagged = y != g, pred != g
    scores = defect_scores(probs, classes, good_class)
    both = is_defect.any() and (~is_defect).any()
    return {
        "good_class": good_class,
        "threshold": float(threshold) if np.ndim(threshold) == 0 else None,
        "catch_rate": float(flagged[is_defect].mean()) if is_defect.any() else None,
        "false_alarm_rate": float(flagged[~is_defect].mean()) if (~is_defect).any() else None,
        "defects": int(is_defect.sum()), "defects_caught": int((flagged & is_defect).sum()),
        "good_parts": int((~is_defect).sum()), "false_alarms": int((flagged & ~is_defect).sum()),
        "flagged": int(flagged.sum()),
        "roc_auc": float(roc_auc_score(is_defect, scores)) if both else None,
    }


def metric_ranges(metrics: dict[str, Any], y: np.ndarray, probs: np.ndarray, pred: np.ndarray, classes: list[str],
                  good_class: str | None) -> dict[str, list[float] | None]:
    """95% ranges: Wilson for rates of counts; a stratified bootstrap for ROC AUC and balanced accuracy."""
    n = metrics["n"]
    out: dict[str, list[float] | None] = {
        "accuracy": list(wilson_interval(int(round(metrics["accuracy"] * n)), n)) if n else None,
        "balanced_accuracy": bootstrap_balanced_range(y, pred),
    }
    if good_class is not None:
        out["catch_rate"] = list(wilson_interval(metrics["defects_caught"], metrics["defects"])) \
            if metrics["defects"] else None
        out["false_alarm_rate"] = list(wilson_interval(metrics["false_alarms"], metrics["good_parts"])) \
            if metrics["good_parts"] else None
        is_defect = y != classes.index(good_class)
        out["roc_auc"] = bootstrap_auc_range(is_defect, defect_scores(probs, classes, good_class))
    return out


def bootstrap_auc_range(is_defect: np.ndarray, scores: np.ndarray, reps: int = BOOTSTRAP_REPS,
                        seed: int = 0) -> list[float] | None:
    """95% percentile range of the ROC AUC, resampling defects and good parts separately.

    Returns None without both defects and good parts. With one or two photos of a kind the range
    understates the doubt (the resamples can't vary much); the Wilson ranges of the rates don't.
    """
    pos, neg = scores[is_defect], scores[~is_defect]
    if not len(pos) or not len(neg):
        return None
    rng = np.random.default_rng(seed)
    p = pos[rng.integers(0, len(pos), (reps, len(pos)))]
    q = np.sort(neg[rng.integers(0, len(neg), (reps, len(neg)))], axis=1)
    offset = 4.0 * np.arange(reps)[:, None]  # scores lie in 0..1: shifting each resample keeps them apart
    flat = (q + offset).ravel()
    start = (np.arange(reps) * len(neg))[:, None]
    below = np.searchsorted(flat, (p + offset).ravel(), "left").reshape(reps, -1) - start
    upto = np.searchsorted(flat, (p + offset).ravel(), "right").reshape(reps, -1) - start
    auc = (below.sum(1) + 0.5 * (upto - below).sum(1)) / (len(pos) * len(neg))
    return [float(np.percentile(auc, 2.5)), float(np.percentile(auc, 97.5))]


def bootstrap_balanced_range(y: np.ndarray, pred: np.ndarray, reps: int = BOOTSTRAP_REPS,
                             seed: int = 0) -> list[float] | None:
    """95% percentile range of the balanced accuracy, resampling within each class present.

    Photos that are all right (or all wrong) can't vary under resampling, so a perfect score on a
    handful of photos would get the range [100%, 100%]. The range therefore always spans the Wilson
    range of the balanced accuracy as a share of all the photos, which is honest at 6 of 6.
    """
    present = np.unique(y)
    if not len(present):
        return None
    rng = np.random.default_rng(seed)
    recalls = []
    for c in present:
        right = (pred[y == c] == c).astype(np.float64)
        recalls.append(right[rng.integers(0, len(right), (reps, len(right)))].mean(1))
    balanced = np.mean(recalls, axis=0)
    low, high = wilson_interval(int(round(float(balanced_accuracy(y, pred) or 0.0) * len(y))), len(y))
    return [float(min(np.percentile(balanced, 2.5), low)), float(max(np.percentile(balanced, 97.5), high))]


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
    low = 0.0 if k <= 0 else max(0.0, centre - half)  # exact at the ends (no 0.9999999999999999)
    high = 1.0 if k >= n else min(1.0, centre + half)
    return low, high


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
