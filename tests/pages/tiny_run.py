"""One real finished run, trained once per test session and copied into each test's workspace.

Not a test module: the page tests of Evaluate, Test and Runs share it, so the tiny model is
trained once (``python -m core train``, ~15 s) however many of them run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY, make_dataset

CLASSES = {"ok": 16, "scratch": 12, "stain": 12}
_TRAINED: dict[str, Path] = {}


def trained_workspace(factory: pytest.TempPathFactory) -> Path:
    """A workspace holding ``datasets/parts`` and one finished run ``runs/r1`` (built once)."""
    if "ws" not in _TRAINED:
        ws = factory.mktemp("template-ws")
        data = make_dataset(ws / "datasets" / "parts", CLASSES, size=40)
        cmd = [sys.executable, "-m", "core", "train", str(data), "--out", str(ws / "runs" / "r1"),
               "--backbone", TINY, "--start", "scratch", "--image-size", "32", "--epochs", "2",
               "--batch-size", "8", "--good-class", "ok", "--seed", "0", "--folds", "1"]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        _TRAINED["ws"] = ws
    return _TRAINED["ws"]


def copy_workspace(template: Path, dest: Path) -> Path:
    """A private copy (tests delete runs and save thresholds); run configs still point at the template's data."""
    shutil.copytree(template, dest)
    return dest
