"""Section: one run on 1 vs 2 DDP processes (issue 13), on this CPU (gloo) and on a GPU box when present.

The same ``python -m core train ... --processes N`` run (``--processes 1`` is the usual single process;
N > 1 re-launches itself through torchrun), from an empty cache each, measured by the run itself: the
images/s of its training epochs (all ranks together) and its wall time. On a CPU the cores are
shared between the processes (each gets cores / N threads), so no speed-up is promised there: the
section shows what DDP costs or gains where there is no second device. The tiny profile skips it
(starting torch processes takes longer than the smoke test may). On a GPU box the processes
are one per GPU, up to 2.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from .common import Context, Goal, Section, Table, fmt
from .data import defect_photos
from .profiles import DdpCfg
from .runs import TrainResult

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent
SAME_ACCURACY = 0.10  # the goal: 2 processes within 10 points of 1 process's test accuracy


def _train(data: Path, out: Path, cache: Path, processes: int, cfg: DdpCfg, device: str) -> TrainResult:
    """``python -m core train --processes N`` as a subprocess (torchrun needs its own processes)."""
    cmd = [sys.executable, "-m", "core", "train", str(data), "--out", str(out), "--backbone", cfg.backbone,
           "--start", "scratch", "--strategy", cfg.strategy, "--image-size", str(cfg.size), "--batch-size",
           str(cfg.batch), "--epochs", str(cfg.epochs), "--seed", "0", "--folds", "1", "--processes", str(processes)]
    env = {**os.environ, "GRAFT_CACHE_DIR": str(cache), "GRAFT_DEVICE": device, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    started, t0 = time.time(), time.perf_counter()
    done = subprocess.run(cmd, cwd=str(ROOT), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench run {out.name} failed: {done.stderr[-800:]}")
    return TrainResult(out, "done", started, time.perf_counter() - t0)


def _speed(r: TrainResult) -> float:
    """Median images/s of the training epochs after the first (which warms up)."""
    speeds = [e["images_per_s"] for e in r.epochs]
    return statistics.median(speeds[1:] or speeds) if speeds else 0.0


def _rows(data: Path, ctx: Context, cfg: DdpCfg, device: str) -> tuple[list[list[str]], dict[str, list[float]]]:
    measured: dict[str, list[float]] = {}
    rows = []
    for repeat in range(cfg.repeats):
        for n in (1, 2):  # interleaved: a change in the machine's load hits both
            work = ctx.subdir(f"ddp/{device}-{n}-{repeat}")
            r = _train(data, work / "run", work / "cache", n, cfg, device)
            speed = _speed(r)
            measured.setdefault(str(n), []).append(speed)
            measured.setdefault(f"accuracy_{n}", []).append(float(r.metrics.get("accuracy", 0.0)))
            threads = (r.of("run_start") or [{}])[0].get("threads", "?")
            rows.append([device, str(n), str(threads), fmt(speed), fmt(r.wall_s, 0),
                         fmt(100 * r.metrics.get("accuracy", 0.0), 0) + " %"])
    return rows, measured


def run(cfg: DdpCfg, ctx: Context) -> Section:
    if cfg.repeats < 1:  # the tiny profile: starting torch processes costs more than the test may take
        return Section("ddp", "One run on 1 vs 2 DDP processes", "Skipped in this profile.",
                       tables=[Table(["skipped"], [["no repeats in this profile"]])])
    data = defect_photos(ctx.subdir("ddp") / "data", cfg.per_class, cfg.size, seed=13)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and torch.cuda.device_count() >= 2 else [])
    table = Table(["device", "processes", "threads each", "training images/s", "wall s", "test accuracy"])
    data_out: dict[str, dict[str, list[float]]] = {}
    for device in devices:
        rows, measured = _rows(data, ctx, cfg, device)
        table.rows += rows
        data_out[device] = measured
    cpu = data_out["cpu"]
    ratio = statistics.median(cpu["2"]) / max(statistics.median(cpu["1"]), 1e-9)
    notes = [f"On this CPU, 2 processes trained at {ratio:.2f}x the images/s of 1 (median of {cfg.repeats} "
             "interleaved repeats). One process uses a thread per core, each of the 2 processes half of them: on a "
             "quiet CPU this mostly measures DDP's own cost (the gradient all-reduce over gloo, one stop agreement "
             "per batch); on a busy one, threads that wait for each other at every small operation slow the single "
             "process far more (see the load average below). One process per GPU is where DDP pays "
             "(docs/scale-out.md)."]
    gap = max(abs(statistics.median(m["accuracy_2"]) - statistics.median(m["accuracy_1"])) for m in data_out.values())
    goal = Goal("Same accuracy on 2 processes", f"within {100 * SAME_ACCURACY:.0f} points of 1 process",
                f"{100 * gap:.0f} points apart", gap <= SAME_ACCURACY + 1e-9)
    if "cuda" not in data_out:
        notes.append("No machine with 2 GPUs here: the GPU rows are missing.")
    intro = (f"`python -m core train --processes N`, {cfg.strategy} of {cfg.backbone} from random weights at "
             f"{cfg.size} px, {len(list(data.glob('*/*.jpg')))} photos, batch {cfg.batch}, {cfg.epochs} epochs; images/s of "
             "the training epochs after the first, as the run records them (all ranks together).")
    return Section("ddp", "One run on 1 vs 2 DDP processes", intro, tables=[table], goals=[goal], notes=notes,
                   data={"images_per_s": data_out, "ratio_cpu": ratio})
