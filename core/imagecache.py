"""Decode every photo once into a uint8 array; past a memory limit it lives on disk (memmap)."""

from __future__ import annotations

import functools
import hashlib
import os

import numpy as np

from .datasets import cache_root
from .ddp import main_first
from .device import physical_cores
from .parallel import ProgressFn, imap_progress
from .preprocess import Preprocessing, model_pixels

__all__ = ["decoded_images", "cache_key", "ram_limit_bytes", "use_processes"]

PROCESS_MIN_PHOTOS = 2000  # below this a process pool's start-up costs more than it saves
PROCESS_MIN_CORES = 4


def use_processes(n_photos: int) -> bool:
    """Decode with worker processes on many-core machines and large datasets, else threads.

    ``GRAFT_DECODE_POOL=threads|processes`` overrides. See docs/scale-out.md for the measurements.
    """
    forced = os.environ.get("GRAFT_DECODE_POOL", "").strip().lower()
    if forced in ("threads", "processes"):
        return forced == "processes"
    return n_photos >= PROCESS_MIN_PHOTOS and physical_cores() >= PROCESS_MIN_CORES


def ram_limit_bytes() -> int:
    """Arrays larger than this are memory-mapped from disk instead of held in RAM."""
    return int(float(os.environ.get("GRAFT_CACHE_RAM_MB", "2048")) * 1024 * 1024)


def cache_key(paths: list[str], hashes: list[str], size: int, tag: str = "") -> str:
    h = hashlib.sha256(f"v1|{size}{tag}".encode())
    for path, digest in zip(paths, hashes):
        h.update(f"{digest or path}\n".encode())
    return h.hexdigest()[:20]


def decoded_images(paths: list[str], hashes: list[str], size: int, progress: ProgressFn | None = None,
                   prep: Preprocessing | None = None) -> np.ndarray:
    """An (N, size, size, 3) uint8 array of the photos, decoded at most once per size and preprocessing.

    Each photo goes through :func:`core.preprocess.model_pixels` (default: ``Preprocessing(size)``,
    the whole photo squashed). The array is stored under the cache folder and reused by later runs
    on the same photos. Under DDP rank 0 decodes and the other ranks then read its cache file.
    """
    with main_first():
        return _decoded(paths, hashes, size, progress, prep)


def _decoded(paths: list[str], hashes: list[str], size: int, progress: ProgressFn | None,
             prep: Preprocessing | None) -> np.ndarray:
    prep = prep or Preprocessing(size)
    target = cache_root() / "images" / f"{cache_key(paths, hashes, size, prep.cache_tag())}_{size}.npy"
    nbytes = len(paths) * size * size * 3
    mmap = nbytes > ram_limit_bytes()
    if target.exists():
        try:
            return np.load(target, mmap_mode="r" if mmap else None)
        except (OSError, ValueError):
            target.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp.npy")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
        decode = functools.partial(model_pixels, prep=prep)  # picklable, for worker processes
        for i, arr in enumerate(imap_progress(decode, paths, len(paths), progress,
                                              processes=use_processes(len(paths)))):
            out[i] = arr
        out.flush()
        del out
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # only left behind when decoding was cancelled or failed
    return np.load(target, mmap_mode="r" if mmap else None)
