"""Good parts only (anomaly detection): learns from good photos, flags what looks different, through the CLI."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import core.anomaly_fit as anomaly_fit
from core.anomaly import (Normaliser, coreset_size, greedy_coreset, nearest_distance, patch_stages,
                          threshold_for_false_alarms)
from core.anomaly_predict import AnomalyPredictor
from core.check import check_dataset
from core.cli import main
from core.config import RunConfig
from core.datasets import load_dataset
from core.jsonio import read_jsonl
from core.package import model_package_zip
from core.pipeline import train_run
from core.predict import Predictor
from core.runs import RunFolder

from .conftest import make_dataset

# A random-init CNN is enough for a dark blob on a plain noisy surface (tests need no downloads).
ARGS = ["--strategy", "anomaly", "--good-class", "ok", "--backbone", "resnet10t", "--start", "scratch",
        "--image-size", "64", "--seed", "0"]


def _train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", str(data), "--out", str(out), *ARGS, *extra])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("anomaly")
    return {"good": make_dataset(root / "good", {"ok": 40}, size=64, seed=10),  # photos no other test caches
            "mixed": make_dataset(root / "mixed", {"ok": 40, "stain": 8}, size=64, seed=1),
            "fresh": make_dataset(root / "fresh", {"ok": 20, "stain": 10}, size=64, seed=2),
            "fresh_good": make_dataset(root / "fresh_good", {"ok": 20}, size=64, seed=3),
            "few": make_dataset(root / "few", {"ok": 6}, size=64, seed=4)}


@pytest.fixture(scope="module")
def good_run(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "good-only"
    assert _train(data["good"], out) == 0
    return out


def test_good_only_dataset_trains_through_the_cli(good_run: Path) -> None:
    status = json.loads((good_run / "status.json").read_text())
    assert status["state"] == "done", status
    spec = json.loads((good_run / "model" / "model.json").read_text())
    assert spec["mode"] == "anomaly" and spec["classes"] == ["ok", "defect"]
    assert spec["anomaly"]["false_alarm_target"] == 0.01 and spec["anomaly"]["threshold_rule"] == "false-alarm target"
    assert set(spec["anomaly"]["normaliser"]) == {"threshold", "scale"}
    assert (good_run / "model" / "memory.safetensors").is_file()
    metrics = json.loads((good_run / "metrics.json").read_text())
    assert metrics["catch_rate"] is None and metrics["false_alarm_rate"] is not None
    assert metrics["threshold"] == 0.5 and metrics["verdict"]["level"] == "promising"
    events = read_jsonl(good_run / "events.jsonl")
    phases = {e.get("phase") for e in events if e["event"] == "progress"}
    assert {"features", "train"} <= phases
    assert all("eta_s" in e for e in events if e["event"] == "progress")
    assert events[-1]["event"] == "run_end" and events[-1]["state"] == "done"


def test_drawn_defect_scores_above_every_good_photo(data: dict[str, Path], good_run: Path) -> None:
    predictor = Predictor.load(good_run)
    assert isinstance(predictor, AnomalyPredictor)
    good = predictor.predict(sorted((data["fresh"] / "ok").glob("*.png")))
    bad = predictor.predict(sorted((data["fresh"] / "stain").glob("*.png")))
    assert min(p.defect_score for p in bad) > max(p.defect_score for p in good)
    assert {p.verdict for p in bad} == {"defect"}
    one = predictor.predict_with_heatmap(sorted((data["fresh"] / "stain").glob("*.png"))[0])
    assert one.heatmap.shape == (64, 64) and 0.0 <= one.heatmap.min() and one.heatmap.max() <= 1.0
    assert one.heatmap.max() >= 0.5  # the blob is where the map crosses the threshold


def test_threshold_flags_about_the_target_share_never_all() -> None:
    rng = np.random.default_rng(0)
    held_out, fresh = rng.gamma(4.0, 1.0, 400), rng.gamma(4.0, 1.0, 4000)
    for target in (0.01, 0.05, 0.2):
        t = threshold_for_false_alarms(held_out, target)
        norm = Normaliser.fit(held_out, t)
        flagged = (norm.score(fresh) >= 0.5).mean()
        assert abs(flagged - target) < max(0.02, target / 2), (target, flagged)
        assert abs(norm.score(t) - 0.5) < 1e-9 and norm.score(np.median(held_out)) < 0.5
    assert Normaliser.fit(held_out, threshold_for_false_alarms(held_out, 0.01)).score(np.median(held_out)) < 0.2


def test_good_only_run_flags_about_the_target_share(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(data["good"], out, "--false-alarm-target", "0.2") == 0
    spec = json.loads((out / "model" / "model.json").read_text())
    assert spec["anomaly"]["false_alarm_target"] == 0.2
    rows = Predictor.load(out).predict(sorted((data["fresh_good"] / "ok").glob("*.png")))
    share = np.mean([p.defect_score >= 0.5 for p in rows])
    assert 0.0 < share < 0.6  # about 20% of 20 fresh good photos; never all of them


def test_defect_photos_choose_the_best_trade_off(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(data["mixed"], out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["anomaly"]["threshold_rule"] == "best trade-off on validation defects"
    assert metrics["catch_rate"] == 1.0 and metrics["roc_auc"] == 1.0
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["label"] for r in rows} == {"ok", "defect"} and "p_defect" in rows[0]


def test_save_load_round_trip(data: dict[str, Path], good_run: Path) -> None:
    """The package scores the held-out photos exactly as the run recorded them."""
    with open(good_run / "predictions.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    predictor = Predictor.load(good_run)
    got = predictor.predict([str(data["good"] / r["image"]) for r in rows])
    assert np.allclose([p.defect_score for p in got], [float(r["p_defect"]) for r in rows], atol=1e-4)
    names = zipfile.ZipFile(io.BytesIO(model_package_zip(good_run))).namelist()
    assert "model/memory.safetensors" in names


def test_coreset_keeps_coverage_and_can_stop() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(3000, 16, generator=gen), torch.randn(20, 16, generator=gen) + 12])  # a rare cluster
    k = coreset_size(len(x))
    assert int(0.01 * len(x)) <= k <= int(0.1 * len(x)) + 1
    idx = greedy_coreset(x, k)
    assert len(set(idx.tolist())) == len(idx) == k
    assert (idx >= 3000).any()  # the rare patches are remembered (random sampling of 10% might miss them)
    assert nearest_distance(x, x[idx]).max() < nearest_distance(x, x[torch.randperm(len(x))[:k]]).max()
    stopped = greedy_coreset(x, k, should_stop=lambda: True)
    assert 1 <= len(stopped) < k


def test_nearest_distance_is_exact() -> None:
    gen = torch.Generator().manual_seed(1)
    q, bank = torch.randn(500, 24, generator=gen), torch.randn(300, 24, generator=gen)
    assert torch.allclose(nearest_distance(q, bank, chunk=64), torch.cdist(q, bank).min(1).values, atol=1e-4)


def test_stop_while_building_the_memory_keeps_a_model(data: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    real = anomaly_fit.greedy_coreset

    def stop_then_select(*args, **kwargs):
        RunFolder(out).stop_file.touch()
        return real(*args, **kwargs)

    monkeypatch.setattr(anomaly_fit, "greedy_coreset", stop_then_select)
    config = RunConfig(data=str(data["good"]), out=str(out), backbone="resnet10t", start="scratch",
                       strategy="anomaly", good_class="ok", image_size=64)
    assert train_run(config) == "stopped"
    assert "patches chosen so far were kept" in json.loads((out / "status.json").read_text())["message"]
    assert Predictor.load(out).bank.shape[0] >= 1


def test_stop_before_the_memory_keeps_nothing(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    RunFolder(out).stop_file.touch()
    config = RunConfig(data=str(data["good"]), out=str(out), backbone="resnet10t", start="scratch",
                       strategy="anomaly", good_class="ok", image_size=64)
    assert train_run(config) == "stopped"
    assert not (out / "model").exists()


def test_check_allows_one_class_and_warns_below_ten(data: dict[str, Path]) -> None:
    ds = load_dataset(data["good"])
    assert not check_dataset(ds).ok  # a classifier needs two classes
    assert check_dataset(ds, good_only="ok").ok
    few = check_dataset(load_dataset(data["few"]), good_only="ok")
    assert few.ok and any("shaky" in w for w in few.warnings)
    missing = check_dataset(ds, good_only="good")
    assert not missing.ok and "no class 'good'" in missing.problems[0]


def test_cli_exit_codes_and_outputs(data: dict[str, Path], good_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", str(data["good"]), "--out", str(tmp_path / "a"), "--strategy", "anomaly",
                 "--backbone", "resnet10t", "--start", "scratch"]) == 2
    assert "which class holds them" in capsys.readouterr().err
    assert main(["train", str(data["good"]), "--out", str(tmp_path / "b"), *ARGS[:2], "--good-class", "good",
                 *ARGS[4:]]) == 2
    assert main(["export", str(good_run)]) == 2
    assert "not available for good-parts-only models" in capsys.readouterr().err
    assert main(["evaluate", str(good_run), str(data["fresh"]), "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["roc_auc"] > 0.9 and both["catch_rate"] is not None and both["threshold"] == 0.5
    assert main(["evaluate", str(good_run), str(data["fresh_good"]), "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["catch_rate"] is None and alone["roc_auc"] is None and alone["false_alarm_rate"] is not None
    out = tmp_path / "p.csv"
    assert main(["predict", str(good_run), str(data["fresh"]), "--csv", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"score", "verdict"} <= set(rows[0]) and {r["verdict"] for r in rows} <= {"good", "defect", "uncertain"}
    assert "defects caught" in capsys.readouterr().out  # the stain folder counts as defects


def test_patch_stages_are_the_mid_level_strides() -> None:
    import timm

    trunk = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    assert [trunk.feature_info[i]["reduction"] for i in patch_stages(trunk)] == [8, 16]
