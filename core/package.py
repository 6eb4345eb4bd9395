"""The model package: ``model.safetensors`` + ``model.json``; everything needed to predict, no pickle."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from . import __version__
from .backbones import build, check_name
from .errors import GraftError
from .jsonio import read_json, write_json_atomic
from .model import GraftModel, Task
from .weights import load_state_dict_file

__all__ = ["ModelSpec", "save_package", "load_package", "resolve_model_dir", "trunk_from_run", "model_package_zip",
           "WEIGHTS_FILE", "SPEC_FILE"]

WEIGHTS_FILE, SPEC_FILE, FORMAT = "model.safetensors", "model.json", "graft-model"


@dataclass
class ModelSpec:
    """What ``model.json`` holds."""

    backbone: str
    tasks: list[Task]
    classes: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    interpolation: str = "bilinear"
    good_class: str | None = None
    threshold: float = 0.5
    head_dropout: float = 0.2
    info: dict[str, Any] = field(default_factory=dict)  # strategy, start, dataset, created...

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": 1, "graft_version": __version__, "weights": WEIGHTS_FILE,
                "backbone": self.backbone, "image_size": self.image_size, "resize": "squash",
                "mean": self.mean, "std": self.std, "interpolation": self.interpolation,
                "classes": self.classes, "good_class": self.good_class, "threshold": self.threshold,
                "tasks": [{"name": t.name, "classes": list(t.classes), "good_class": t.good_class} for t in self.tasks],
                "head_dropout": self.head_dropout, "info": self.info}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ModelSpec":
        if d.get("format") != FORMAT:
            raise GraftError("This folder does not hold a Graft model (model.json is not one).")
        if d.get("weights", WEIGHTS_FILE) != WEIGHTS_FILE:
            raise GraftError("This model's description points at a file outside its package; it was refused.")
        try:
            tasks = [Task(t["name"], tuple(t["classes"]), t.get("good_class")) for t in d["tasks"]]
            return cls(backbone=d["backbone"], tasks=tasks, classes=list(d["classes"]), image_size=int(d["image_size"]),
                       mean=[float(v) for v in d["mean"]], std=[float(v) for v in d["std"]],
                       interpolation=d.get("interpolation", "bilinear"), good_class=d.get("good_class"),
                       threshold=float(d.get("threshold", 0.5)), head_dropout=float(d.get("head_dropout", 0.2)),
                       info=dict(d.get("info", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise GraftError(f"This model's model.json is incomplete or damaged ({exc}).") from None


def save_package(model: GraftModel, spec: ModelSpec, out_dir: str | Path) -> Path:
    """Write weights and spec; the spec goes last so a package with a spec is always complete."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec.info.setdefault("created", time.strftime("%Y-%m-%d %H:%M:%S"))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = out / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(tmp), metadata={"format": FORMAT})
    tmp.replace(out / WEIGHTS_FILE)
    write_json_atomic(out / SPEC_FILE, spec.to_json())
    return out


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a run folder or its ``model/`` folder."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / SPEC_FILE).is_file():
            return candidate
    raise GraftError(f"No finished model in '{path}'.", hint="Pick a run that finished, or its model/ folder.")


def load_package(path: str | Path) -> tuple[GraftModel, ModelSpec]:
    """Rebuild a packaged model (weights only, never unpickled)."""
    model_dir = resolve_model_dir(path)
    raw = read_json(model_dir / SPEC_FILE)
    if not isinstance(raw, dict):
        raise GraftError("This model's model.json can't be read.")
    spec = ModelSpec.from_json(raw)
    check_name(spec.backbone)
    model = GraftModel(build(spec.backbone, "scratch", image_size=spec.image_size), spec.tasks, spec.head_dropout)
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


def model_package_zip(run_dir: str | Path) -> bytes:
    """The run's model package (``model.safetensors`` + ``model.json``) as zip bytes, for a download.

    Raises:
        GraftError: the run has no finished model.
    """
    import io
    import zipfile

    model_dir = resolve_model_dir(run_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in (WEIGHTS_FILE, SPEC_FILE):
            zf.write(model_dir / name, arcname=f"model/{name}")
    return buf.getvalue()
