"""Finished fits of section 7, kept next to the report so a rerun continues where the last one stopped.

The section's ~35 fits take about an hour on an idle 2-core CPU, more on a busy one. Every finished
fit is appended to ``docs/bench/real_fits.jsonl`` with the settings it ran under; a rerun with the
same settings reuses it. Delete the file after changing a recipe, so every fit is measured again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from .profiles import RealCfg
from .realfit import Score

__all__ = ["FitStore", "settings_key"]

_RUN_ONLY = ("workers", "budget_s")  # how the plan runs, not what it measures


def settings_key(cfg: RealCfg, sizes: dict[str, int]) -> str:
    """A short fingerprint of everything that changes a fit's result."""
    from core.config import DEFAULT_VIEWS

    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _RUN_ONLY}
    settings = {"cfg": fields, "sizes": sizes, **({"views": DEFAULT_VIEWS} if DEFAULT_VIEWS != 1 else {})}
    text = json.dumps(settings, sort_keys=True, default=str)  # Graft fits score with the default test-time views
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class FitStore:
    """Append-only JSON lines of (job, score) under one settings key."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key

    def load(self) -> dict[tuple, Score]:
        out: dict[tuple, Score] = {}
        if not self.path.is_file():
            return out
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a killed run
            if rec.get("key") == self.key:
                out[tuple(rec["job"])] = Score(**rec["score"])
        return out

    def add(self, job: Any, score: Score) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rec = {"key": self.key, "job": list(dataclasses.astuple(job)), "score": dataclasses.asdict(score)}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, default=float) + "\n")
