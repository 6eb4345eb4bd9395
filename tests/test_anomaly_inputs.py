"""Good parts only, bad input (issue 11): no good class, fewer than 10 good photos, mixed photo sizes; each gets
a plain message where the user reads it, and mixed sizes are handled as for classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from core.check import FEW_PER_CLASS
from core.cli import main
from core.config import RunConfig
from core.errors import GraftError
from core.pipeline import train_run
from core.predict import Predictor
from ui.anomaly_views import FEW_GOOD_PHOTOS

from .conftest import make_dataset

ARGS = ["--strategy", "anomaly", "--backbone", "resnet10t", "--start", "scratch", "--image-size", "64", "--seed", "0"]


def test_no_good_class_names_the_fix_for_the_cli_and_for_the_app(tmp_path: Path, capsys) -> None:
    data = make_dataset(tmp_path / "data", {"ok": 12, "stain": 3}, size=64)
    assert main(["train", str(data), "--out", str(tmp_path / "cli"), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "which class holds them" in err and "--good-class ok" in err
    app = RunConfig(data=str(data), out=str(tmp_path / "app"), backbone="resnet10t", start="scratch",
                    strategy="anomaly", image_size=64, workspace=str(tmp_path / "ws"))
    with pytest.raises(GraftError) as refused:
        train_run(app)
    assert refused.value.hint == "Mark the good class on the Data page."  # no command-line words in the app
    status = json.loads((tmp_path / "app" / "status.json").read_text())
    assert status["state"] == "failed" and "--" not in status["message"]
    assert main(["train", str(data), "--out", str(tmp_path / "named"), *ARGS, "--good-class", "good"]) == 2
    assert "no class 'good'" in capsys.readouterr().err  # a good class the dataset doesn't have


def test_few_good_photos_warn_about_a_shaky_threshold_in_the_run_message(tmp_path: Path, capsys) -> None:
    assert FEW_GOOD_PHOTOS == FEW_PER_CLASS
    data = make_dataset(tmp_path / "few", {"ok": 8}, size=64, seed=4)
    out = tmp_path / "run"
    assert main(["train", str(data), "--out", str(out), *ARGS, "--good-class", "ok"]) == 0
    printed = capsys.readouterr().out
    assert "Only 8 photos of good parts" in printed and "shaky" in printed  # the CLI's last line says it
    assert "shaky" in json.loads((out / "status.json").read_text())["message"]  # and so does the Train page
    assert any("shaky" in w for w in json.loads((out / "check.json").read_text())["warnings"])


def test_enough_good_photos_get_no_shaky_warning(tmp_path: Path, capsys) -> None:
    data = make_dataset(tmp_path / "enough", {"ok": 24}, size=64, seed=5)
    assert main(["train", str(data), "--out", str(tmp_path / "run"), *ARGS, "--good-class", "ok"]) == 0
    assert "shaky" not in capsys.readouterr().out


def test_mixed_photo_sizes_are_padded_as_for_classifiers(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "mixed", {"ok": 30}, size=64, seed=6)
    photos = sorted((data / "ok").glob("*.png"))
    for i, photo in enumerate(photos):  # three shapes: square 64, wide 96x56, square 120
        if i % 3:
            Image.open(photo).resize((96, 56) if i % 3 == 1 else (120, 120)).save(photo)
    out = tmp_path / "run"
    assert main(["train", str(data), "--out", str(out), *ARGS, "--good-class", "ok"]) == 0
    assert json.loads((out / "config.json").read_text())["resize"] == "pad"  # decided from the shapes, as usual
    check = json.loads((out / "check.json").read_text())
    assert any("different shapes" in w for w in check["warnings"])
    assert json.loads((out / "model" / "model.json").read_text())["resize"] == "pad"
    scored = Predictor.load(out).predict(photos[:3])
    assert all(p.error == "" and 0.0 <= p.defect_score <= 1.0 for p in scored)
