"""``predictions.csv``: every scored photo of a run at full precision, one row per photo and split.

Columns: ``image`` (path in the dataset), ``split`` (``val``, ``test`` or ``oof`` for out-of-fold),
``fold`` (1..K for cross-validation, else empty), ``label`` (true class), ``predicted`` (the class at
``threshold``), ``correct``, ``threshold`` (the threshold this row was decided with in training: the
validation threshold, or for cross-validation the one chosen on the *other* folds), and ``p_<class>``
per class. Probabilities are written with ``repr`` (the shortest text that reads back to the same
float), so every figure can be recomputed from this file exactly; metrics are computed from it when
read (:mod:`core.results`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import GraftError

__all__ = ["ScoredRows", "write_predictions", "read_predictions", "PREDICTIONS_FILE", "SPLIT_ORDER"]

PREDICTIONS_FILE = "predictions.csv"
SPLIT_ORDER = ("test", "oof", "val")  # which split holds the headline numbers, when present
_FIXED = ["image", "split", "fold", "label", "predicted", "correct", "threshold"]


@dataclass
class ScoredRows:
    """Photos of one split, scored: what to write for them."""

    split: str
    images: Sequence[str]
    labels: Sequence[str]
    probs: np.ndarray  # (N, K) in the order of the classes
    predicted: Sequence[str]
    thresholds: np.ndarray | float  # per photo, or one for all
    folds: Sequence[int] | None = None


def write_predictions(path: str | Path, classes: list[str], parts: Sequence[ScoredRows]) -> None:
    """Write every part's rows (atomically: a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(_FIXED + [f"p_{c}" for c in classes])
        for part in parts:
            thresholds = np.broadcast_to(np.asarray(part.thresholds, dtype=np.float64), (len(part.images),))
            for i, image in enumerate(part.images):
                fold = "" if part.folds is None else str(int(part.folds[i]))
                w.writerow([image, part.split, fold, part.labels[i], part.predicted[i],
                            part.labels[i] == part.predicted[i], repr(float(thresholds[i]))]
                           + [repr(float(p)) for p in part.probs[i]])
    os.replace(tmp, path)


def read_predictions(path: str | Path) -> tuple[list[dict[str, str]], list[str]]:
    """(rows as dicts, classes) of a predictions file; older files (5-decimal, no fold/threshold) read too.

    Raises:
        GraftError: missing, or without class probabilities.
    """
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
