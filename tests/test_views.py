"""Test-time views: one eval forward averages the 8 mirrored / turned views, and every scoring path uses it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.augment import VIEWS, dihedral, mean_over_views, view_of
from core.backbones import build, data_config
from core.cli import main
from core.errors import GraftError
from core.model import GraftModel, Task, single_view
from core.package import ModelSpec, load_package, save_package
from core.predict import Predictor
from tests.conftest import TINY

CLASSES = ("ok", "scratch", "stain")


def _model(views: int) -> tuple[GraftModel, ModelSpec]:
    torch.manual_seed(0)
    trunk = build(TINY, "scratch", image_size=48)
    tasks = [Task("label", CLASSES, "ok")]
    cfg = data_config(trunk)
    spec = ModelSpec(TINY, tasks, list(CLASSES), 48, cfg["mean"], cfg["std"], good_class="ok", views=views)
    return GraftModel(trunk, tasks, views=views).eval(), spec


def _mean_over_views_by_hand(model: GraftModel, x: torch.Tensor, views: tuple[str, ...] = VIEWS) -> torch.Tensor:
    with torch.no_grad(), single_view(model):
        return torch.stack([torch.softmax(model(view_of(x, v))["label"], 1) for v in views]).mean(0)


def test_tensor_views_are_the_photo_views() -> None:
    u8 = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    for view in VIEWS:
        nchw = torch.from_numpy(u8).permute(0, 3, 1, 2)
        assert torch.equal(view_of(nchw, view), torch.from_numpy(dihedral(u8, view)).permute(0, 3, 1, 2)), view


def test_eval_forward_is_the_softmax_mean_over_views_and_training_is_unchanged() -> None:
    model, _ = _model(8)
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        probs = torch.softmax(model(x)["label"], 1)
        assert torch.allclose(probs, _mean_over_views_by_hand(model, x), atol=1e-6)
        calls = []
        model.trunk.register_forward_hook(lambda *_: calls.append(1))
        model.train()
        model(x)
        assert len(calls) == 1  # training sees each photo once (augmentation does the rest)
    four = mean_over_views(lambda v: model.eval().forward_heads(model.features(v)), x, 4)["label"]
    assert torch.allclose(torch.softmax(four, 1), _mean_over_views_by_hand(model, x, VIEWS[:4]), atol=1e-6)


def test_views_survive_save_and_load(easy_data: Path, tmp_path: Path) -> None:
    model, spec = _model(8)
    photos = sorted((easy_data / "scratch").glob("*.png"))[:6]
    before = Predictor(model, spec).predict(photos)
    save_package(model, spec, tmp_path / "model")
    assert json.loads((tmp_path / "model" / "model.json").read_text())["views"] == 8
    loaded = Predictor.load(tmp_path)
    after = loaded.predict(photos)
    assert loaded.model.views == 8
    assert [p.scores for p in before] == [p.scores for p in after]
    x = torch.from_numpy(np.stack([loaded.preprocess(p) for p in photos]))
    x = ((x.permute(0, 3, 1, 2).float() / 255) - loaded.mean.view(1, 3, 1, 1)) / loaded.std.view(1, 3, 1, 1)
    by_hand = _mean_over_views_by_hand(loaded.model.float(), x).numpy()
    got = np.array([[p.scores[c] for c in CLASSES] for p in after])
    assert np.allclose(got, by_hand, atol=2e-2)  # the predictor may run in bf16 on this CPU


def test_a_package_from_before_views_scores_each_photo_once(tmp_path: Path) -> None:
    model, spec = _model(1)
    save_package(model, spec, tmp_path / "model")
    raw = json.loads((tmp_path / "model" / "model.json").read_text())
    raw.pop("views"), raw.pop("views_meaning")
    (tmp_path / "model" / "model.json").write_text(json.dumps(raw))
    loaded, loaded_spec = load_package(tmp_path)
    assert loaded.views == loaded_spec.views == 1
    raw["views"] = 3
    (tmp_path / "model" / "model.json").write_text(json.dumps(raw))
    with pytest.raises(GraftError, match="damaged"):
        load_package(tmp_path)


@pytest.mark.parametrize("strategy", ["feature-extraction", "fine-tune"])
def test_the_runs_own_scores_use_the_views_the_package_predicts_with(easy_data: Path, tmp_path: Path,
                                                                     tiny_args: list[str], strategy: str) -> None:
    out = tmp_path / "run"
    assert main(["train", str(easy_data), "--out", str(out), *tiny_args, "--strategy", strategy, "--epochs", "1",
                 "--good-class", "ok", "--views", "8"]) == 0
    predictor = Predictor.load(out)
    assert predictor.model.views == 8
    with open(out / "predictions.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    run_scores = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    predicted = predictor.predict([easy_data / r["image"] for r in rows])
    app_scores = np.array([[p.scores[c] for c in CLASSES] for p in predicted])
    assert np.allclose(run_scores, app_scores, atol=1e-2)
    one = main(["train", str(easy_data), "--out", str(tmp_path / "once"), *tiny_args, "--strategy", strategy,
                "--epochs", "1", "--good-class", "ok", "--views", "1"])
    assert one == 0 and Predictor.load(tmp_path / "once").model.views == 1



def test_the_heatmap_shows_the_photo_as_it_is(easy_data: Path) -> None:
    from core.explain import heatmap

    photo = sorted((easy_data / "scratch").glob("*.png"))[0]
    eight, spec8 = _model(8)
    once, spec1 = _model(1)
    cam8 = heatmap(Predictor(eight, spec8), photo, target="scratch")
    cam1 = heatmap(Predictor(once, spec1), photo, target="scratch")
    assert cam8.shape == (48, 48) and np.allclose(cam8, cam1, atol=1e-5)
    assert eight.views == 8  # the predictor's model keeps its views after a heatmap
