"""Section 7: transfer on real photos, with genuine ImageNet weights (``../shared``), against plain baselines.

NEU steel surfaces (6 classes) at 5-50 training photos per class and MVTec bottle (ok vs defect):
every Graft strategy from the shared MobileNet-V2 weights and from random weights, beside a linear
probe, a plain timm fine-tune script and the same script from scratch. Graft is fitted through
``core.fitting.Fitter`` on all training photos (no validation split: its recipes are fixed schedules).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from core.backbones import native_size
from core.device import physical_cores
from core.imagesize import choose_image_size

from .common import Context, Section, Table
from .profiles import RealCfg
from .realdata import BOTTLE_GOOD, Photos, bottle_split, neu_split, shared_root
from .realfit import Score, graft_fit, plain_fit, probe_fit
from .realstore import FitStore

__all__ = ["run", "LABELS", "photo_size", "Job", "plan", "fit_one"]

LABELS = {
    "probe": "linear probe (scikit-learn)", "plain": "plain fine-tune script", "plain-scratch": "plain script, scratch",
    "feature-extraction": "Graft feature extraction", "fine-tune": "Graft fine-tune", "progressive": "Graft progressive",
    "multi-task": "Graft multi-task", "scratch": "Graft from scratch",
}
NEU_MULTI_TASK_GOOD = "rolled-in_scale"  # NEU has no "ok" class: multi-task gets one so it has two questions


def photo_size(photos: Photos, backbone: str) -> int:
    """The image size Graft's default would choose for these photos (core.imagesize)."""
    from PIL import Image

    sides = []
    for path, _, _ in photos.train + photos.test:
        with Image.open(path) as im:
            sides.append(im.size)
    sizes = {"median_width": statistics.median(w for w, _ in sides), "median_height": statistics.median(h for _, h in sides)}
    return choose_image_size(sizes, native_size(backbone))


@dataclass(frozen=True)
class Job:
    """One fit of the plan: which method, from which start, on which photos."""

    data: str  # neu | bottle
    method: str
    start: str  # imagenet | random
    shots: int  # photos per class (NEU); 0 for the bottle's fixed split
    seed: int


def fit_one(cfg: RealCfg, job: Job, root: Path, size: int, work: Path) -> Score:
    """Run one job: a baseline or a Graft strategy, scored on the job's test photos."""
    weights = str(root / cfg.weights)
    good = BOTTLE_GOOD if job.data == "bottle" else None
    photos = bottle_split(root) if job.data == "bottle" else neu_split(root, job.shots, job.seed, cfg.test_per_class)
    file = weights if job.start == "imagenet" else None
    if job.method == "probe":
        return probe_fit(photos, arch=cfg.backbone, weights=weights, image_size=size, good=good)
    if job.method in ("plain", "plain-scratch"):
        return plain_fit(photos, arch=cfg.backbone, weights=None if job.method == "plain-scratch" else file,
                         image_size=size, seed=job.seed, epochs=cfg.plain_epochs, good=good)
    mt_good = (good or NEU_MULTI_TASK_GOOD) if job.method == "multi-task" else good
    return graft_fit(photos, work / f"{job.data}-{job.method}-{job.start}-{job.shots}-{job.seed}",
                     strategy=job.method, start=f"file:{file}" if file else "scratch", backbone=cfg.backbone,
                     image_size=size, seed=job.seed, good=mt_good, epochs=cfg.epochs)


def _worker(payload: tuple) -> Score:
    """A pool worker: one torch thread, so two fits share the two cores without OpenMP spin-waits."""
    import torch

    import core.device

    cfg, job, root, size, work, threads = payload
    core.device.physical_cores = lambda: threads
    torch.set_num_threads(threads)
    return fit_one(cfg, job, root, size, work)


def plan(cfg: RealCfg) -> list[Job]:
    """Every fit of the section: NEU at the goal size first, then the curve, then the bottle."""
    jobs = [Job("neu", m, "imagenet", cfg.goal_shots, s) for s in cfg.seeds for m in cfg.methods
            if m not in cfg.slow_methods or s in cfg.seeds[:cfg.slow_seeds]]
    jobs += [Job("neu", m, "random", cfg.goal_shots, s) for s in cfg.seeds[:cfg.random_seeds] for m in cfg.random_methods]
    for shots in cfg.shots:
        if shots != cfg.goal_shots:
            jobs += [Job("neu", m, "imagenet", shots, s) for s in cfg.seeds[:cfg.cheap_seeds]
                     for m in cfg.cheap_methods]
            jobs += [Job("neu", m, "imagenet", shots, s) for s in cfg.seeds[:cfg.curve_seeds] for m in cfg.curve_methods
                     if shots <= cfg.curve_max_shots or m in cfg.curve_large]
    jobs += [Job("bottle", m, "imagenet", 0, s) for s in cfg.bottle_seeds for m in cfg.bottle_methods]
    return jobs


Results = dict[tuple[str, str, int], list[Score]]


def _run_all(cfg: RealCfg, root: Path, ctx: Context, sizes: dict[str, int]) -> tuple[dict[str, Results], list[Job]]:
    """Every fit of the plan (reusing those of earlier runs); also the jobs the time budget left out."""
    store = FitStore(ctx.plots / "real_fits.jsonl", cfg, sizes)
    done = store.load()
    jobs = [j for j in plan(cfg) if dataclasses.astuple(j) not in done]
    out: dict[str, Results] = {"neu": {}, "bottle": {}}
    for job in plan(cfg):
        if dataclasses.astuple(job) in done:
            _record(out, job, done[dataclasses.astuple(job)], ctx)
    work, t0 = ctx.subdir("real"), time.perf_counter()
    threads = 1 if cfg.workers > 1 else physical_cores()
    payloads = [(cfg, j, root, sizes[j.data], work, threads) for j in jobs]
    if cfg.budget_s is not None or cfg.workers <= 1:  # one at a time, so the budget can end the plan
        left = []
        for job, payload in zip(jobs, payloads):
            if cfg.budget_s is not None and time.perf_counter() - t0 >= cfg.budget_s:
                left.append(job)
                continue
            score = fit_one(*payload[:5])
            store.add(job, score)
            _record(out, job, score, ctx)
        return out, left
    with ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for job, score in zip(jobs, pool.map(_worker, payloads)):
            store.add(job, score)
            _record(out, job, score, ctx)
    return out, []


def _record(out: dict[str, Results], job: Job, score: Score, ctx: Context) -> None:
    out[job.data].setdefault((job.method, job.start, job.shots), []).append(score)
    auc = f", ROC AUC {score.auc:.3f}" if score.auc is not None else ""
    ctx.log(f"  {job.data} {job.shots or ''}{'/class ' if job.shots else ''}seed {job.seed} {job.method} "
            f"({job.start}): {100 * score.accuracy:.1f}%{auc} ({score.seconds:.0f} s)")


def run(cfg: RealCfg, ctx: Context) -> Section:
    root = shared_root()
    if root is None or not (root / cfg.weights).is_file():
        return Section("real", TITLE, INTRO, [Table(["skipped"], [["../shared (real photos and weights) not found"]])],
                       notes=["Set GRAFT_SHARED to the folder holding datasets/ and weights/ to run this section."])
    if os.environ.get("GRAFT_BENCH_BUDGET_S"):
        cfg = dataclasses.replace(cfg, budget_s=float(os.environ["GRAFT_BENCH_BUDGET_S"]))
    t0 = time.perf_counter()
    sizes = {"neu": cfg.image_size or photo_size(neu_split(root, 1, 0, cfg.test_per_class), cfg.backbone),
             "bottle": cfg.image_size or photo_size(bottle_split(root), cfg.backbone)}
    results, left = _run_all(cfg, root, ctx, sizes)
    from .realreport import section

    out = section(cfg, ctx, results["neu"], results["bottle"], sizes["neu"], sizes["bottle"], time.perf_counter() - t0)
    if left:
        out.notes.append(f"**Not measured yet** (the time budget ran out; a rerun continues from "
                         f"`docs/bench/real_fits.jsonl`): " + "; ".join(_job_words(j) for j in left) + ".")
    return out


def _job_words(job: Job) -> str:
    size = f" {job.shots}/class" if job.shots else ""
    return f"{job.data}{size} seed {job.seed} {LABELS[job.method]}" + (" (random weights)" if job.start == "random"
                                                                        else "")


TITLE = "7. Transfer on real photos"
INTRO = ("Real steel-surface photos (NEU) and real bottles (MVTec AD) with genuine ImageNet weights "
         "(`../shared/weights`): does each Graft strategy beat what a practitioner would write in a few lines?")
