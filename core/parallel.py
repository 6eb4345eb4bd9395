"""Spread per-photo work over the cores: threads (Pillow releases the GIL while it decodes) or processes."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from .device import physical_cores

__all__ = ["imap_progress", "ProgressFn"]

T = TypeVar("T")
R = TypeVar("R")
ProgressFn = Callable[[int, int, float], None]  # done, total, eta seconds


def _pool(processes: bool, workers: int) -> Executor:
    if not processes:
        return ThreadPoolExecutor(max_workers=workers)
    # forkserver: workers start from a clean process, never a fork of one running torch's threads
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))


def imap_progress(fn: Callable[[T], R], items: Iterable[T], total: int,
                  progress: ProgressFn | None = None, every: float = 0.5, *, processes: bool = False,
                  workers: int | None = None) -> Iterator[R]:
    """Map ``fn`` over ``items`` in order on every core, reporting progress with an ETA.

    Args:
        processes: use worker processes instead of threads (``fn`` and items must pickle: a
            module-level function or a ``functools.partial`` of one); pays off where much of
            ``fn`` holds the GIL and there are many cores.
        workers: pool size (default: the physical cores, at least 2).
    """
    start = last = time.monotonic()
    workers = workers or max(2, physical_cores())
    pool = _pool(processes, workers)
    chunk = max(1, min(32, total // (workers * 8))) if processes else 1  # fewer round trips per photo
    try:
        for done, result in enumerate(pool.map(fn, items, chunksize=chunk), start=1):
            now = time.monotonic()
            if progress and (now - last >= every or done == total):
                rate = done / max(now - start, 1e-9)
                progress(done, total, (total - done) / rate)  # may raise to cancel the rest
                last = now
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
