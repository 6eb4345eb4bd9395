"""Section 8: good parts only (anomaly detection) on MVTec bottle, with the shared ImageNet weights.

The memory is built through the real training path (``core.pipeline.train_run``, ``--strategy anomaly``)
from the first ``cfg.train_photos`` train/good photos (the run keeps 15% of them aside to set the threshold),
then the package is scored on MVTec's test set (20 good, 63 defective, with masks): image ROC AUC, pixel
ROC AUC, and catch rate / false alarms at the default threshold (1% target false alarms). The same with
random weights shows what the pretrained features buy. Timings are ratios measured in the same run.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .common import Context, Goal, Section, Table, median
from .profiles import AnomalyCfg
from .realdata import shared_root

__all__ = ["run"]

TITLE = "8. Good parts only (anomaly detection)"
INTRO = ("MVTec AD bottle: a memory of good patches (PatchCore-style, `core.anomaly`) built from good photos only, "
         "through `python -m core train --strategy anomaly`, scored on MVTec's test photos.")


def _dataset(root: Path, base: Path, files: list[Path], label: str) -> Path:
    """A class folder of the photos in the bench's throwaway folder (hard links where possible; Graft's
    dataset loader skips symlinks on purpose)."""
    (root / label).mkdir(parents=True, exist_ok=True)
    for f in files:
        link = root / label / f"{f.parent.name}_{f.name}"
        if not link.exists():
            try:
                os.link(f, link)
            except OSError:
                shutil.copyfile(f, link)
    return root


def _test_set(base: Path, work: Path, per_type: int | None = None) -> tuple[Path, list[tuple[Path, Path | None]]]:
    """MVTec's test photos as a dataset (good + one folder per defect type) and (photo, mask) pairs."""
    root, pairs = work / "test", []
    for kind in sorted(p for p in (base / "test").iterdir() if p.is_dir()):
        files = (sorted(kind.glob("*.jpg")) + sorted(kind.glob("*.png")))[:per_type]
        _dataset(root, base, files, kind.name)
        for f in files:
            mask = base / "ground_truth" / kind.name / f"{f.stem}_mask.png"
            pairs.append((root / kind.name / f"{kind.name}_{f.name}", mask if mask.is_file() else None))
    return root, pairs


def _train(cfg: AnomalyCfg, data: Path, out: Path, start: str) -> tuple[float, dict]:
    from core.config import RunConfig
    from core.jsonio import read_json
    from core.pipeline import train_run

    config = RunConfig(data=str(data), out=str(out), backbone=cfg.backbone, start=start, strategy="anomaly",
                       good_class="good", image_size=cfg.size, test_fraction=0.0, folds=1)
    t0 = time.perf_counter()
    state = train_run(config)
    seconds = time.perf_counter() - t0
    metrics = read_json(out / "metrics.json") or {}
    return seconds, {"state": state, **metrics.get("anomaly", {}), **_phases(out)}


def _phases(out: Path) -> dict:
    """Seconds of the fit's own patch-feature pass and of the rest (memory, scoring, files), from its events."""
    from core.runs import RunFolder

    events = RunFolder(out).events()
    start = next(e["time"] for e in events if e["event"] == "run_start")
    features = max(e["time"] for e in events if e.get("phase") == "features")
    end = next(e["time"] for e in events if e["event"] == "run_end")
    return {"features_s": features - start, "after_features_s": end - features}


def _pixel_auc(predictor, pairs: list[tuple[Path, Path | None]]) -> float:
    from sklearn.metrics import roc_auc_score

    truth, scores = [], []
    size = predictor.spec.image_size
    for photo, mask in pairs:
        scores.append(predictor.heatmap(str(photo)).ravel())
        if mask is None:
            truth.append(np.zeros(size * size, dtype=bool))
        else:
            m = Image.open(mask).convert("L").resize((size, size), Image.NEAREST)
            truth.append(np.asarray(m).ravel() > 127)
    return float(roc_auc_score(np.concatenate(truth), np.concatenate(scores)))


def _quality(run: Path, test: Path, pairs: list) -> dict:
    from core.evaluate import evaluate_model
    from core.predict import Predictor

    predictor = Predictor.load(run)
    m = evaluate_model(run, test, predictor)
    ranges = m.get("ranges") or {}
    return {"roc_auc": m["roc_auc"], "catch_rate": m["catch_rate"], "catch_range": ranges.get("catch_rate"),
            "false_alarm_rate": m["false_alarm_rate"], "false_alarms": m["false_alarms"], "good": m["good_parts"],
            "false_alarm_range": ranges.get("false_alarm_rate"), "pixel_auc": _pixel_auc(predictor, pairs),
            "n": m["n"]}


def _timings(cfg: AnomalyCfg, run: Path, photo: Path) -> dict:
    """One feature pass over the training photos, predict p50 with heatmap vs a plain forward, kNN choices."""
    from core.augment import to_model_input
    from core.predict import Predictor

    predictor = Predictor.load(run)
    pixels = predictor.preprocess(str(photo))

    def forward(arrays: np.ndarray) -> None:
        x = to_model_input(torch.from_numpy(arrays), predictor.mean, predictor.std)
        with torch.inference_mode(), predictor.runtime.autocast():
            predictor.model.trunk(x)

    batch, batches = np.stack([pixels] * cfg.batch), max(1, cfg.train_photos // cfg.batch)
    forward(batch)
    t0 = time.perf_counter()
    for _ in range(batches):
        forward(batch)
    feature_pass = (time.perf_counter() - t0) * cfg.train_photos / (batches * cfg.batch)
    photo = Image.fromarray(pixels)
    plain, one, score_only = _p50s([lambda: forward(pixels[None]), lambda: predictor.predict_with_heatmap(photo),
                                    lambda: predictor.probs_from_arrays(pixels[None])], cfg.predict_n)
    return {"feature_pass_s": feature_pass, "plain_p50": plain, "anomaly_p50": one, "score_only_p50": score_only,
            **_knn(predictor, pixels)}


def _p50s(fns: list, n: int) -> list[float]:
    """p50 of each call, the calls interleaved so a busy CPU slows them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [median(t) for t in times]


def _p50(fn, n: int) -> float:
    return _p50s([fn], n)[0]


def _knn(predictor, pixels: np.ndarray) -> dict:
    """The search for one photo's patches: torch matrix products vs scikit-learn's brute force."""
    from sklearn.neighbors import NearestNeighbors

    from core.anomaly import nearest_distance

    from core.augment import to_model_input

    with torch.inference_mode():
        feats = predictor.extractor(to_model_input(torch.from_numpy(pixels[None]), predictor.mean,
                                                   predictor.std)).float()
    q = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    bank = predictor.bank
    index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(bank.numpy())
    return {"knn_torch_p50": _p50(lambda: nearest_distance(q, bank), 10),
            "knn_sklearn_p50": _p50(lambda: index.kneighbors(q.numpy()), 10), "queries": len(q)}


def _memory_1000(run: Path) -> dict:
    """The bank and search memory for 1,000 good photos, computed from this run's patch grid and width."""
    from core.anomaly import PROJECTION_DIMS, coreset_size
    from core.jsonio import read_json

    spec = read_json(run / "model" / "model.json")["anomaly"]
    grid, dims = spec["grid"], spec["dims"]
    patches = 1000 * grid[0] * grid[1]
    bank = coreset_size(patches)
    return {"patches": patches, "bank": bank, "bank_mb": bank * dims * 2 / 1e6,
            "search_mb": (4096 * bank * 4 + bank * dims * 4) / 1e6, "train_patches_mb": patches * dims * 2 / 1e6,
            "projection_mb": patches * PROJECTION_DIMS * 4 / 1e6}


def run(cfg: AnomalyCfg, ctx: Context) -> Section:
    root = shared_root()
    base = root / "datasets" / "mvtec_bottle" if root else None
    if base is None or not base.is_dir() or not (root / cfg.weights).is_file():
        return Section("anomaly", TITLE, INTRO, [Table(["skipped"], [["../shared (MVTec bottle, weights) not found"]])],
                       notes=["Set GRAFT_SHARED to the folder holding datasets/ and weights/ to run this section."])
    good = sorted((base / "train" / "good").glob("*.jpg"))[: cfg.train_photos]
    train = _dataset(ctx.subdir("anomaly") / "train", base, good, "good")
    test, pairs = _test_set(base, ctx.subdir("anomaly"), cfg.test_per_type)
    results = {}
    for name, start in (("imagenet", f"file:{root / cfg.weights}"), ("random", "scratch")):
        out = ctx.subdir("anomaly") / f"run-{name}"
        ctx.log(f"  anomaly: training ({name} weights)")
        seconds, memory = _train(cfg, train, out, start)
        results[name] = {"train_s": seconds, **memory, **_quality(out, test, pairs)}
    run_dir = ctx.subdir("anomaly") / "run-imagenet"
    timing = _timings(cfg, run_dir, pairs[0][0])
    memory = _memory_1000(run_dir)
    return _section(cfg, results, timing, memory, len(good))


def _rate(value: float | None, k: int | None = None, n: int | None = None, rng: list | None = None) -> str:
    if value is None:
        return "–"
    text = f"{value:.1%}"
    if k is not None:
        text += f" ({k} of {n})"
    if rng:
        text += f", 95% range {rng[0]:.1%}–{rng[1]:.1%}"
    return text


def _section(cfg: AnomalyCfg, results: dict, timing: dict, memory: dict, photos: int) -> Section:
    quality = Table(["weights", "image ROC AUC", "pixel ROC AUC", "catch rate", "false alarms on test/good",
                     "bank", "fit (features + memory + threshold)", "train_run wall time"])
    for name, r in results.items():
        quality.rows.append([name, f"{r['roc_auc']:.3f}", f"{r['pixel_auc']:.3f}",
                             _rate(r["catch_rate"], rng=r["catch_range"]),
                             _rate(r["false_alarm_rate"], r["false_alarms"], r["good"], r["false_alarm_range"]),
                             f"{r['bank_size']} of {r['patches']} patches", f"{r['fit_seconds']:.1f} s",
                             f"{r['train_s']:.1f} s"])
    img = results["imagenet"]
    fit, feature_pass = img["fit_seconds"], timing["feature_pass_s"]
    own = img["features_s"] + img["after_features_s"]  # from run_start to run_end, by its events
    speed = Table(["what", "measured"], [
        ["one plain feature pass over the photos (batch forward)", f"{feature_pass:.2f} s for {photos} photos"],
        ["anomaly fit (patch features + coreset + scoring the held-out photos)", f"{fit:.2f} s"],
        ["  of which the patch-feature pass / memory, threshold and files (same run)",
         f"{img['features_s']:.1f} s / {img['after_features_s']:.1f} s: the fit is "
         f"{own / img['features_s']:.1f}x its own feature pass"],
        ["train_run wall time (check, decode, fit, files)", f"{img['train_s']:.1f} s"],
        ["predict one photo with its heatmap (predict_with_heatmap, 224 px photo), p50",
         f"{timing['anomaly_p50'] * 1e3:.1f} ms"],
        ["score only (no heatmap), p50", f"{timing['score_only_p50'] * 1e3:.1f} ms"],
        ["plain forward of the same backbone, one photo, p50", f"{timing['plain_p50'] * 1e3:.1f} ms"],
        [f"nearest-neighbour search, {timing['queries']} patches: torch matmul / scikit-learn brute",
         f"{timing['knn_torch_p50'] * 1e3:.1f} ms / {timing['knn_sklearn_p50'] * 1e3:.1f} ms"],
        ["1,000 good photos: bank (float16) / search working set",
         f"{memory['bank']} patches, {memory['bank_mb']:.1f} MB / {memory['search_mb']:.0f} MB"],
        ["1,000 good photos: training-time patches (float16) + coreset projection",
         f"{memory['train_patches_mb']:.0f} MB + {memory['projection_mb']:.0f} MB"],
    ])
    ratio = timing["anomaly_p50"] / timing["plain_p50"]
    goals = [Goal("image ROC AUC on bottle (ImageNet weights)", "≥ 0.98", f"{img['roc_auc']:.3f}",
                  img["roc_auc"] >= 0.98),
             Goal(f"train on {photos} good photos", "≤ 30 s", f"{img['train_s']:.1f} s", img["train_s"] <= 30),
             Goal("fit vs its own feature pass (same run)", "≤ 2×", f"{own / img['features_s']:.1f}×",
                  own <= 2 * img["features_s"]),
             Goal("predict with heatmap vs plain forward (p50)", "≤ 2×", f"{ratio:.1f}×", ratio <= 2),
             Goal("bank + search for 1,000 photos", "< 1 GB", f"{memory['bank_mb'] + memory['search_mb']:.0f} MB",
                  memory["bank_mb"] + memory["search_mb"] < 1000)]
    notes = [f"{cfg.backbone} at {cfg.size} px; the run learns from {photos} train/good photos and keeps 15% of them "
             "aside for the threshold (target 1% false alarms), so the bank holds patches of the other 85%.",
             "Timings on a shared 2-core CPU: compare the ratios, not the absolute seconds.",
             f"kNN: torch matrix products chosen (measured {timing['knn_torch_p50'] * 1e3:.1f} ms vs scikit-learn "
             f"{timing['knn_sklearn_p50'] * 1e3:.1f} ms for one photo); faiss is not installed."]
    return Section("anomaly", TITLE, INTRO, [quality, speed], goals, notes,
                   data={"results": results, "timing": timing, "memory": memory})
