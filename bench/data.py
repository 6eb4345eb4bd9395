"""Throwaway datasets for the bench: synthetic defect photos, fixed CSV splits, cheap filler JPEGs."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from core import synth

__all__ = ["defect_photos", "with_fixed_split", "filler_jpegs", "dataset_paths"]


def defect_photos(out: Path, per_class: int, size: int, *, seed: int, surfaces: Sequence[str] | None = None,
                  classes: Sequence[str] = synth.DEFAULT_CLASSES) -> Path:
    """Class folders of core.synth photos (JPEG, deterministic for a seed)."""
    return synth.generate(out, per_class=per_class, size=size, seed=seed, surfaces=surfaces, classes=classes)


def dataset_paths(root: Path) -> list[tuple[str, str]]:
    """(relative path, class) of every JPEG in a folder of class folders, sorted."""
    return [(p.relative_to(root).as_posix(), p.parent.name) for p in sorted(root.glob("*/*.jpg"))]


def with_fixed_split(root: Path, train_per_class: int) -> Path:
    """Write ``labels.csv`` next to the class folders: the first photos of each class train, the rest validate.

    A CSV split fixes the number of training photos exactly (so epochs have only full batches).
    Returns the CSV, which is the dataset to train on.
    """
    seen: dict[str, int] = {}
    rows = []
    for rel, label in dataset_paths(root):
        k = seen.get(label, 0)
        seen[label] = k + 1
        rows.append({"image": rel, "label": label, "split": "train" if k < train_per_class else "val"})
    path = root / "labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def filler_jpegs(out: Path, n: int, size: int, *, seed: int = 0, classes: Sequence[str] = ("ok", "defect")) -> Path:
    """``n`` distinct, cheap JPEGs (smooth random colour fields) in class folders, for scale tests.

    core.synth takes ~25 ms a photo; these take about 1 ms, so 10k of them are ready in seconds.
    """
    rng = np.random.default_rng(seed)
    for label in classes:
        (out / label).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        img.save(out / classes[i % len(classes)] / f"img_{i:06d}.jpg", "JPEG", quality=85)
    return out
