"""Heatmaps: shape and range, CNN and ViT, frozen trunks, multi-task, and every curated backbone."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from core.backbones import CURATED, build, data_config
from core.errors import GraftError
from core.explain import explain, heatmap, overlay
from core.package import ModelSpec
from core.predict import Predictor
from core.model import GraftModel, Task, freeze_trunk
from tests.conftest import draw_easy

CLASSES = ["ok", "scratch", "stain"]


def _predictor(backbone: str, size: int = 48, tasks: list[Task] | None = None, frozen: bool = False) -> Predictor:
    torch.manual_seed(0)
    trunk = build(backbone, "scratch", image_size=size)
    tasks = tasks or [Task("label", tuple(CLASSES), "ok")]
    cfg = data_config(trunk)
    model = GraftModel(trunk, tasks).eval()
    if frozen:
        freeze_trunk(model)
    spec = ModelSpec(backbone, tasks, CLASSES, size, cfg["mean"], cfg["std"], good_class="ok", threshold=0.5)
    return Predictor(model, spec)


@pytest.fixture(scope="module")
def photo() -> PIL.Image.Image:
    return draw_easy("scratch", 80, np.random.default_rng(1))


def _assert_valid(cam: np.ndarray, size: int) -> None:
    assert cam.shape == (size, size) and cam.dtype == np.float32
    assert np.isfinite(cam).all() and cam.min() >= 0.0 and cam.max() <= 1.0


def _varies(predictor: Predictor, photo: PIL.Image.Image, cam: np.ndarray) -> bool:
    """Random weights can leave a class without positive evidence (an all-zero map), not every class."""
    return cam.std() > 1e-3 or any(heatmap(predictor, photo, target=c).std() > 1e-3 for c in predictor.classes)


@pytest.mark.parametrize("backbone", ["test_resnet", "test_vit"])
def test_shape_range_and_not_constant(backbone: str, photo: PIL.Image.Image) -> None:
    predictor = _predictor(backbone)
    cam = heatmap(predictor, photo)
    _assert_valid(cam, 48)
    assert _varies(predictor, photo, cam)


def test_explain_overlay_is_the_model_view(photo: PIL.Image.Image, tmp_path) -> None:
    predictor = _predictor("test_resnet")
    path = tmp_path / "photo.png"
    photo.save(path)
    image, cam = explain(predictor, path, target="stain")
    _assert_valid(cam, 48)
    assert image.mode == "RGB" and image.size == (48, 48)
    assert np.array_equal(cam, heatmap(predictor, path.read_bytes(), target="stain"))
    assert overlay(np.asarray(photo), cam, alpha=0.0).size == (48, 48)  # any size is squashed like the model's input
    with pytest.raises(GraftError, match="not one of"):
        heatmap(predictor, photo, target="rust")


def test_feature_extraction_model_and_no_grad_caller(photo: PIL.Image.Image) -> None:
    predictor = _predictor("test_resnet", frozen=True)
    with torch.no_grad():  # e.g. a page that scores first; heatmaps must still get gradients
        assert _varies(predictor, photo, heatmap(predictor, photo))
    assert not any(p.requires_grad for p in predictor.model.trunk.parameters())  # the shared model is untouched


def test_multi_task_model(photo: PIL.Image.Image) -> None:
    tasks = [Task("defect", ("ok", "defect"), "ok"), Task("defect_type", ("scratch", "stain"))]
    predictor = _predictor("test_resnet", tasks=tasks)
    for target in (None, *CLASSES):
        _assert_valid(heatmap(predictor, photo, target=target), 48)


@pytest.mark.parametrize("arch", [b.name.split(".")[0] for b in CURATED])
def test_every_curated_backbone(arch: str, photo: PIL.Image.Image) -> None:
    """Architecture only (random weights), one photo at 64 px each: fast."""
    predictor = _predictor(arch, size=64)
    cam = heatmap(predictor, photo)
    _assert_valid(cam, 64)
    assert _varies(predictor, photo, cam)
