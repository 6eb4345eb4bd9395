"""Score a packaged model on a labelled dataset (any dataset with the model's classes).

Photos the model was trained or tuned on (matched by content hash with the package's
``training_photos.json``) would flatter it: they are left out of the figures and reported separately.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .check import check_dataset
from .datasets import Sample, load_dataset
from .decision import Targets, read_decision
from .errors import GraftError
from .metrics import score
from .package import training_photo_hashes
from .predict import Predictor
from .verdict import judge

__all__ = ["evaluate_model"]

_EXAMPLES = 5


def evaluate_model(model_path: str | Path, data: str | Path, predictor: Predictor | None = None) -> dict[str, Any]:
    """Accuracy, per-class and defect numbers with 95% ranges and a verdict, on the fresh photos of ``data``.

    Returns:
        :func:`core.metrics.score` of the photos the model did not train on, plus ``verdict``,
        ``unreadable``, and ``overlap``: ``photos`` (readable), ``training_photos`` (how many were
        the model's training photos), ``examples`` (a few of their names), ``known`` (whether the
        package lists its training photos) and ``metrics_training_photos`` (their figures, or None).

    Raises:
        GraftError: classes the model doesn't know, or no readable photos.
    """
    predictor = predictor or Predictor.load(model_path)
    ds = load_dataset(data)
    report = check_dataset(ds)
    classes = predictor.classes
    anomaly = bool(predictor.spec.anomaly)  # good parts only: every class but the good one is a defect
    unknown = [] if anomaly else sorted(set(ds.classes) - set(classes))
    if unknown:
        raise GraftError(f"The dataset has classes the model doesn't know: {', '.join(unknown)}.",
                         hint=f"The model knows: {', '.join(classes)}.")
    samples = [s for s in ds.samples if s.rel in report.hashes]
    if not samples:
        raise GraftError("The dataset has no readable photos.")
    trained = training_photo_hashes(model_path)
    seen = [s for s in samples if trained and report.hashes[s.rel] in trained]
    seen_rels = {s.rel for s in seen}
    fresh = [s for s in samples if s.rel not in seen_rels]
    targets = read_decision(model_path).targets
    figures = _anomaly_figures if anomaly else _figures
    metrics = figures(predictor, fresh, targets)
    metrics["unreadable"] = report.unreadable
    metrics["overlap"] = {"photos": len(samples), "training_photos": len(seen), "known": trained is not None,
                          "examples": [s.rel for s in seen[:_EXAMPLES]],
                          "metrics_training_photos": figures(predictor, seen, targets) if seen else None}
    return metrics


def _figures(predictor: Predictor, samples: list[Sample], targets: Targets) -> dict[str, Any]:
    classes, spec = predictor.classes, predictor.spec
    if not samples:
        return {"n": 0}
    probs = np.concatenate([predictor.probs_from_arrays(np.stack([predictor.preprocess(s.path) for s in chunk]))[0]
                            for chunk in _chunks(samples, 32)])
    y = np.array([classes.index(s.label) for s in samples])
    metrics = score(y, probs, classes, spec.good_class, spec.threshold)
    verdict = judge(metrics, targets)
    metrics["verdict"] = {**verdict.to_dict(), "title": verdict.title}
    return metrics


def _anomaly_figures(predictor: Predictor, samples: list[Sample], targets: Targets) -> dict[str, Any]:
    """A good-parts-only model's figures: ROC AUC, catch rate and false alarms at its threshold, or, on good
    photos alone, the false-alarm rate (``catch_rate`` and ``roc_auc`` are then None)."""
    from .anomaly_fit import anomaly_verdict, binary_labels

    if not samples:
        return {"n": 0}
    probs = np.concatenate([predictor.probs_from_arrays(np.stack([predictor.preprocess(s.path) for s in chunk]))[0]
                            for chunk in _chunks(samples, 32)])
    spec = predictor.spec
    metrics = score(binary_labels([s.label for s in samples], spec.good_class), probs, predictor.classes,
                    spec.good_class, spec.threshold)
    metrics["anomaly"] = {"false_alarm_target": spec.anomaly.get("false_alarm_target"),
                          "threshold_rule": spec.anomaly.get("threshold_rule"), "score_threshold": spec.threshold}
    verdict = anomaly_verdict(metrics, targets)
    metrics["verdict"] = {**verdict.to_dict(), "title": verdict.title}
    return metrics


def _chunks(items: list, n: int) -> list[list]:
    return [items[i:i + n] for i in range(0, len(items), n)]
