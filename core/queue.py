"""One machine, a few training slots: runs wait their turn (first come, first served).

A slot is an OS file lock, so a killed process frees its slot at once and a stale lock
can never block the queue.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, IO

from .jsonio import read_json

__all__ = ["max_concurrent_runs", "wait_for_slot"]

try:
    import fcntl
except ImportError:  # Windows: no queue, runs start at once
    fcntl = None  # type: ignore[assignment]


def max_concurrent_runs(workspace: Path) -> int:
    """``GRAFT_MAX_CONCURRENT_RUNS``, else the workspace setting, else 1."""
    env = os.environ.get("GRAFT_MAX_CONCURRENT_RUNS")
    if env:
        return max(1, int(env))
    settings = read_json(workspace / "settings.json", {}) or {}
    return max(1, int(settings.get("max_concurrent_runs", 1)))


def _try_lock(path: Path) -> IO[str] | None:
    fh = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fh
    except OSError:
        fh.close()
        return None


def _is_my_turn(runs_root: Path, my_run: Path) -> bool:
    """Only the oldest live queued run may take a free slot."""
    from .runs import read_status  # local: runs imports nothing from here

    mine = (read_status(my_run) or {}).get("created", 0)
    for other in runs_root.iterdir():
        if other == my_run or not other.is_dir():
            continue
        if (read_json(other / "status.json", {}) or {}).get("executor", "local") != "local":
            continue  # a run on a cluster waits in the cluster's queue, not in this computer's
        status = read_status(other)
        if status.get("state") == "queued" and (status.get("created", 0), other.name) < (mine, my_run.name):
            return False
    return True


def wait_for_slot(workspace: Path, run_dir: Path, should_abort: Callable[[], bool],
                  on_wait: Callable[[], None], poll_s: float = 1.0) -> IO[str] | None:
    """Block until this run may train; returns the held lock (keep it open), or None if aborted."""
    if fcntl is None:
        return _NoLock()
    slots = workspace / ".queue"
    slots.mkdir(parents=True, exist_ok=True)
    while True:
        if should_abort():
            return None
        if _is_my_turn(run_dir.parent, run_dir):
            for k in range(max_concurrent_runs(workspace)):
                held = _try_lock(slots / f"slot-{k}.lock")
                if held is not None:
                    return held
        on_wait()
        time.sleep(poll_s)


class _NoLock:
    def close(self) -> None:
        pass
