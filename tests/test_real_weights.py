"""The real pretrained path, with the genuine ImageNet MobileNet-V2 weights of ``../shared`` (skipped without them).

Every strategy must learn real steel-surface photos (NEU) from a few examples per class, and
``--start imagenet`` must find the weights in a Hugging Face hub cache without any network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench.realdata import neu_split, shared_root
from bench.realfit import graft_fit

ROOT = Path(__file__).resolve().parent.parent
SHARED = shared_root()
WEIGHTS = SHARED / "weights" / "mobilenetv2_100_imagenet.safetensors" if SHARED else None
HUB_REPO = "models--timm--mobilenetv2_100.ra_in1k"
COMMIT = "0" * 40

pytestmark = pytest.mark.skipif(WEIGHTS is None or not WEIGHTS.is_file(), reason="../shared (real weights) absent")


def _hub_cache(home: Path) -> Path:
    """Lay the shared weights out as the hub cache entry of ``timm/mobilenetv2_100.ra_in1k``."""
    entry = home / "hub" / HUB_REPO
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(COMMIT)
    snapshot = entry / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(WEIGHTS)
    return home


def _core(args: list[str], home: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "GRAFT_CACHE_DIR": str(cache)}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def test_imagenet_start_reads_the_hub_cache_offline(tmp_path: Path, easy_data: Path) -> None:
    home = _hub_cache(tmp_path / "hf")
    out = tmp_path / "run"
    done = _core(["train", str(easy_data), "--out", str(out), "--backbone", "mobilenetv2_100", "--start", "imagenet",
                  "--strategy", "feature-extraction", "--image-size", "64"], home, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "status.json").read_text())["state"] == "done"
    saved, original = load_file(str(out / "model" / "model.safetensors")), load_file(str(WEIGHTS))
    for key in ("conv_stem.weight", "blocks.3.1.conv_pw.weight", "bn2.running_var"):
        assert torch.equal(saved[f"trunk.{key}"], original[key]), key  # the genuine weights, not random ones

    copy = tmp_path / "carry.safetensors"  # `weights download` serves the cached copy offline too
    done = _core(["weights", "download", "mobilenetv2_100", "--out", str(copy)], home, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert torch.equal(load_file(str(copy))["conv_head.weight"], original["conv_head.weight"])


@pytest.mark.parametrize("strategy", ["feature-extraction", "fine-tune", "progressive", "multi-task"])
def test_every_strategy_learns_real_photos_from_a_few_examples(strategy: str, tmp_path: Path) -> None:
    photos = neu_split(SHARED, per_class=5, seed=0, test_per_class=10)  # 30 to learn from, 60 to test
    score = graft_fit(photos, tmp_path, strategy=strategy, start=f"file:{WEIGHTS}", backbone="mobilenetv2_100",
                      image_size=64, seed=0, good="crazing", epochs=6)
    assert score.accuracy >= 0.6, score  # chance is 1/6
    assert score.predicted_classes == 6
