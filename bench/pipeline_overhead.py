"""Section 2: Graft's end-to-end fine-tune throughput against the raw model step."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from core.backbones import build, data_config
from core.check import check_dataset
from core.datasets import load_dataset
from core.device import Runtime, select_runtime
from core.feeders import ImageFeeder
from core.imagecache import decoded_images

from .common import Context, Goal, Section, Table, fmt, time_calls
from .data import defect_photos, with_fixed_split
from .profiles import OverheadCfg
from .runs import train
from .steps import CLASSES, make_model, random_batch, train_step

__all__ = ["run"]

GOAL = 0.90


def feeder_ms_per_batch(data: Path, cfg: OverheadCfg) -> dict[str, float]:
    """Time the feeder alone (cache gather + normalise, with and without augmentation) per batch."""
    ds = load_dataset(data)
    report = check_dataset(ds)
    images = decoded_images([s.path for s in ds.samples], [report.hashes[s.rel] for s in ds.samples], cfg.size)
    dcfg = data_config(build(cfg.backbone, "scratch", image_size=cfg.size))
    train_idx = [i for i, s in enumerate(ds.samples) if s.split == "train"]
    y = np.array([ds.classes.index(s.label) for s in ds.samples])
    feeder = ImageFeeder(images, dcfg["mean"], dcfg["std"], splits={"train": train_idx}, targets={"label": y},
                         batch_size=cfg.batch, runtime=select_runtime(), seed=0)
    n = feeder.n_batches("train")
    out = {}
    for augmented in (False, True):
        times = time_calls(lambda: list(feeder.batches("train", train=augmented)), warmup=1, iters=3)
        out["augmented" if augmented else "plain"] = min(times) / n * 1000
    return out


def raw_windows(cfg: OverheadCfg, runtime: Runtime, windows: int) -> list[float]:
    """Images/s of ``windows`` runs of ``train_batches`` raw steps each (after one warm-up step)."""
    if windows <= 0:
        return []
    x, y = random_batch(cfg.batch, cfg.size)
    step = train_step(make_model(cfg.backbone, cfg.size), runtime, x, y)
    step()
    return [cfg.batch * cfg.train_batches / sum(time_calls(step, 0, cfg.train_batches)) for _ in range(windows)]


def run(cfg: OverheadCfg, ctx: Context) -> Section:
    per_class = math.ceil(cfg.train_batches * cfg.batch / len(CLASSES))
    root = defect_photos(ctx.subdir("overhead") / "data", per_class + 2, cfg.size, seed=11)
    data = with_fixed_split(root, per_class)
    runtime = select_runtime()
    raw = raw_windows(cfg, runtime, math.ceil(cfg.repeats / 2))  # raw windows before and after Graft's run
    # fine-tune trains the whole trunk from epoch 1 (after a logistic-regression head); the first 2 epochs warm up
    result = train(data, ctx.work / "overhead" / "run", backbone=cfg.backbone, start="scratch",
                   strategy="fine-tune", epochs=2 + cfg.repeats, image_size=cfg.size, batch_size=cfg.batch, seed=0,
                   patience=100)
    raw += raw_windows(cfg, runtime, cfg.repeats - len(raw))
    graft = [float(e["images_per_s"]) for e in result.epochs[2:]]
    graft_ips, raw_ips = max(graft), max(raw)
    feeder = feeder_ms_per_batch(data, cfg)
    ratio = graft_ips / raw_ips
    step_ms = cfg.batch / raw_ips * 1000
    ctx.log(f"  Graft {graft_ips:.1f} img/s, raw {raw_ips:.1f} img/s ({ratio:.0%}); "
            f"feeder {feeder['augmented']:.0f} ms/batch")
    table = Table(["", "images/s (best)", "images/s (each)", "ms per batch (best)"], [
        ["raw model step (random tensors)", fmt(raw_ips), ", ".join(fmt(v) for v in raw), fmt(step_ms, 0)],
        ["Graft fine-tune epoch (`core.pipeline.train_run`)", fmt(graft_ips), ", ".join(fmt(v) for v in graft),
         fmt(cfg.batch / graft_ips * 1000, 0)],
        ["  of which: feeder, no augmentation", "", "", fmt(feeder["plain"], 0)],
        ["  of which: feeder with augmentation", "", "", fmt(feeder["augmented"], 0)],
    ])
    goal = Goal("Graft's fine-tune throughput ≥ 90% of the raw step", "≥ 90%", f"{ratio:.0%}", ratio >= GOAL)
    epochs = "epoch 3" if cfg.repeats == 1 else f"epochs 3 to {2 + cfg.repeats}"
    windows = f"{cfg.repeats} window{'s' if cfg.repeats > 1 else ''} of {cfg.train_batches} steps"
    notes = [f"`{cfg.backbone}`, {cfg.size} px, batch {cfg.batch}, precision {runtime.precision}. Graft: "
             f"`images_per_s` from `events.jsonl` of fine-tune {epochs} (whole trunk training; epochs 1 and 2 "
             f"warm up), {cfg.train_batches} full batches each of decoded, augmented "
             f"photos. Raw: {windows} after a warm-up step"
             + (", taken before and after Graft's run. The best of each is compared, which filters out other "
                "programs' CPU use." if cfg.repeats > 1 else "."),
             f"The feeder (cache gather, normalise, flips/rotation/brightness) costs "
             f"{feeder['augmented'] / step_ms:.1%} of a raw step."]
    return Section("overhead", "2. Pipeline overhead",
                   "Graft's real fine-tune loop (decoded cache, augmentation, callbacks, events) against the "
                   "bare model step on random tensors: same model, size, precision and batch.",
                   [table], [goal], notes,
                   data={"graft_ips": graft_ips, "raw_ips": raw_ips, "ratio": ratio, "feeder_ms": feeder,
                         "graft_each": graft, "raw_each": raw})
