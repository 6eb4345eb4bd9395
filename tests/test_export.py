"""ONNX export: parity with torch on the test photos, metadata, and a bundle whose README snippet runs."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from core.augment import to_model_input
from core.backbones import build
from core.cli import main
from core.export import (ONNX_FILE, PARITY_TOLERANCE, ExportResult, ProbabilityModel, bundle_zip, export_onnx,
                         read_onnx_metadata)
from core.images import load_resized
from core.package import load_package
from core.model import GraftModel, Task
from core.tasks import label_probs
from tests.conftest import make_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished run, trained through the CLI."""
    data = make_dataset(tmp_path_factory.mktemp("data") / "parts", {"ok": 12, "scratch": 12, "stain": 12}, size=40)
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", str(data), "--out", str(out), "--backbone", "test_resnet", "--start", "scratch",
                 "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--good-class", "ok", "--folds", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def exported(run: Path) -> ExportResult:
    return export_onnx(run)


def _test_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "predictions.csv", newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == "test"]


def test_parity_on_every_test_photo(run: Path, exported: ExportResult) -> None:
    assert exported.path == run / ONNX_FILE and exported.path.is_file()
    assert exported.images_source == "test" and exported.n_images == len(_test_rows(run)) > 0
    assert exported.top_class_agreement == 1.0 and exported.max_prob_diff <= PARITY_TOLERANCE
    assert exported.passed
    assert 0.0 <= exported.predictor_agreement <= 1.0  # the app's (maybe bf16) predictor, for information


def test_the_onnx_graph_averages_the_test_time_views_itself(run: Path, exported: ExportResult) -> None:
    import onnxruntime as ort

    from core.augment import VIEWS, view_of
    from core.config import DEFAULT_VIEWS
    from core.model import single_view

    model, spec = load_package(run)
    assert spec.views == DEFAULT_VIEWS == read_onnx_metadata(exported.path)["views"]
    x = torch.randn(3, 3, spec.image_size, spec.image_size)
    onnx_probs = ort.InferenceSession(str(exported.path)).run(None, {"image": x.numpy()})[0]
    with torch.no_grad(), single_view(model.float()):
        by_hand = torch.stack([torch.softmax(model(view_of(x, v))["label"], 1) for v in VIEWS[:spec.views]]).mean(0)
    assert np.allclose(onnx_probs, by_hand.numpy(), atol=1e-4)


def test_metadata_describes_the_preprocessing(run: Path, exported: ExportResult) -> None:
    spec = json.loads((run / "model" / "model.json").read_text())
    meta = read_onnx_metadata(exported.path)
    for key in ("classes", "good_class", "threshold", "image_size", "mean", "std", "backbone"):
        assert meta[key] == spec[key], key
    assert meta["resize"] == "squash" and meta["parity_check"]["passed"]
    raw = {p.key for p in onnx.load(str(exported.path)).metadata_props}
    assert {"classes", "mean", "std", "resize"} <= raw


def test_bundle_and_its_readme_snippet(run: Path, exported: ExportResult, tmp_path: Path) -> None:
    path = bundle_zip(run, tmp_path / "bundle.zip")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["README.md", "decision.json", "model.json", "model.onnx", "model.safetensors",
                                         "training_photos.json"]  # the whole package: it decides like Graft
        zf.extractall(tmp_path / "bundle")
    readme = (tmp_path / "bundle" / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "bundle" / "predict.py").write_text(snippet, encoding="utf-8")
    config = json.loads((run / "config.json").read_text())
    photo = Path(config["data"]) / _test_rows(run)[0]["image"]
    done = subprocess.run([sys.executable, "predict.py", str(photo)], cwd=tmp_path / "bundle",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[0])
    model, spec = load_package(run)
    x = to_model_input(torch.from_numpy(load_resized(photo, spec.image_size)[None]),
                       torch.tensor(spec.mean), torch.tensor(spec.std))
    with torch.no_grad():  # the snippet's own decoding must give Graft's numbers
        expected = ProbabilityModel(model, spec.tasks, spec.classes)(x)[0].numpy()
    got = np.array([answer["probabilities"][c] for c in spec.classes])
    assert np.abs(got - expected).max() <= PARITY_TOLERANCE
    assert answer["verdict"] in ("good", "defect", "uncertain") and answer["class"] in spec.classes


def test_cli_export_and_plain_error(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(run / "model"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    assert "Parity check passed" in capsys.readouterr().out and (tmp_path / "m.onnx").is_file()
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert "no finished model" in capsys.readouterr().err


@pytest.mark.parametrize(("tasks", "classes"), [
    ([Task("defect", ("ok", "defect"), "ok"), Task("defect_type", ("scratch", "stain"))], ["ok", "scratch", "stain"]),
    ([Task("defect", ("ok", "defect"), "ok"), Task("colour", ("red", "blue"))], ["ok", "scratch"]),
    ([Task("label", ("ok", "scratch", "stain"), "ok"), Task("colour", ("red", "blue"))], ["ok", "scratch", "stain"]),
], ids=["defect+type", "one-defect-class", "label+extra"])
def test_probability_model_matches_label_probs(tasks: list[Task], classes: list[str]) -> None:
    """The exported combination of task outputs is exactly Graft's own (core.tasks.label_probs)."""
    torch.manual_seed(0)
    model = GraftModel(build("test_resnet", "scratch", image_size=32), tasks).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        ours = ProbabilityModel(model, tasks, classes)(x).numpy()
    reference = label_probs({k: torch.softmax(v, 1).numpy() for k, v in logits.items()}, tasks, classes)
    assert np.allclose(ours, reference, atol=1e-6)


def test_onnx_download_holds_only_what_deployment_needs(run: Path, exported: ExportResult, tmp_path: Path) -> None:
    import zipfile

    from core.export import bundle_zip, onnx_zip
    from core.modeldir import package_bytes

    small = onnx_zip(run, tmp_path / "onnx.zip")
    names = zipfile.ZipFile(small).namelist()
    assert sorted(names) == ["README.md", "model.onnx"]
    readme = zipfile.ZipFile(small).read("README.md").decode()
    assert "model.safetensors" not in readme and "onnxruntime" in readme
    full = bundle_zip(run, tmp_path / "bundle.zip")
    assert small.stat().st_size < full.stat().st_size  # the weights are not carried twice
    weights = (run / "model" / "model.safetensors").stat().st_size
    assert weights <= package_bytes(run) < weights + 200_000
