"""One preprocessing function: 16-bit photos keep their contrast, pad keeps shapes, and the bundle's
snippet (its own loading code, run from the README text) gives Graft's numbers on RGBA, 12-bit grey
and 16-bit grey photos."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.backbones import build, data_config
from core.check import check_dataset
from core.cli import main
from core.datasets import load_dataset
from core.device import Runtime
from core.export import PARITY_TOLERANCE, bundle_zip, export_onnx
from core.model import GraftModel, Task
from core.package import ModelSpec, load_package, save_package
from core.predict import Predictor
from core.preprocess import Preprocessing, choose_bit_depth, choose_resize, model_pixels, pad_colour_for
from tests.conftest import draw_easy

CLASSES = ["ok", "scratch", "stain"]


def _grey16(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")
    return path


def _ramp(height: int, width: int, top: int) -> np.ndarray:
    return np.tile(np.linspace(0, top, width), (height, 1)).round()


def _photos(folder: Path) -> dict[str, Path]:
    """An RGBA photo with a transparent corner (not square), a 12-bit and a full 16-bit grey photo."""
    folder.mkdir(parents=True, exist_ok=True)
    rgba = draw_easy("scratch", 64, np.random.default_rng(3)).convert("RGBA").resize((80, 52))
    pixels = np.asarray(rgba).copy()
    pixels[:20, :30, 3] = 0
    pixels[20:30, :30, 3] = 128
    Image.fromarray(pixels).save(folder / "rgba.png")
    grey12 = _ramp(48, 64, 4095)
    grey12[10:20, 10:50] = 300  # a dark mark on the ramp
    return {"rgba": folder / "rgba.png", "grey12": _grey16(folder / "grey12.png", grey12),
            "grey16": _grey16(folder / "grey16.png", _ramp(40, 40, 65535))}


def test_12_bit_photos_keep_their_contrast(tmp_path: Path) -> None:
    photo = _photos(tmp_path)["grey12"]
    full = model_pixels(photo, Preprocessing(32, bit_depth=12))
    naive = model_pixels(photo, Preprocessing(32))  # read as 16-bit: 4095 -> 16, nearly black
    assert full.max() >= 250 and naive.max() <= 16
    assert choose_bit_depth(4095) == 12 and choose_bit_depth(4096) == 14 and choose_bit_depth(900) == 10
    assert choose_bit_depth(65535) == 16 and choose_bit_depth(None) is None


def test_pad_keeps_the_shape_and_squash_stretches(tmp_path: Path) -> None:
    image = Image.new("RGB", (100, 50), (0, 0, 0))
    image.paste((255, 255, 255), (25, 0, 75, 50))  # a 50x50 white square in a wide photo
    prep = Preprocessing(32, resize="pad", pad_colour=(9, 9, 9))
    padded = model_pixels(image, prep)
    assert padded.shape == (32, 32, 3)
    assert (padded[:8] == 9).all() and (padded[-8:] == 9).all()  # 16 rows of photo, centred
    white = np.argwhere(padded[..., 0] > 200)
    height, width = np.ptp(white, axis=0) + 1
    assert abs(int(height) - int(width)) <= 1  # still a square
    squashed = model_pixels(image, Preprocessing(32))
    white = np.argwhere(squashed[..., 0] > 200)
    assert np.ptp(white[:, 0]) + 1 == 32 and np.ptp(white[:, 1]) + 1 <= 18  # now twice as tall as wide
    assert choose_resize(1.0, 1.1) == "squash" and choose_resize(0.75, 1.33) == "pad"


def test_the_check_reports_shapes_and_bit_depth(tmp_path: Path) -> None:
    for label in ("ok", "scratch"):
        (tmp_path / label).mkdir()
        for i, width in enumerate((40, 64, 80)):
            values = _ramp(40, width, 3000 + 300 * i)
            values[5:15, 5:25] = 4000 if label == "scratch" else values[5:15, 5:25]
            _grey16(tmp_path / label / f"{i}.png", values)
    report = check_dataset(load_dataset(tmp_path))
    assert report.high_bit == {"photos": 6, "max_value": 4000, "bit_depth": 12}
    assert report.aspect["spread"] == pytest.approx(2.0) and report.resize == "pad"
    assert any("pads them to squares" in w for w in report.warnings)


def _package(folder: Path, **prep) -> Path:
    torch.manual_seed(0)
    trunk = build("test_resnet", "scratch", image_size=32)
    tasks = [Task("label", tuple(CLASSES), "ok")]
    cfg = data_config(trunk)
    spec = ModelSpec("test_resnet", tasks, CLASSES, 32, cfg["mean"], cfg["std"], good_class="ok", threshold=0.6,
                     uncertain_band=0.2, pad_colour=pad_colour_for(cfg["mean"]), **prep)
    save_package(GraftModel(trunk, tasks).eval(), spec, folder / "run" / "model")
    return folder / "run"


def _graft_fp32(run: Path, photos: list[Path]) -> np.ndarray:
    model, spec = load_package(run)
    predictor = Predictor(model, spec, Runtime(torch.device("cpu"), "fp32", 1))
    return np.stack([np.array([p.scores[c] for c in CLASSES]) for p in predictor.predict(photos)])


@pytest.mark.parametrize("prep", [{"resize": "pad", "bit_depth": 12}, {"resize": "squash", "bit_depth": None}],
                         ids=["pad-12bit", "squash-16bit"])
def test_snippet_parity_on_rgba_12_bit_and_16_bit_photos(tmp_path: Path, prep: dict) -> None:
    run = _package(tmp_path, **prep)
    photos = _photos(tmp_path / "photos")
    files = [photos["rgba"], photos["grey12"], photos["grey16"]]
    result = export_onnx(run, images=files)
    assert result.passed and result.n_images == 3 and result.images_source == "given"
    assert result.snippet_agreement == 1.0 and result.snippet_max_prob_diff <= PARITY_TOLERANCE
    assert result.verdict_agreement == 1.0
    # and the README's snippet as a user runs it, next to the unzipped bundle
    bundle = tmp_path / "bundle"
    with zipfile.ZipFile(bundle_zip(run, tmp_path / "bundle.zip")) as zf:
        zf.extractall(bundle)
    snippet = re.search(r"```python\n(.*?)```", (bundle / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    (bundle / "predict.py").write_text(snippet, encoding="utf-8")
    done = subprocess.run([sys.executable, "predict.py", *map(str, files)], cwd=bundle, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.strip().splitlines()]
    got = np.array([[a["probabilities"][c] for c in CLASSES] for a in answers])
    assert np.abs(got - _graft_fp32(run, files)).max() <= PARITY_TOLERANCE
    graft = Predictor.load(run).predict(files)
    assert [a["verdict"] for a in answers] == [p.verdict for p in graft]


def test_training_records_the_preprocessing_it_used(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for label in ("ok", "scratch"):
        (data / label).mkdir(parents=True)
        for i in range(8):
            grey = np.asarray(draw_easy(label, 48, rng).convert("L"), dtype=np.float64)[:, : 32 + 4 * i]
            _grey16(data / label / f"{i}.png", grey * 16)  # 12-bit values, photos of different widths
    out = tmp_path / "run"
    assert main(["train", str(data), "--out", str(out), "--backbone", "test_resnet", "--start", "scratch",
                 "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--folds", "1"]) == 0
    spec = json.loads((out / "model" / "model.json").read_text())
    assert spec["resize"] == "pad" and spec["bit_depth"] == 12 and "longer side" in spec["preprocessing"]
    assert json.loads((out / "config.json").read_text())["resize"] == "pad"
    predictor = Predictor.load(out)
    photo = data / "ok" / "0.png"
    from core.explain import explain, overlay

    seen = predictor.preprocess(photo)
    assert seen.max() > 100  # not the near-black of a 16-bit reading
    picture, cam = explain(predictor, photo)
    same = overlay(Image.open(photo), cam, prep=predictor.spec.preprocessing)  # the heatmap's geometry is the model's
    assert np.array_equal(np.asarray(picture), np.asarray(same))
