"""Frozen-trunk embeddings, computed once per (weights, image size, photos) and cached on disk."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from . import ddp
from .augment import dihedral, to_model_input
from .datasets import cache_root
from .device import Runtime
from .parallel import ProgressFn
from .model import feature_width

__all__ = ["extract_features", "compute_features", "load_cached", "save_cached", "weights_fingerprint"]


def weights_fingerprint(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def _images_fingerprint(images: np.ndarray) -> str:
    if isinstance(images, np.memmap) and images.filename:
        return hashlib.sha256(str(images.filename).encode()).hexdigest()[:20]
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:20]


def _key(trunk: torch.nn.Module, images: np.ndarray, index: np.ndarray | None, view: str, precision: str) -> str:
    key = f"{weights_fingerprint(trunk)}-{_images_fingerprint(images)}-{precision}"
    if index is not None or view:
        extra = np.ascontiguousarray(index if index is not None else []).astype(np.int64).tobytes()
        key += "-" + hashlib.sha256(extra + view.encode()).hexdigest()[:12]
    return key


def load_cached(path: Path, name: str = "features") -> torch.Tensor | None:
    """The tensor a cache file holds, or None when it is missing or damaged (then it is removed)."""
    if not path.exists():
        return None
    try:
        return load_file(str(path))[name]
    except Exception:  # a damaged cache file is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


def save_cached(path: Path, tensor: torch.Tensor, name: str = "features") -> None:
    """Write a cache file atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({name: tensor.contiguous()}, str(tmp))
    tmp.replace(path)


@torch.inference_mode()
def extract_features(trunk: torch.nn.Module, images: np.ndarray, mean: list[float], std: list[float],
                     runtime: Runtime, batch_size: int = 64, progress: ProgressFn | None = None,
                     index: np.ndarray | None = None, view: str = "") -> torch.Tensor:
    """Pooled trunk features (float32, N x D), from the disk cache when possible.

    Under DDP (:mod:`core.ddp`) every rank computes one block of the photos and the blocks are
    gathered, so each rank does 1/N of the pass; rank 0 writes the cache file.

    Args:
        index: only these images (in this order); default all of them.
        view: a mirrored or quarter-turned view of the photos (:data:`core.augment.VIEWS`).
    """
    key = _key(trunk, images, index, view, runtime.precision)
    path = cache_root() / "features" / f"{key}.safetensors"
    cached = load_cached(path)
    if not ddp.any_rank(cached is None):  # every rank has it (one process: it is there)
        return cached
    order = np.arange(len(images)) if index is None else np.asarray(index, dtype=np.int64)
    a, b = ddp.shard_bounds(len(order))[ddp.world().rank]
    part = compute_features(trunk, images, mean, std, runtime, order[a:b], batch_size, progress, view, scale=len(order))
    feats = ddp.gather_rows(part, len(order))
    if ddp.world().is_main:
        save_cached(path, feats)
    return feats


def compute_features(trunk: torch.nn.Module, images: np.ndarray, mean: list[float], std: list[float], runtime: Runtime,
             order: np.ndarray, batch_size: int, progress: ProgressFn | None, view: str, scale: int) -> torch.Tensor:
    """Features of ``images[order]``; progress is reported as a share of ``scale`` photos (all ranks' work)."""
    trunk.eval()
    m, s = torch.tensor(mean, device=runtime.device), torch.tensor(std, device=runtime.device)
    out, t0 = [], time.monotonic()
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        u8 = np.asarray(images[np.sort(chunk)])[np.argsort(np.argsort(chunk))]  # sorted reads from a memmap
        u8 = dihedral(u8, view) if view else u8
        x = to_model_input(torch.from_numpy(u8).to(runtime.device), m, s)
        with runtime.autocast():
            out.append(trunk(x).float().cpu())
        if progress:
            done = min(start + batch_size, len(order))
            rate = done / max(time.monotonic() - t0, 1e-9)
            progress(round(done * scale / len(order)), scale, (len(order) - done) / rate)
    return torch.cat(out) if out else torch.zeros(0, feature_width(trunk))
