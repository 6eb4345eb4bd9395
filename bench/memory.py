"""Section 6: memory and time of the decode cache at scale; past the RAM limit it must spill to a memmap."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .common import Context, Goal, Section, Table, fmt
from .data import dataset_paths, filler_jpegs
from .plots import line_chart
from .profiles import MemoryCfg

__all__ = ["run", "child"]

ROOT = Path(__file__).resolve().parent.parent
BOUNDED = 0.25  # "bounded": private memory grows by less than this share of the decoded array


def subset_csv(root: Path, n: int) -> Path:
    """A labels CSV naming the first ``n`` photos: one folder of JPEGs serves every dataset size."""
    path = root / f"first_{n}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label"])
        w.writerows(dataset_paths(root)[:n])
    return path


def child(data: Path, size: int, feeder_images: int, ram_mb: int, hashes: Path) -> dict:
    """Measure in a fresh Python process (see bench/memory_child.py) with this cache RAM limit."""
    env = {**os.environ, "GRAFT_CACHE_RAM_MB": str(ram_mb),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    out = subprocess.run([sys.executable, "-m", "bench.memory_child", str(data), str(size), str(feeder_images),
                          str(hashes)], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(cfg: MemoryCfg, ctx: Context) -> Section:
    root = ctx.subdir("memory") / "photos"
    t0 = time.perf_counter()
    filler_jpegs(root, max(cfg.counts), cfg.source_size)
    ctx.log(f"  wrote {max(cfg.counts)} JPEGs ({time.perf_counter() - t0:.0f} s)")
    results: dict[str, dict] = {}
    for n in cfg.counts:
        hashes = root / f"hashes_{n}.json"
        results[f"{n}"] = r = child(subset_csv(root, n), cfg.size, cfg.feeder_images, cfg.ram_limit_mb, hashes)
        ctx.log(f"  {n}: decode {r['decode_s']:.1f} s, memmap {r['memmap']}, "
                f"private {r['base_anon_mb']:.0f} → {r['cache_peak_anon_mb']:.0f} MB")
    big = max(cfg.counts)  # the same photos held in RAM (cache hit, limit raised) for contrast
    ram_mb = int(results[f"{big}"]["array_mb"] * 2 + 64)
    results[f"{big}, limit raised"] = r = child(subset_csv(root, big), cfg.size, cfg.feeder_images, ram_mb,
                                                root / f"hashes_{big}.json")
    ctx.log(f"  {big} in RAM: private {r['base_anon_mb']:.0f} → {r['cache_peak_anon_mb']:.0f} MB")
    return _section(cfg, ctx, results, big)


def _section(cfg: MemoryCfg, ctx: Context, results: dict[str, dict], big: int) -> Section:
    table = Table(["photos", "cache limit MB", "array MB", "memmap", "check s", "decode s", "reopen s",
                   "feeder photos/s", "private MB: start → cache peak → feeder peak", "peak RSS MB"])
    for name, r in results.items():
        table.rows.append([name, fmt(r["limit_mb"], 0), fmt(r["array_mb"], 0), "yes" if r["memmap"] else "no",
                           fmt(r["check_s"], 1) if r["check_s"] else "(cached)", fmt(r["decode_s"], 2),
                           fmt(r["reopen_s"], 2), fmt(r["feed_images"] / r["feed_s"], 0),
                           " → ".join(f"{r[k]:.0f}" for k in ("base_anon_mb", "cache_peak_anon_mb",
                                                               "feed_peak_anon_mb")),
                           fmt(r["peak_rss_mb"], 0)])
    spill = results[f"{big}"]
    growth = spill["cache_peak_anon_mb"] - spill["base_anon_mb"]
    bounded = spill["memmap"] and growth <= BOUNDED * spill["array_mb"]
    goals = [Goal(f"At {big} photos the cache spills to a memmap and private memory stays bounded",
                  f"memmap, private growth while caching ≤ {BOUNDED:.0%} of the array",
                  f"memmap {spill['memmap']}, private memory +{growth:.0f} MB while caching a "
                  f"{spill['array_mb']:.0f} MB array", bool(bounded))]
    path, link = ctx.plot_path("memory.png")
    line_chart(path, {f"{name}: {kind}": ([s[0] for s in r["samples"]], [s[k] for s in r["samples"]])
                      for name, r in results.items() for kind, k in (("private", 2), ("RSS", 1))},
               xlabel="seconds", ylabel="MB", title="Memory while decoding and feeding",
               markers=False, dashed=[f"{name}: RSS" for name in results])
    notes = [f"Synthetic {cfg.source_size} px JPEGs decoded to {cfg.size} px by `core.imagecache.decoded_images`, "
             f"each size in a fresh process with `GRAFT_CACHE_RAM_MB={cfg.ram_limit_mb}`; check = "
             "`core.check.check_dataset` (hashes every file), decode = the first call (cache miss), reopen = the "
             f"second (cache hit), feeder = one augmented pass of batches of 32 over {spill['feed_images']} photos "
             "(its float batches and augmentation need their own working memory).",
             "Private memory is the process's anonymous resident memory (RssAnon, sampled every 50 ms); RSS also "
             "counts the memmap's file pages, which are page cache the kernel can drop. Peak RSS is VmHWM. The "
             "last row reopens the same cache with the limit raised, so the array is loaded into RAM: what the "
             "spill avoids."]
    return Section("memory", "6. Memory at scale", "Time and memory of decoding many photos into Graft's image "
                   "cache, and whether it stays bounded past `GRAFT_CACHE_RAM_MB`.", [table], goals, notes, [link],
                   data={"results": {k: {kk: vv for kk, vv in v.items() if kk != "samples"}
                                     for k, v in results.items()}})
