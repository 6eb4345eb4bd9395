"""Shared fixtures: an isolated cache, offline hub, and small generated datasets."""

from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TINY = "test_resnet"  # timm's tiny registered model: fast enough for CPU tests


@pytest.fixture(autouse=True, scope="session")
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["GRAFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("graft-cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
    os.environ.setdefault("GRAFT_MAX_CONCURRENT_RUNS", "1")
    os.environ.setdefault("GRAFT_STANDBY", "0")  # no warm training processes unless a test asks for one


def draw_easy(label: str, size: int, rng: np.random.Generator) -> Image.Image:
    """Noise plus an unmistakable mark per class: a bright line, a dark blob, or nothing."""
    base = rng.normal(128, 18, (size, size, 3)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(base)
    d = ImageDraw.Draw(img)
    x, y = rng.integers(size // 5, size - size // 5, 2)
    if label == "scratch":
        d.line([(x - size // 3, y - size // 4), (x + size // 3, y + size // 4)], fill=(250, 250, 250), width=max(2, size // 12))
    elif label == "stain":
        r = size // 5
        d.ellipse([x - r, y - r, x + r, y + r], fill=(30, 20, 10))
    elif label == "dent":
        r = size // 6
        d.rectangle([x - r, y - r, x + r, y + r], fill=(200, 60, 60))
    return img


def make_dataset(root: Path, counts: dict[str, int], size: int = 48, seed: int = 0, fmt: str = "png") -> Path:
    rng = np.random.default_rng(seed)
    for label, n in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            draw_easy(label, size, rng).save(root / label / f"{label}_{i:03d}.{fmt}")
    return root


def png_bytes(label: str = "scratch", size: int = 40, seed: int = 0) -> bytes:
    """One easy photo as PNG bytes, as an upload would arrive."""
    buf = io.BytesIO()
    draw_easy(label, size, np.random.default_rng(seed)).save(buf, "PNG")
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive in memory from {member name: bytes}."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="session")
def easy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 20 photos at 48 px: a task any working training loop learns."""
    return make_dataset(tmp_path_factory.mktemp("easy") / "parts", {"ok": 20, "scratch": 20, "stain": 20})


@pytest.fixture
def tiny_args() -> list[str]:
    # one train/val/test split (--folds 1): these runs test training itself; cross-validation has its own tests
    return ["--backbone", TINY, "--start", "scratch", "--image-size", "48", "--batch-size", "8", "--seed", "0",
            "--folds", "1"]
