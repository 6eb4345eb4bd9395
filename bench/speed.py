"""Section 1: raw training and inference speed of each curated backbone, fp32 against bf16."""

from __future__ import annotations

import gc
import time

from core.backbones import CURATED
from core.device import cpu_supports_bf16

from .common import Context, Section, Table, fmt, median, time_calls
from .plots import bar_chart
from .profiles import SpeedCfg
from .steps import infer_step, make_model, random_batch, runtime_for, train_step

__all__ = ["run"]

PRECISIONS = ("fp32", "bf16")


def measure(name: str, cfg: SpeedCfg) -> dict[str, float]:
    """Images/s for train and infer in each precision, from the median step time."""
    x, y = random_batch(cfg.batch, cfg.size)
    out: dict[str, float] = {}
    for precision in PRECISIONS:
        runtime = runtime_for(precision)
        model = make_model(name, cfg.size)
        times = time_calls(train_step(model, runtime, x, y), cfg.warmup, cfg.iters, cfg.budget_s, min_iters=2)
        out[f"train_{precision}"] = cfg.batch / median(times)
        times = time_calls(infer_step(model, runtime, x), cfg.warmup, cfg.iters, cfg.budget_s, min_iters=2)
        out[f"infer_{precision}"] = cfg.batch / median(times)
        del model
        gc.collect()
    return out


def backbones(cfg: SpeedCfg) -> list[str]:
    """The names to measure: the configured ones, else the curated list (optionally its first few)."""
    names = list(cfg.backbones) or [b.name for b in CURATED]
    return names[: cfg.first] if cfg.first else names


def run(cfg: SpeedCfg, ctx: Context) -> Section:
    results: dict[str, dict[str, float]] = {}
    for name in backbones(cfg):
        t0 = time.perf_counter()
        results[name] = measure(name, cfg)
        ctx.log(f"  {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in results[name].items())
                + f" img/s ({time.perf_counter() - t0:.0f} s)")
    table = Table(["backbone", "train fp32", "train bf16", "bf16 gain", "infer fp32", "infer bf16", "bf16 gain"])
    for name, r in results.items():
        table.rows.append([f"`{name}`", fmt(r["train_fp32"]), fmt(r["train_bf16"]),
                           f"{r['train_bf16'] / r['train_fp32']:.2f}×", fmt(r["infer_fp32"]), fmt(r["infer_bf16"]),
                           f"{r['infer_bf16'] / r['infer_fp32']:.2f}×"])
    path, link = ctx.plot_path("speed.png")
    bar_chart(path, [n.split(".")[0] for n in results],
              {f"{kind} {p}": [r[f"{kind}_{p}"] for r in results.values()] for kind in ("train", "infer")
               for p in PRECISIONS},
              ylabel="images / s", title=f"Raw speed at {cfg.size} px, batch {cfg.batch}")
    paste = "{\n" + "".join(f"    {name!r}: ({r['train_bf16']:.1f}, {r['infer_bf16']:.1f}),\n"
                            for name, r in results.items()) + "}"
    notes = [f"Images/s from the median of up to {cfg.iters} timed steps (fewer past {cfg.budget_s:.0f} s, at least "
             f"{min(2, cfg.iters)}) after {cfg.warmup} warm-up step{'s' if cfg.warmup > 1 else ''}, "
             f"batch {cfg.batch}, {cfg.size} px, random weights (`pretrained=False`), channels_last, "
             "AdamW on every weight; bf16 is `torch.autocast` as Graft uses it."]
    if not cpu_supports_bf16():
        notes.append("This CPU has no native bf16 units: bf16 is emulated here and Graft would train in fp32.")
    return Section("speed", "1. Raw speed per curated backbone",
                   "Training and inference throughput of each backbone on random tensors: the ceiling "
                   "Graft's own loop can reach.", [table], [], notes, [link],
                   code=f"# {{name: (train_ips_bf16, infer_ips_bf16)}} for core.backbones.CURATED\n{paste}",
                   data={"results": results})
