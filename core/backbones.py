"""Backbones: the curated list, and one way to build a trunk from any start point."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from .catalogue import CURATED, DEFAULT_BACKBONE, BackboneInfo, list_backbones
from .errors import GraftError
from .hub import pretrained_available
from .weights import WeightsFit, fit_weights, load_state_dict_file

__all__ = ["BackboneInfo", "CURATED", "DEFAULT_BACKBONE", "list_backbones", "build", "check_name",
           "data_config", "pretrained_available", "StartPoint", "parse_start", "measure_speed",
           "weights_cached", "native_size", "check_weights_file", "download_weights"]


@dataclass(frozen=True)
class StartPoint:
    """Where the trunk's weights come from."""

    kind: str  # imagenet | scratch | file | run
    path: str = ""

    def describe(self) -> str:
        return {"imagenet": "ImageNet pretrained", "scratch": "from scratch (random weights)",
                "file": f"weights file {Path(self.path).name}", "run": f"earlier model {Path(self.path).name}"}[self.kind]


def parse_start(start: str) -> StartPoint:
    """Parse ``imagenet``, ``scratch``, ``file:PATH`` or ``run:DIR``."""
    kind, _, path = start.partition(":")
    if kind in ("imagenet", "scratch") and not path:
        return StartPoint(kind)
    if kind in ("file", "run") and path:
        return StartPoint(kind, path)
    raise GraftError(f"Unknown start point '{start}'.", hint="Use imagenet, scratch, file:PATH or run:RUN_FOLDER.")


def check_name(name: str) -> str:
    """Return ``name`` if timm knows it, else raise with close matches."""
    arch = name.split(".", 1)[0]
    if timm.is_model(arch):
        return name
    close = difflib.get_close_matches(arch, timm.list_models(), n=3)
    hint = f"Did you mean {', '.join(close)}?" if close else "See `python -m core backbones` for good choices."
    raise GraftError(f"Unknown backbone '{name}'.", hint=hint)


def _create(name: str, image_size: int, **kwargs: Any) -> nn.Module:
    """timm's factory with a pooled-feature output; fixed-size models (ViT) adapt to the image size."""
    model = timm.create_model(name, num_classes=0, **kwargs)
    native = getattr(model, "pretrained_cfg", {}).get("input_size", (3, image_size, image_size))[-1]
    if getattr(model, "pretrained_cfg", {}).get("fixed_input_size") and image_size != native:
        model = timm.create_model(name, num_classes=0, img_size=image_size, **kwargs)
    return model


def build(name: str, start: str | StartPoint = "scratch", *, image_size: int = 224) -> nn.Module:
    """Build a trunk that returns pooled features (``num_classes=0``).

    Args:
        name: a timm model name, optionally with a pretrained tag (``resnet18.a1_in1k``).
        start: ``imagenet``, ``scratch``, ``file:PATH`` (weights only); ``run:`` starts are
            resolved by :mod:`core.package`, which hands over the state dict as ``file``.
        image_size: the training image size (fixed-size models such as ViT are resized to it).
    """
    check_name(name)
    start = parse_start(start) if isinstance(start, str) else start
    if start.kind == "scratch":
        return _create(name, image_size, pretrained=False)
    if start.kind == "imagenet":
        return _create_pretrained(name, image_size)
    if start.kind == "file":
        model = _create(name, image_size, pretrained=False)
        load_into(model, load_state_dict_file(start.path), source=Path(start.path).name, backbone=name)
        return model
    raise GraftError("Start from an earlier model through core.package.build_from_run.")


def load_into(model: nn.Module, state: dict[str, torch.Tensor], *, source: str, backbone: str = "") -> WeightsFit:
    """Load ``state`` through the model's own timm conversion; refuse weights that don't fit.

    Raises:
        GraftError: trunk tensors are missing, have another shape or belong to another
            architecture; the message lists them and names the file's format.
    """
    fit = fit_weights(model, state, source=source)
    if not fit.ok:
        raise fit.refusal(backbone or type(model).__name__)
    model.load_state_dict(fit.state, strict=False)  # only num_batches_tracked counters may be absent
    return fit


def native_size(name: str) -> int:
    """The image size ``name``'s pretrained weights were trained at (224 when timm doesn't say)."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # an architecture without pretrained configs
        cfg = None
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else 224


def check_weights_file(path: str | Path, backbone: str, image_size: int | None = None) -> WeightsFit:
    """How well a weights file fits ``backbone`` at ``image_size`` (default: its native size)."""
    check_name(backbone)
    model = _create(backbone, image_size or native_size(backbone), pretrained=False)
    return fit_weights(model, load_state_dict_file(path), source=Path(path).name)


def data_config(model: nn.Module) -> dict[str, Any]:
    """Mean, std and interpolation from the model's own pretrained config (never hard-coded)."""
    cfg = timm.data.resolve_model_data_config(model)
    return {"mean": list(cfg["mean"]), "std": list(cfg["std"]), "interpolation": cfg["interpolation"]}


# --- pretrained weights, online or from the local cache ------------------------------------

def _create_pretrained(name: str, image_size: int) -> nn.Module:
    model = _create(name, image_size, pretrained=False)
    cached = _cached_weights_file(model)
    if cached is not None:
        load_into(model, load_state_dict_file(cached), source="the local cache", backbone=name)
        return model
    if not pretrained_available():
        raise GraftError(
            f"Pretrained ImageNet weights for {name} can't be downloaded: this computer is offline.",
            hint="Start from scratch, from an earlier model, or from a weights file (.safetensors) instead.",
        )
    try:
        return _create(name, image_size, pretrained=True)
    except Exception as exc:  # network, hub or disk errors all mean "not available now"
        raise GraftError(
            f"Pretrained weights for {name} could not be fetched ({type(exc).__name__}).",
            hint="Check the internet connection, or start from scratch, an earlier model or a weights file.",
        ) from None


def _cached_weights_file(model: nn.Module) -> Path | None:
    """The hub cache's copy of the weights, so no network is touched when they are there."""
    return _cached_file((getattr(model, "pretrained_cfg", None) or {}).get("hf_hub_id"))


def _cached_file(repo: str | None) -> Path | None:
    if not repo:
        return None
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "open_clip_model.safetensors"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def weights_cached(name: str) -> bool:
    """Whether ImageNet weights for ``name`` are already on this computer (usable offline)."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # unknown name or tag: simply "not cached"
        return False
    return _cached_file(getattr(cfg, "hf_hub_id", None)) is not None


def measure_speed(name: str, image_size: int = 160, batch_size: int = 16, repeats: int = 3) -> dict[str, float]:
    """Images per second for inference and for a training step of ``name`` on this machine.

    Architecture only (random weights): speed doesn't depend on the weights' values.
    """
    import time

    from .device import select_runtime

    runtime = select_runtime()
    model = build(check_name(name), "scratch", image_size=image_size).to(runtime.device)
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, 3, image_size, image_size, device=runtime.device).contiguous(
        memory_format=torch.channels_last)

    def timed(step: Any) -> float:
        step()  # warm-up: first calls pick kernels
        t0 = time.perf_counter()
        for _ in range(repeats):
            step()
        return batch_size * repeats / (time.perf_counter() - t0)

    def infer() -> None:
        with torch.inference_mode(), runtime.autocast():
            model.eval()(x)

    def train() -> None:
        with runtime.autocast():
            out = model.train()(x)
        out.float().mean().backward()

    return {"infer_ips": timed(infer), "train_ips": timed(train), "precision": runtime.precision}


def download_weights(name: str, out: str | Path) -> Path:
    """Write ``name``'s timm pretrained weights (classifier included) to one safetensors file.

    For carrying into an offline plant: run it where the hub is reachable (or its cache holds
    the weights), then use the file as ``file:PATH``.

    Raises:
        GraftError: offline without a cached copy (within seconds), or the download failed.
    """
    from safetensors.torch import save_file

    check_name(name)
    cached = _cached_weights_file(timm.create_model(name, pretrained=False))
    if cached is None and not pretrained_available():
        raise GraftError(f"Can't download the weights of {name}: the model hub can't be reached from here.",
                         hint="Run this command on a computer with internet access, then copy the file over.")
    overlay = {"file": str(cached)} if cached is not None else None
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as exc:  # network, hub, missing weights for this tag...
        raise GraftError(f"The weights of {name} could not be fetched ({type(exc).__name__}: {exc}).",
                         hint="Check the name (`python -m core backbones`) and the internet connection.") from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": "timm", "architecture": name})
    tmp.replace(out)
    return out
