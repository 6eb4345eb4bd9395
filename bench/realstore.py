"""Finished fits of section 7, kept next to the report so a rerun continues where the last one stopped.

The section's ~35 fits take over an hour on an idle 2-core CPU, more on a busy one. Every finished
fit is appended to ``docs/bench/real_fits.jsonl`` under a key of the settings that change its result;
a rerun reuses it. A fit's key holds only what it depends on: the plan's size (which methods, how
many seeds) does not change a fit, and Graft's test-time views change Graft's fits, not the
baselines'. Delete the file after changing a recipe, so every fit is measured again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from .profiles import RealCfg
from .realfit import Score

__all__ = ["FitStore", "settings_key", "BASELINES"]

BASELINES = ("probe", "plain", "plain-scratch")  # not Graft: no Graft setting reaches them
_FIT_FIELDS = ("backbone", "weights", "test_per_class", "image_size", "epochs", "plain_epochs")


def settings_key(cfg: RealCfg, sizes: dict[str, int], method: str) -> str:
    """A short fingerprint of everything that changes the result of a fit of ``method``."""
    from core.config import DEFAULT_VIEWS

    fields = {k: getattr(cfg, k) for k in _FIT_FIELDS}
    views = {} if method in BASELINES else {"views": DEFAULT_VIEWS}  # Graft fits score with the default views
    text = json.dumps({"cfg": fields, "sizes": sizes, **views}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class FitStore:
    """Append-only JSON lines of (job, key, score); a record counts when its key is the job's key now."""

    def __init__(self, path: Path, cfg: RealCfg, sizes: dict[str, int]) -> None:
        self.path, self.cfg, self.sizes = path, cfg, sizes

    def key(self, method: str) -> str:
        return settings_key(self.cfg, self.sizes, method)

    def load(self) -> dict[tuple, Score]:
        out: dict[tuple, Score] = {}
        if not self.path.is_file():
            return out
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a killed run
            if rec.get("key") == self.key(rec["job"][1]):
                out[tuple(rec["job"])] = Score(**rec["score"])
        return out

    def add(self, job: Any, score: Score) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rec = {"key": self.key(job.method), "job": list(dataclasses.astuple(job)), "score": dataclasses.asdict(score)}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, default=float) + "\n")
