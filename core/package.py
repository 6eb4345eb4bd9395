"""The model package: ``model.safetensors`` + ``model.json``; everything needed to predict, no pickle."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from . import __version__
from .augment import views_words
from .backbones import build, check_name
from .config import VIEW_COUNTS
from .decision import DECISION_FILE, Decision, read_decision, write_decision
from .errors import GraftError
from .jsonio import read_json, write_json_atomic
from .model import GraftModel, Task
from .modeldir import (MEMORY_FILE, SPEC_FILE, TRAINING_PHOTOS_FILE, WEIGHTS_FILE, model_package_zip,  # torch-free
                       resolve_model_dir)
from .preprocess import Preprocessing
from .weights import load_state_dict_file

__all__ = ["ModelSpec", "save_package", "load_package", "resolve_model_dir", "trunk_from_run", "model_package_zip",
           "training_photo_hashes", "WEIGHTS_FILE", "SPEC_FILE", "TRAINING_PHOTOS_FILE", "MEMORY_FILE"]

FORMAT = "graft-model"
_PHOTOS_FORMAT = "graft-training-photos"


@dataclass
class ModelSpec:
    """What ``model.json`` holds, plus the decision settings read from ``decision.json``.

    ``threshold`` and ``uncertain_band`` are the package's :class:`core.decision.Decision`, kept in
    ``decision.json`` (``model.json`` names that file and carries a copy of the threshold that
    :func:`core.decision.save_decision` keeps equal); the preprocessing fields are
    :class:`core.preprocess.Preprocessing`'s.
    """

    backbone: str
    tasks: list[Task]
    classes: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    interpolation: str = "bilinear"  # what Graft's resize uses (not the backbone's own preference)
    good_class: str | None = None
    threshold: float = 0.5
    head_dropout: float = 0.2
    info: dict[str, Any] = field(default_factory=dict)  # strategy, start, dataset, created... (no paths)
    resize: str = "squash"
    bit_depth: int | None = None
    pad_colour: tuple[int, int, int] = (0, 0, 0)
    uncertain_band: float = 0.0
    training_photos: str | None = None  # TRAINING_PHOTOS_FILE when the package lists its training photos
    anomaly: dict[str, Any] | None = None  # good-parts-only models (core.anomaly): stages, normaliser, memory...
    views: int = 1  # test-time views (core.augment.VIEW_COUNTS); packages from before the field: 1

    @property
    def preprocessing(self) -> Preprocessing:
        """How a photo becomes this model's input (see :mod:`core.preprocess`)."""
        return Preprocessing(size=self.image_size, resize=self.resize, bit_depth=self.bit_depth,
                             pad_colour=tuple(self.pad_colour), mean=tuple(self.mean), std=tuple(self.std))

    def to_json(self) -> dict[str, Any]:
        prep = self.preprocessing
        return {"format": FORMAT, "format_version": 1, "graft_version": __version__, "weights": WEIGHTS_FILE,
                "decision": DECISION_FILE, "backbone": self.backbone, **prep.to_json(),
                "preprocessing": prep.describe(), "classes": self.classes, "good_class": self.good_class,
                "threshold": self.threshold,  # a copy of decision.json's, for readers that don't know that file
                "tasks": [{"name": t.name, "classes": list(t.classes), "good_class": t.good_class} for t in self.tasks],
                "head_dropout": self.head_dropout, "training_photos": self.training_photos, "info": self.info,
                "views": self.views, "views_meaning": views_words(self.views),
                **({"mode": "anomaly", "anomaly": self.anomaly} if self.anomaly else {})}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ModelSpec":
        if d.get("format") != FORMAT:
            raise GraftError("This folder does not hold a Graft model (model.json is not one).")
        if d.get("weights", WEIGHTS_FILE) != WEIGHTS_FILE:
            raise GraftError("This model's description points at a file outside its package; it was refused.")
        try:
            tasks = [Task(t["name"], tuple(t["classes"]), t.get("good_class")) for t in d["tasks"]]
            prep = Preprocessing.from_json(d)
            photos = d.get("training_photos")
            if photos not in (None, TRAINING_PHOTOS_FILE):
                raise GraftError("This model's description points at a file outside its package; it was refused.")
            return cls(backbone=d["backbone"], tasks=tasks, classes=list(d["classes"]), image_size=prep.size,
                       mean=list(prep.mean), std=list(prep.std), interpolation="bilinear",
                       good_class=d.get("good_class"), threshold=float(d.get("threshold", 0.5)),
                       head_dropout=float(d.get("head_dropout", 0.2)), info=dict(d.get("info", {})),
                       resize=prep.resize, bit_depth=prep.bit_depth, pad_colour=prep.pad_colour,
                       training_photos=photos, views=_views(d.get("views", 1)),
                       anomaly=dict(d["anomaly"]) if d.get("mode") == "anomaly" else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise GraftError(f"This model's model.json is incomplete or damaged ({exc}).") from None


def _views(value: Any) -> int:
    views = int(value)
    if views not in VIEW_COUNTS:
        raise ValueError(f"views must be one of {', '.join(map(str, VIEW_COUNTS))}, not {views}")
    return views


def save_package(model: GraftModel, spec: ModelSpec, out_dir: str | Path, decision: Decision | None = None,
                 training_hashes: list[str] | None = None) -> Path:
    """Write weights, the decision file, the training photos' hashes and the spec.

    The spec goes last so a package with a spec is always complete.

    Args:
        model: the trained model.
        spec: its description; ``threshold`` and ``uncertain_band`` go to ``decision.json``.
        out_dir: the model folder.
        decision: the full decision settings (default: from ``spec``).
        training_hashes: SHA-256 content hashes of every photo the model was trained or tuned on, so
            ``python -m core evaluate`` can tell fresh photos from them.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec.info.setdefault("created", time.strftime("%Y-%m-%d %H:%M:%S"))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = out / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(tmp), metadata={"format": FORMAT})
    tmp.replace(out / WEIGHTS_FILE)
    decision = decision or Decision(threshold=spec.threshold, uncertain_band=spec.uncertain_band,
                                    good_class=spec.good_class, threshold_from_training=spec.threshold)
    write_decision(out, decision)
    spec.threshold, spec.uncertain_band = decision.threshold, decision.uncertain_band
    if training_hashes is not None:
        write_json_atomic(out / TRAINING_PHOTOS_FILE, {"format": _PHOTOS_FORMAT, "sha256": sorted(set(training_hashes))})
        spec.training_photos = TRAINING_PHOTOS_FILE
    write_json_atomic(out / SPEC_FILE, spec.to_json())
    return out


def training_photo_hashes(path: str | Path) -> set[str] | None:
    """The content hashes of the photos a packaged model was trained or tuned on; None when not recorded."""
    model_dir = resolve_model_dir(path)
    spec = read_json(model_dir / SPEC_FILE, {}) or {}
    if spec.get("training_photos") != TRAINING_PHOTOS_FILE:
        return None
    data = read_json(model_dir / TRAINING_PHOTOS_FILE)
    if not isinstance(data, dict) or data.get("format") != _PHOTOS_FORMAT:
        return None
    return {str(h) for h in data.get("sha256", [])}


def load_package(path: str | Path) -> tuple[GraftModel, ModelSpec]:
    """Rebuild a packaged model (weights only, never unpickled)."""
    model_dir = resolve_model_dir(path)
    raw = read_json(model_dir / SPEC_FILE)
    if not isinstance(raw, dict):
        raise GraftError("This model's model.json can't be read.")
    spec = ModelSpec.from_json(raw)
    decision = read_decision(model_dir)
    spec.threshold, spec.uncertain_band = decision.threshold, decision.uncertain_band
    check_name(spec.backbone)
    model = GraftModel(build(spec.backbone, "scratch", image_size=spec.image_size), spec.tasks, spec.head_dropout,
                       views=spec.views)
    state = load_state_dict_file(model_dir / WEIGHTS_FILE)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise GraftError("This model's weights don't match its description (wrong architecture or classes).") from None
    model.eval()
    return model, spec


def trunk_from_run(run_dir: str | Path) -> tuple[torch.nn.Module, ModelSpec]:
    """The trunk (and spec) of an earlier model, to transfer it to a new task."""
    model, spec = load_package(run_dir)
    return model.trunk, spec


