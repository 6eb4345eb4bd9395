"""Run Graft's real training pipeline in-process and read what it recorded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.jsonio import read_json
from core.pipeline import train_run
from core.runs import RunFolder

__all__ = ["TrainResult", "train"]


class TrainResult:
    """A finished run folder: its state, wall time, events and metrics."""

    def __init__(self, path: Path, state: str, started: float, wall_s: float) -> None:
        self.path, self.state, self.started, self.wall_s = path, state, started, wall_s
        self.events: list[dict[str, Any]] = RunFolder(path).events()
        self.metrics: dict[str, Any] = read_json(path / "metrics.json", {}) or {}

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return self.of("epoch")

    def at(self, kind: str, phase: str | None = None, last: bool = True) -> float | None:
        """Seconds after the run started of the last (or first) ``kind`` event, optionally of a progress phase."""
        found = [e for e in self.of(kind) if phase is None or e.get("phase") == phase]
        if not found:
            return None
        return found[-1 if last else 0]["time"] - self.started


def train(data: Path, out: Path, **options: Any) -> TrainResult:
    """``python -m core train`` without the subprocess: the same train_run, same files."""
    options.setdefault("folds", 1)  # each section times one training run; cross-validation has its own section
    config = RunConfig(data=str(data), out=str(out), **options)
    started, t0 = time.time(), time.perf_counter()
    state = train_run(config)
    result = TrainResult(out, state, started, time.perf_counter() - t0)
    if state != "done":
        raise RuntimeError(f"bench run {out.name} ended '{state}': {RunFolder(out).status().get('message')}")
    return result
