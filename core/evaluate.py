"""Score a packaged model on a labelled dataset (any dataset with the model's classes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .check import check_dataset
from .datasets import load_dataset
from .errors import GraftError
from .metrics import score
from .predict import Predictor

__all__ = ["evaluate_model"]


def evaluate_model(model_path: str | Path, data: str | Path, predictor: Predictor | None = None) -> dict[str, Any]:
    """Accuracy, per-class numbers and defect numbers of a model on every readable photo of ``data``."""
    predictor = predictor or Predictor.load(model_path)
    ds = load_dataset(data)
    report = check_dataset(ds)
    classes = predictor.classes
    unknown = sorted(set(ds.classes) - set(classes))
    if unknown:
        raise GraftError(f"The dataset has classes the model doesn't know: {', '.join(unknown)}.",
                         hint=f"The model knows: {', '.join(classes)}.")
    samples = [s for s in ds.samples if s.rel in report.hashes]
    if not samples:
        raise GraftError("The dataset has no readable photos.")
    probs = np.concatenate([predictor.probs_from_arrays(np.stack([predictor.preprocess(s.path) for s in chunk]))[0]
                            for chunk in _chunks(samples, 32)])
    y = np.array([classes.index(s.label) for s in samples])
    metrics = score(y, probs, classes, predictor.spec.good_class, predictor.spec.threshold)
    metrics["unreadable"] = report.unreadable
    return metrics


def _chunks(items: list, n: int) -> list[list]:
    return [items[i:i + n] for i in range(0, len(items), n)]
