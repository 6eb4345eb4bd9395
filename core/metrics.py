"""Pure metrics in business words: catch rate (recall on defects), false alarms, rates with ranges."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support,
                             roc_auc_score, roc_curve)

__all__ = ["decide", "choose_threshold", "score", "defect_scores", "wilson_interval", "Rate"]


def defect_scores(probs: np.ndarray, classes: list[str], good_class: str) -> np.ndarray:
    """How likely each photo shows a defect: 1 - P(good)."""
    return 1.0 - probs[:, classes.index(good_class)]


def decide(probs: np.ndarray, classes: list[str], good_class: str | None = None,
           threshold: float = 0.5) -> np.ndarray:
    """Predicted class index per photo. With a good class, a part is flagged when its defect
    score reaches the threshold, and then gets its most likely defect type."""
    pred = probs.argmax(1)
    if good_class is None or len(classes) < 2:
        return pred
    g = classes.index(good_class)
    masked = probs.copy()
    masked[:, g] = -1.0
    flagged = defect_scores(probs, classes, good_class) >= threshold
    return np.where(flagged, masked.argmax(1), g)


def choose_threshold(y: np.ndarray, probs: np.ndarray, classes: list[str], good_class: str) -> float:
    """The threshold that best separates ok from defect on validation (Youden's J), else 0.5.

    Every threshold in the gap between two neighbouring scores decides the same, so take the
    middle of the best gap: a part scored just below the lowest validation defect is still caught.
    """
    is_defect = y != classes.index(good_class)
    if is_defect.all() or not is_defect.any():
        return 0.5
    fpr, tpr, thr = roc_curve(is_defect, defect_scores(probs, classes, good_class), drop_intermediate=False)
    thr = np.clip(thr, 0.0, 1.0)  # the first threshold is +inf ("flag nothing")
    j = tpr - fpr
    best = np.flatnonzero(j == j.max())
    lower = np.append(thr[1:], 0.0)  # the next lower score: the bottom of each gap
    candidates = (thr[best] + lower[best]) / 2
    # among equally good gaps take the one nearest 0.5 (the least surprising)
    return float(candidates[np.argmin(np.abs(candidates - 0.5))])


def score(y: np.ndarray, probs: np.ndarray, classes: list[str], good_class: str | None = None,
          threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix, and defect numbers."""
    labels = list(range(len(classes)))
    pred = decide(probs, classes, good_class, threshold)
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)) if len(y) else 0.0,
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)) if len(y) else 0.0,
        "per_class": {c: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(support[k])}
                      for k, c in enumerate(classes)},
        "confusion": confusion_matrix(y, pred, labels=labels).tolist() if len(y) else [],
        "classes": classes,
        "predicted_classes": sorted({classes[k] for k in pred}),
    }
    if good_class is not None:
        out.update(_defect_metrics(y, probs, pred, classes, good_class, threshold))
    return out


def _defect_metrics(y: np.ndarray, probs: np.ndarray, pred: np.ndarray, classes: list[str],
                    good_class: str, threshold: float) -> dict[str, Any]:
    g = classes.index(good_class)
    is_defect, flagged = y != g, pred != g
    scores = defect_scores(probs, classes, good_class)
    both = is_defect.any() and (~is_defect).any()
    return {
        "good_class": good_class,
        "threshold": float(threshold),
        "catch_rate": float(flagged[is_defect].mean()) if is_defect.any() else None,
        "false_alarm_rate": float(flagged[~is_defect].mean()) if (~is_defect).any() else None,
        "defects": int(is_defect.sum()), "defects_caught": int((flagged & is_defect).sum()),
        "good_parts": int((~is_defect).sum()), "false_alarms": int((flagged & ~is_defect).sum()),
        "roc_auc": float(roc_auc_score(is_defect, scores)) if both else None,
    }


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
