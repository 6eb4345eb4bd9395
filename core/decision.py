"""How a run acts on its scores: the threshold, the uncertain band and the user's targets, in one file.

``model/decision.json`` lives in the model package (``model.json`` names it, and keeps a copy of the
threshold for readers that don't know the file), so a package copied on its own still decides like
Graft: :class:`core.predict.Predictor`, the report, the ONNX export and the pages all read it with
:func:`read_decision`, and only :func:`save_decision` changes it (the copy in ``model.json`` follows).
Saving never touches the held-out figures in ``metrics.json``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import GraftError
from .jsonio import read_json, write_json_atomic

__all__ = ["Decision", "Targets", "read_decision", "save_decision", "write_decision", "DECISION_FILE",
           "DEFAULT_BAND", "CHOSEN_ON"]

DECISION_FILE, FORMAT = "decision.json", "graft-decision"
DEFAULT_BAND = 0.10  # defect scores within 0.05 of the threshold go to a person
# where a threshold came from; "test" (chosen while looking at the test photos) makes test figures optimistic
CHOSEN_ON = ("validation", "out-of-fold", "test", "set by hand")


@dataclass(frozen=True)
class Targets:
    """What "good enough for a pilot" means to the user: the catch rate to reach, the false alarms to stay under."""

    catch_rate: float = 0.95
    false_alarm_rate: float = 0.05

    def __post_init__(self) -> None:
        for name in ("catch_rate", "false_alarm_rate"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0 or math.isnan(value):
                raise GraftError(f"The target {name.replace('_', ' ')} must be between 0% and 100%.")


@dataclass(frozen=True)
class Decision:
    """The contents of ``decision.json``.

    ``threshold``: a part is flagged when its defect score (1 - P(good)) is at least this.
    ``uncertain_band``: the width of the band around the threshold whose photos go to a person (without
    a good class: the two most likely classes are closer than this). ``chosen_on`` says where the
    threshold was chosen; ``threshold_from_training`` keeps the one training chose.
    """

    threshold: float = 0.5
    uncertain_band: float = DEFAULT_BAND
    targets: Targets = field(default_factory=Targets)
    good_class: str | None = None
    chosen_on: str = "validation"
    threshold_from_training: float | None = None
    saved: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": 1, **asdict(self)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Decision":
        try:
            targets = Targets(**(d.get("targets") or {}))
            return cls(threshold=float(d.get("threshold", 0.5)), uncertain_band=float(d.get("uncertain_band", 0.0)),
                       targets=targets, good_class=d.get("good_class"), chosen_on=str(d.get("chosen_on", "")),
                       threshold_from_training=(None if d.get("threshold_from_training") is None
                                                else float(d["threshold_from_training"])),
                       saved=str(d.get("saved", "")))
        except (TypeError, ValueError):
            raise GraftError("This model's decision.json is damaged.") from None


def read_decision(path: str | Path) -> Decision:
    """The decision settings of a run folder or model folder.

    A package made before decision files existed decides with the threshold in its ``model.json``
    and no uncertain band.

    Raises:
        GraftError: no model, or ``model.json`` names a decision file that is missing or damaged.
    """
    from .modeldir import SPEC_FILE, resolve_model_dir

    model_dir = resolve_model_dir(path)
    spec = read_json(model_dir / SPEC_FILE, {}) or {}
    name = spec.get("decision")
    if not name:
        threshold = float(spec.get("threshold", 0.5))
        return Decision(threshold=threshold, uncertain_band=0.0, good_class=spec.get("good_class"), chosen_on="",
                        threshold_from_training=float((spec.get("info") or {}).get("threshold_from_training",
                                                                                   threshold)))
    if name != DECISION_FILE:
        raise GraftError("This model's description points at a decision file outside its package; it was refused.")
    data = read_json(model_dir / DECISION_FILE)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GraftError("This model package is missing its decision.json (threshold and uncertain band).",
                         hint="Copy the whole model folder: model.safetensors, model.json and decision.json.")
    return Decision.from_json(data)


def save_decision(path: str | Path, *, threshold: float | None = None, uncertain_band: float | None = None,
                  targets: Targets | dict[str, float] | None = None, chosen_on: str | None = None) -> Decision:
    """Change some decision settings of a finished run, atomically; the others stay.

    Args:
        path: the run folder (or its ``model/`` folder).
        threshold: flag parts from this defect score up (0..1).
        uncertain_band: width of the "send to a person" band (0..1; 0 sends none).
        targets: the catch rate to reach and the false-alarm rate to stay under.
        chosen_on: where a new threshold was chosen (one of :data:`CHOSEN_ON`); default "set by hand".

    Returns:
        The decision as stored.

    Raises:
        GraftError: no finished model, a threshold without a good class, or a value out of range.
    """
    from .modeldir import SPEC_FILE, resolve_model_dir

    model_dir = resolve_model_dir(path)
    current = read_decision(model_dir)
    changes: dict[str, Any] = {"saved": time.strftime("%Y-%m-%d %H:%M:%S")}
    if threshold is not None:
        changes.update(threshold=_share(threshold, "The threshold"), chosen_on=chosen_on or "set by hand")
        if not current.good_class:
            raise GraftError("This model has no good class, so it has no threshold to set.",
                             hint="Mark the good class on the Data page and train again.")
    if uncertain_band is not None:
        changes["uncertain_band"] = _share(uncertain_band, "The uncertain band")
    if targets is not None:
        changes["targets"] = targets if isinstance(targets, Targets) else Targets(**targets)
    if current.threshold_from_training is None:
        changes["threshold_from_training"] = current.threshold
    decision = replace(current, **changes)
    write_decision(model_dir, decision)
    _point_spec_at_decision(model_dir / SPEC_FILE, decision.threshold)
    if (decision.threshold, decision.uncertain_band) != (current.threshold, current.uncertain_band):
        _drop_stale_exports(model_dir)  # their metadata and snippet carry the old decision
    return decision


def write_decision(model_dir: str | Path, decision: Decision) -> None:
    """Write ``decision.json`` into a model folder (atomically)."""
    write_json_atomic(Path(model_dir) / DECISION_FILE, decision.to_json())


def _point_spec_at_decision(spec_file: Path, threshold: float) -> None:
    """model.json names the decision file (an older package gets the pointer) and copies its threshold."""
    spec = read_json(spec_file)
    if isinstance(spec, dict) and (spec.get("decision") != DECISION_FILE or spec.get("threshold") != threshold):
        spec.update(decision=DECISION_FILE, threshold=threshold)
        write_json_atomic(spec_file, spec)


def _share(value: float, what: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise GraftError(f"{what} must be between 0 and 1.")
    return value


def _drop_stale_exports(model_dir: Path) -> None:
    """An exported ONNX file and bundle carry the old threshold in their metadata: remove them so the
    next export is made afresh (export only re-exports when the *weights* changed)."""
    for folder in {model_dir, model_dir.parent}:
        for name in ("model.onnx", "model-bundle.zip"):
            (folder / name).unlink(missing_ok=True)
