"""Section: what cross-validation costs. 5-fold feature extraction against one feature-extraction run.

The goal (issue 9): 5 folds of feature extraction on 300 photos take at most 1.5x one run, because the
features are computed once for every photo and only the small head is fitted per fold (and once more
for the model that ships). Both runs start from an empty cache, so each pays its own decode and features.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .common import Context, Goal, Section, Table, fmt
from .data import dataset_paths, defect_photos
from .profiles import FeaturesCfg
from .runs import TrainResult, train
from .steps import CLASSES

__all__ = ["run", "CV_GOAL"]

CV_GOAL, FOLDS = 1.5, 5
PHOTOS_PER_FEATURE_IMAGE = 1.5  # this section uses 1.5x the features section's photos: 300 in the full profile


def _timed(root: Path, out: Path, cache: Path, folds: int, cfg: FeaturesCfg) -> TrainResult:
    """One ``train_run`` with its own cache folder (nothing decoded or extracted before it, unless reused)."""
    saved = os.environ.get("GRAFT_CACHE_DIR")
    os.environ["GRAFT_CACHE_DIR"] = str(cache)
    try:
        return train(root, out, backbone=cfg.backbone, start="scratch", strategy="feature-extraction",
                     image_size=cfg.size, seed=0, epochs=cfg.head_epochs, good_class="ok", folds=folds)
    finally:
        if saved is None:
            os.environ.pop("GRAFT_CACHE_DIR", None)
        else:
            os.environ["GRAFT_CACHE_DIR"] = saved


def _phases(r: TrainResult) -> dict[str, Any]:
    """Seconds from run_start: features done, the folds, the final fit (from the run's events)."""
    start = r.at("run_start") or 0.0
    features = r.at("progress", "features")
    folds = [e for e in r.of("fold") if e.get("stage") == "fold" and e.get("state") == "done"]
    final = [e for e in r.of("fold") if e.get("stage") == "final"]
    last_epoch = r.at("epoch")
    out = {"wall": r.wall_s, "prepare": start, "features": (features - start) if features else 0.0,
           "fits": (last_epoch - (features or start)) if last_epoch else 0.0, "folds": len(folds),
           "epochs": len(r.epochs)}
    if final:
        out["final_fit"] = (last_epoch or 0.0) - (final[-1]["time"] - r.started)
    return out


def run(cfg: FeaturesCfg, ctx: Context) -> Section:
    work = ctx.subdir("crossval")
    photos = max(len(CLASSES) * 3, round(cfg.images * PHOTOS_PER_FEATURE_IMAGE))
    root = defect_photos(work / "data", photos // len(CLASSES), cfg.size, seed=33)
    n = len(dataset_paths(root))
    results = {}
    # cross-validation first: it pays the process's warm-up, so the ratio can only be pessimistic
    for name, folds in (("cv_cold", FOLDS), ("one_cold", 1)):
        results[name] = _phases(_timed(root, work / name, work / f"cache-{name}", folds, cfg))
    for name, folds, cache in (("cv_warm", FOLDS, "cache-cv_cold"), ("one_warm", 1, "cache-one_cold")):
        results[name] = _phases(_timed(root, work / name, work / cache, folds, cfg))
    cold = results["cv_cold"]["wall"] / results["one_cold"]["wall"]
    warm = results["cv_warm"]["wall"] / results["one_warm"]["wall"]
    ctx.log(f"  5-fold {results['cv_cold']['wall']:.1f} s vs one run {results['one_cold']['wall']:.1f} s "
            f"({cold:.2f}x); with cached features {warm:.2f}x")
    rows = []
    for key, label in (("one_cold", "one split, empty cache"), ("cv_cold", f"{FOLDS} folds + final fit, empty cache"),
                       ("one_warm", "one split, features cached"), ("cv_warm", f"{FOLDS} folds + final fit, features cached")):
        r = results[key]
        rows.append([label, fmt(r["prepare"], 2), fmt(r["features"], 2), fmt(r["fits"], 2), str(r["epochs"]),
                     fmt(r["wall"], 2)])
    table = Table(["", "check + decode", "features", "head fits", "epochs (all fits)", "whole `train_run`"], rows)
    goals = [Goal(f"{FOLDS}-fold feature extraction on {n} photos ≤ {CV_GOAL}× one feature-extraction run",
                  f"≤ {CV_GOAL}×", f"{cold:.2f}×", cold <= CV_GOAL)]
    notes = [
        f"{n} photos at {cfg.size} px, `{cfg.backbone}` (random weights), Graft's feature-extraction settings, "
        f"good class 'ok'. Each run starts from its own empty cache; the cached rows reuse it. Seconds from the "
        "run's events: check + decode until `run_start`, features until the last `features` progress, head fits "
        "from there to the last `epoch` event.",
        f"Cross-validation fits {FOLDS} heads (each choosing its epoch on a validation share of the other folds) "
        "and a final head on every photo; the features are computed once for all of them. With cached features "
        f"the ratio is {warm:.2f}× (the head fits and scoring dominate then).",
        "Cross-validation ran first, so it also paid the process's warm-up: the ratio is, if anything, pessimistic.",
    ]
    return Section("crossval", "Cross-validation cost", "K-fold cross-validation scores every photo with a model that "
                   "never trained on it; feature extraction shares one pass over the photos among all folds.",
                   [table], goals, notes, data={"results": results, "ratio_cold": cold, "ratio_warm": warm,
                                                "photos": n})
