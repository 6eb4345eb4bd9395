"""Stratified, seeded train/val/test split that keeps exact copies together."""

from __future__ import annotations

import random
from collections import defaultdict

from .datasets import SPLITS, Dataset

__all__ = ["split_indices"]


def split_indices(ds: Dataset, usable: list[int], hashes: dict[str, str], *, val: float = 0.15,
                  test: float = 0.15, seed: int = 0) -> dict[str, list[int]]:
    """Split sample indices per class; a CSV ``split`` column wins where present.

    Copies of the same photo (same content hash) always land in the same split so that
    the test score isn't flattered. Every class keeps at least one training image.
    """
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    free: dict[str, list[list[int]]] = defaultdict(list)
    groups: dict[str, list[int]] = defaultdict(list)
    for i in usable:
        s = ds.samples[i]
        if s.split:
            out[s.split].append(i)
        else:
            groups[hashes.get(s.rel, s.rel)].append(i)
    for members in groups.values():
        free[ds.samples[members[0]].label].append(members)
    rng = random.Random(seed)
    for label in sorted(free):
        _split_class(free[label], rng, val, test, out)
    return {k: sorted(v) for k, v in out.items()}


def _split_class(groups: list[list[int]], rng: random.Random, val: float, test: float,
                 out: dict[str, list[int]]) -> None:
    rng.shuffle(groups)
    n = len(groups)
    n_test = round(n * test) if n >= 3 else 0
    n_val = max(1, round(n * val)) if n >= 2 else 0
    if n >= 3 and test > 0:
        n_test = max(1, n_test)
    while n_test + n_val >= n and (n_test or n_val):  # keep at least one for training
        if n_test >= n_val and n_test:
            n_test -= 1
        else:
            n_val -= 1
    for k, members in enumerate(groups):
        split = "test" if k < n_test else "val" if k < n_test + n_val else "train"
        out[split].extend(members)
