"""Model packages: identical predictions after a save/load round trip, and no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.backbones import build, data_config
from core.errors import GraftError
from core.package import ModelSpec, load_package, save_package
from core.predict import Predictor
from core.model import GraftModel, Task
from tests.conftest import TINY


def _model_and_spec() -> tuple[GraftModel, ModelSpec]:
    torch.manual_seed(0)
    trunk = build(TINY, "scratch", image_size=48)
    tasks = [Task("label", ("ok", "scratch", "stain"), "ok")]
    cfg = data_config(trunk)
    spec = ModelSpec(TINY, tasks, ["ok", "scratch", "stain"], 48, cfg["mean"], cfg["std"], good_class="ok", threshold=0.4)
    return GraftModel(trunk, tasks).eval(), spec


def test_round_trip_predictions_identical(easy_data: Path, tmp_path: Path) -> None:
    model, spec = _model_and_spec()
    before = Predictor(model, spec).predict(sorted((easy_data / "scratch").glob("*.png"))[:6])
    save_package(model, spec, tmp_path / "model")
    after = Predictor.load(tmp_path).predict(sorted((easy_data / "scratch").glob("*.png"))[:6])
    assert [p.scores for p in before] == [p.scores for p in after]
    assert [p.label for p in before] == [p.label for p in after]
    loaded_spec = json.loads((tmp_path / "model" / "model.json").read_text())
    for key in ("backbone", "classes", "tasks", "image_size", "mean", "std", "threshold", "good_class"):
        assert key in loaded_spec


def test_package_json_cannot_point_outside(tmp_path: Path) -> None:
    model, spec = _model_and_spec()
    save_package(model, spec, tmp_path / "model")
    raw = json.loads((tmp_path / "model" / "model.json").read_text())
    raw["weights"] = "../../etc/passwd"
    (tmp_path / "model" / "model.json").write_text(json.dumps(raw))
    with pytest.raises(GraftError, match="outside"):
        load_package(tmp_path)


def test_wrong_class_count_is_a_clear_error(tmp_path: Path) -> None:
    model, spec = _model_and_spec()
    save_package(model, spec, tmp_path / "model")
    raw = json.loads((tmp_path / "model" / "model.json").read_text())
    raw["tasks"][0]["classes"] = ["a", "b"]
    (tmp_path / "model" / "model.json").write_text(json.dumps(raw))
    with pytest.raises(GraftError, match="don't match"):
        load_package(tmp_path)


def test_unreadable_photo_does_not_sink_the_batch(easy_data: Path, tmp_path: Path) -> None:
    model, spec = _model_and_spec()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    preds = Predictor(model, spec).predict([bad, next((easy_data / "ok").glob("*.png"))])
    assert preds[0].error and preds[0].label is None
    assert preds[1].label in spec.classes and np.isclose(sum(preds[1].scores.values()), 1.0, atol=1e-4)
