"""The measured process of section 6: decode a dataset into Graft's image cache and report memory as JSON.

Run by :mod:`bench.memory` as ``python -m bench.memory_child DATA SIZE FEEDER_IMAGES HASHES_JSON`` in a fresh
process, so its peak memory belongs to this work alone. ``GRAFT_CACHE_RAM_MB`` decides spill or RAM.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import rss_mb

__all__ = ["measure"]


class Sampler(threading.Thread):
    """Records (seconds, total MB, anonymous MB) every ``every`` seconds."""

    def __init__(self, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self.t0 = every, [], time.perf_counter()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            r = rss_mb()
            self.samples.append((round(time.perf_counter() - self.t0, 3), round(r["total"], 1), round(r["anon"], 1)))
            self._stop_event.wait(self.every)

    def stop(self) -> list[tuple[float, float, float]]:
        self._stop_event.set()
        self.join()
        return self.samples


def _hashes(ds, hashes_file: Path) -> tuple[list[str], float]:
    """Content hashes from an earlier child's file, else from Graft's dataset check (timed)."""
    if hashes_file.is_file():
        known = json.loads(hashes_file.read_text())
        return [known[s.rel] for s in ds.samples], 0.0
    from core.check import check_dataset

    t0 = time.perf_counter()
    report = check_dataset(ds)
    seconds = time.perf_counter() - t0
    hashes_file.write_text(json.dumps(report.hashes))
    return [report.hashes[s.rel] for s in ds.samples], seconds


def measure(data: Path, size: int, feeder_images: int, hashes_file: Path) -> dict:
    """Decode (cache miss), reopen (cache hit), then one pass of training batches; memory per phase."""
    import torch

    from core.datasets import load_dataset
    from core.device import select_runtime
    from core.feeders import ImageFeeder
    from core.imagecache import decoded_images, ram_limit_bytes

    base = rss_mb()
    sampler = Sampler()
    sampler.start()
    marks = [0.0]  # phase boundaries, seconds on the sampler's clock
    ds = load_dataset(data)
    hashes, check_s = _hashes(ds, hashes_file)
    paths = [s.path for s in ds.samples]
    t0 = time.perf_counter()
    images = decoded_images(paths, hashes, size)
    decode_s = time.perf_counter() - t0
    del images
    t0 = time.perf_counter()
    images = decoded_images(paths, hashes, size)  # what every later run does: a cache hit
    reopen_s = time.perf_counter() - t0
    marks.append(time.perf_counter() - sampler.t0)
    after_cache = rss_mb()
    n_feed = min(feeder_images, len(paths))
    feeder = ImageFeeder(images, [0.5] * 3, [0.25] * 3, splits={"train": list(range(n_feed))},
                         targets={"label": np.zeros(len(paths), dtype=np.int64)}, batch_size=32,
                         runtime=select_runtime(), seed=0)
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in feeder.batches("train", train=True):
            pass
    feed_s = time.perf_counter() - t0
    end = rss_mb()
    samples = sampler.stop()
    marks.append(samples[-1][0] + 1.0)

    def peak(phase: int, also: float) -> float:
        inside = [s[2] for s in samples if marks[phase] <= s[0] <= marks[phase + 1]]
        return max(inside + [also])

    return {"n": len(paths), "array_mb": images.nbytes / 2**20, "memmap": isinstance(images, np.memmap),
            "limit_mb": ram_limit_bytes() / 2**20, "check_s": check_s, "decode_s": decode_s, "reopen_s": reopen_s,
            "feed_s": feed_s, "feed_images": n_feed, "base_anon_mb": base["anon"],
            "cache_peak_anon_mb": peak(0, after_cache["anon"]), "cache_anon_mb": after_cache["anon"],
            "feed_peak_anon_mb": peak(1, end["anon"]), "peak_rss_mb": end["peak"], "marks": marks,
            "samples": samples}


if __name__ == "__main__":
    data_arg, size_arg, feed_arg, hashes_arg = sys.argv[1:5]
    print(json.dumps(measure(Path(data_arg), int(size_arg), int(feed_arg), Path(hashes_arg))))
