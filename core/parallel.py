"""A small thread pool for decoding: Pillow releases the GIL while it decodes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from .device import physical_cores

__all__ = ["imap_progress", "ProgressFn"]

T = TypeVar("T")
R = TypeVar("R")
ProgressFn = Callable[[int, int, float], None]  # done, total, eta seconds


def imap_progress(fn: Callable[[T], R], items: Iterable[T], total: int,
                  progress: ProgressFn | None = None, every: float = 0.5) -> Iterator[R]:
    """Map ``fn`` over ``items`` in order on a few threads, reporting progress with an ETA."""
    start = last = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=max(2, physical_cores()))
    try:
        for done, result in enumerate(pool.map(fn, items), start=1):
            now = time.monotonic()
            if progress and (now - last >= every or done == total):
                rate = done / max(now - start, 1e-9)
                progress(done, total, (total - done) / rate)  # may raise to cancel the rest
                last = now
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
