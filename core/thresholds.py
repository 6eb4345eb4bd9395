"""The model's decision threshold: saving a new one to the model package."""

from __future__ import annotations

import math
import time
from pathlib import Path

from .errors import GraftError
from .jsonio import read_json, write_json_atomic
from .metrics import score
from .results import load_predictions

__all__ = ["save_threshold"]


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

