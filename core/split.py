"""Stratified, seeded train/val/test split that keeps copies and near-copies together."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Mapping

from .datasets import SPLITS, Dataset

__all__ = ["split_indices", "group_of"]


def group_of(ds: Dataset, i: int, groups: Mapping[str, object]) -> object:
    """The copy group of sample ``i`` (its own path when the check didn't group it)."""
    rel = ds.samples[i].rel
    return groups.get(rel, rel)


def split_indices(ds: Dataset, usable: list[int], groups: Mapping[str, object], *, val: float = 0.15,
                  test: float = 0.15, seed: int = 0, fixed: bool = True) -> dict[str, list[int]]:
    """Split sample indices per class; a CSV ``split`` column wins where present.

    Copies of a photo (same group: exact copies share a content hash, near-copies share the group
    the dataset check gave them) always land in the same split, so the test score isn't flattered;
    a copy the CSV leaves free follows its copy's fixed split. Every class keeps at least one
    training photo.

    Args:
        ds: the dataset.
        usable: the sample indices to split.
        groups: sample ``rel`` -> group key (``CheckReport.groups``, or content hashes).
        val, test: shares of each class's groups for validation and test.
        seed: the shuffle seed.
        fixed: honour the CSV's ``split`` column (False: split everything, e.g. inside a fold).
    """
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    by_group: dict[object, list[int]] = defaultdict(list)
    for i in usable:
        by_group[group_of(ds, i, groups)].append(i)
    free: dict[str, list[list[int]]] = defaultdict(list)
    for members in by_group.values():
        pinned = next((ds.samples[i].split for i in members if fixed and ds.samples[i].split), None)
        if pinned is None:
            free[ds.samples[members[0]].label].append(members)
            continue
        for i in members:  # a fixed split wins; its free copies follow it
            out[ds.samples[i].split if ds.samples[i].split else pinned].append(i)
    rng = random.Random(seed)
    for label in sorted(free):
        _split_class(free[label], rng, val, test, out)
    return {k: sorted(v) for k, v in out.items()}


def _split_class(groups: list[list[int]], rng: random.Random, val: float, test: float,
                 out: dict[str, list[int]]) -> None:
    groups.sort()  # the order groups were found in must not change the split
    rng.shuffle(groups)
    n = len(groups)
    n_test = round(n * test) if n >= 3 else 0
    n_val = max(1, round(n * val)) if n >= 2 and val > 0 else 0
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
