"""Section 4: single-photo latency and batch throughput of a packaged model through ``Predictor``."""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from core import synth
from core.backbones import data_config
from core.device import Runtime, select_runtime
from core.config import DEFAULT_VIEWS
from core.package import ModelSpec, save_package
from core.predict import Predictor
from core.model import Task

from .common import Context, Goal, Section, Table, fmt, median, percentile, time_calls
from .profiles import PredictCfg
from .steps import CLASSES, make_model, runtime_for

__all__ = ["run"]

P50_GOAL_MS = 30.0


def package(cfg: PredictCfg, ctx: Context, views: int = DEFAULT_VIEWS) -> str:
    """Save a random-weight model as a real Graft model package (checking each photo ``views`` ways)."""
    model = make_model(cfg.backbone, cfg.size)
    dcfg = data_config(model.trunk)
    spec = ModelSpec(backbone=cfg.backbone, tasks=[Task("label", CLASSES, "ok")], classes=list(CLASSES),
                     image_size=cfg.size, mean=dcfg["mean"], std=dcfg["std"], interpolation=dcfg["interpolation"],
                     good_class="ok", info={"strategy": "bench"}, views=views)
    return str(save_package(model, spec, ctx.subdir("prediction") / f"model-{views}"))


def photos(cfg: PredictCfg, n: int) -> list[Image.Image]:
    """Camera-sized PIL photos (synthetic defects scaled up to ``cfg.photo``)."""
    rng = np.random.default_rng(5)
    labels = list(CLASSES)
    return [synth.render(labels[i % len(labels)], size=min(cfg.photo), rng=rng).resize(cfg.photo)
            for i in range(n)]


def latency(predictor: Predictor, cfg: PredictCfg, photo: Image.Image) -> dict[str, float]:
    """predict_one in ms (p50/p95), plus its parts: preprocessing and the model call."""
    total = time_calls(lambda: predictor.predict_one(photo), cfg.warmup, cfg.n)
    pre = time_calls(lambda: predictor.preprocess(photo), 1, max(5, cfg.n // 4))
    arr = predictor.preprocess(photo)[None]
    model = time_calls(lambda: predictor.probs_from_arrays(arr), 1, max(5, cfg.n // 4))
    return {"p50": percentile(total, 50) * 1000, "p95": percentile(total, 95) * 1000,
            "preprocess": median(pre) * 1000, "model": median(model) * 1000}


def measure(path: str, cfg: PredictCfg, precision: str, threads: int, batch: list[Image.Image]) -> dict[str, float]:
    """Latency and batch throughput of the package with this precision and torch thread count."""
    runtime: Runtime = runtime_for(precision)
    predictor = Predictor.load(path, runtime)
    torch.set_num_threads(threads)
    try:
        r = latency(predictor, cfg, batch[0])
        predictor.predict(batch[: cfg.batch], batch_size=cfg.batch)  # warm-up at batch size
        t0 = time.perf_counter()
        predictor.predict(batch, batch_size=cfg.batch)
        r["batch_ips"] = len(batch) / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(runtime.threads)
    return r


def run(cfg: PredictCfg, ctx: Context) -> Section:
    paths = {views: package(cfg, ctx, views) for views in sorted({DEFAULT_VIEWS, 1}, reverse=True)}
    batch = photos(cfg, cfg.batch_images)
    graft = select_runtime()  # what Predictor.load picks by default on this machine
    other = "fp32" if graft.precision != "fp32" else "bf16"
    setups = [(graft.precision, graft.threads, DEFAULT_VIEWS), (graft.precision, graft.threads, 1),
              (other, graft.threads, 1)]
    if graft.threads > 1:
        setups.append((graft.precision, 1, 1))
    results: dict[str, dict[str, float]] = {}
    for precision, threads, views in dict.fromkeys(setups):
        name = _setup_name(precision, threads, views)
        results[name] = r = measure(paths[views], cfg, precision, threads, batch)
        ctx.log(f"  {name}: p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, batch {r['batch_ips']:.1f} img/s")
    default = _setup_name(graft.precision, graft.threads, DEFAULT_VIEWS)
    table = Table(["precision, torch threads, views", "p50 ms", "p95 ms", "of which preprocess ms",
                   "of which model ms", f"batch of {cfg.batch}: photos/s"])
    for name, r in results.items():
        mark = " (Graft's default here)" if name == default else ""
        table.rows.append([name + mark, fmt(r["p50"]), fmt(r["p95"]), fmt(r["preprocess"]), fmt(r["model"]),
                           fmt(r["batch_ips"])])
    p50 = results[default]["p50"]
    goals = [Goal(f"p50 single-photo latency ≤ 30 ms ({cfg.backbone}, {cfg.size} px)", "≤ 30 ms",
                  f"{p50:.1f} ms", p50 <= P50_GOAL_MS)]
    notes = [f"`Predictor.predict_one` on a {cfg.photo[0]}×{cfg.photo[1]} PIL photo, {cfg.n} calls after "
             f"{cfg.warmup} warm-up calls; batch throughput is `Predictor.predict` over {len(batch)} PIL photos. "
             "Preprocess = `Predictor.preprocess` (resize to the model size); model = `probs_from_arrays` "
             "for one photo (normalise, forward, softmax). The goal is judged on Graft's default row.",
             f"Views: a model checks each photo {DEFAULT_VIEWS} ways by default (mirrored and turned, then averaged: "
             "fewer mistakes on real photos, section 7 \"Test-time views\"), which costs about that many forward "
             "passes; \"Check each photo 8 ways\" off on the Model page gives the 1-view rows."]
    best = min(results, key=lambda k: results[k]["p50"])
    if best != default:
        notes.append(f"For a single photo '{best}' is faster than Graft's default '{default}' "
                     f"({results[best]['p50']:.1f} ms against {p50:.1f} ms).")
    return Section("prediction", "4. Prediction", "How fast a saved model scores one photo, and many.",
                   [table], goals, notes, data={"results": results, "default": default})


def _setup_name(precision: str, threads: int, views: int) -> str:
    return f"{precision}, {threads} thread{'s' if threads > 1 else ''}, {views} view{'s' if views > 1 else ''}"
