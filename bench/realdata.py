"""The real photos of ``../shared`` and the fixed protocols the "Transfer on real photos" section uses.

NEU (steel surfaces, 6 classes): a fixed test set of 100 photos per class; training sets of N photos per
class drawn from the rest with a seed (nested: the 5 photos of seed s are among its 10, 20 and 50).
Bottle (MVTec AD): every good photo (train/good + test/good) and every defect pooled, then split once
with a fixed seed into 30 defects (10 per defect type) + 90 good to learn from and the rest to test.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

__all__ = ["shared_root", "Photos", "neu_split", "bottle_split", "NEU_TEST_PER_CLASS", "BOTTLE_GOOD"]

NEU_TEST_PER_CLASS = 100
NEU_TEST_SEED = 1234  # fixes the test set; training seeds only choose among the remaining photos
BOTTLE_SEED = 0
BOTTLE_TRAIN_PER_TYPE = 10
BOTTLE_TRAIN_GOOD = 90
BOTTLE_GOOD = "ok"


def shared_root() -> Path | None:
    """``GRAFT_SHARED`` or the ``shared`` folder next to the repository, if it holds the datasets."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (os.environ.get("GRAFT_SHARED"), here.parent / "shared", here / "../shared"):
        if candidate and (Path(candidate) / "datasets" / "neu_cls").is_dir():
            return Path(candidate).resolve()
    return None


@dataclass(frozen=True)
class Photos:
    """Photos to learn from and to test on: (path, label, sub-type) triples."""

    train: list[tuple[str, str, str]]
    test: list[tuple[str, str, str]]

    @property
    def classes(self) -> list[str]:
        return sorted({label for _, label, _ in self.train + self.test})


def _jpgs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"), key=lambda p: p.name)


def neu_split(root: Path, per_class: int, seed: int, test_per_class: int = NEU_TEST_PER_CLASS) -> Photos:
    """``per_class`` NEU photos per class to learn from (seeded) and the fixed disjoint test set."""
    train, test = [], []
    for class_dir in sorted(p for p in (root / "datasets" / "neu_cls").iterdir() if p.is_dir()):
        files = _jpgs(class_dir)
        random.Random(f"{NEU_TEST_SEED}-{class_dir.name}").shuffle(files)
        pool = files[test_per_class:]
        random.Random(f"{seed}-{class_dir.name}").shuffle(pool)
        test += [(str(p), class_dir.name, class_dir.name) for p in files[:test_per_class]]
        train += [(str(p), class_dir.name, class_dir.name) for p in pool[:per_class]]
    return Photos(train, test)


def bottle_split(root: Path, seed: int = BOTTLE_SEED) -> Photos:
    """MVTec bottle as ok vs defect: 90 good + 10 of each defect type to learn from, the rest to test.

    The sub-type of a defect photo is its MVTec defect type (for the multi-task strategy).
    """
    base = root / "datasets" / "mvtec_bottle"
    rng = random.Random(seed)
    good = _jpgs(base / "train" / "good") + _jpgs(base / "test" / "good")
    rng.shuffle(good)
    train = [(str(p), BOTTLE_GOOD, BOTTLE_GOOD) for p in good[:BOTTLE_TRAIN_GOOD]]
    test = [(str(p), BOTTLE_GOOD, BOTTLE_GOOD) for p in good[BOTTLE_TRAIN_GOOD:]]
    for kind in sorted(p for p in (base / "test").iterdir() if p.is_dir() and p.name != "good"):
        files = _jpgs(kind)
        rng.shuffle(files)
        train += [(str(p), "defect", kind.name) for p in files[:BOTTLE_TRAIN_PER_TYPE]]
        test += [(str(p), "defect", kind.name) for p in files[BOTTLE_TRAIN_PER_TYPE:]]
    return Photos(train, test)
