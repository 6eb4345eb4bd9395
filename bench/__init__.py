"""Graft's benchmark (issue 4): speed, pipeline overhead, feature caching, prediction, transfer, memory,
and transfer on real photos (issue 10).

``python -m bench [--quick] [--out docs/benchmarks.md] [--only speed,memory]``. Every section is a module
with ``run(cfg, ctx) -> Section``; :func:`run_all` runs them in a throwaway cache and writes the report.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

from .common import Context, Section, machine_info
from .profiles import PROFILES, Profile

__all__ = ["SECTIONS", "run_all", "run_sections"]

# section key -> (module, profile attribute)
SECTIONS: dict[str, tuple[str, str]] = {
    "speed": ("speed", "speed"),
    "overhead": ("pipeline_overhead", "overhead"),
    "features": ("features", "features"),
    "prediction": ("prediction", "predict"),
    "transfer": ("transfer", "transfer"),
    "memory": ("memory", "memory"),
    "crossval": ("crossval", "features"),  # issue 9: what K-fold cross-validation costs
    "real": ("realphotos", "real"),
    "ddp": ("ddp", "ddp"),  # issue 13: one run on 1 vs 2 DDP processes
    "anomaly": ("anomaly", "anomaly"),  # issue 11: good parts only (anomaly detection) on MVTec bottle
    "eta": ("eta", "eta"),  # issue 12: the whole run's time left and start-up, on real runs
    "firstpaint": ("firstpaint", "firstpaint"),  # issue 12: the app's first paint on a fresh server
}


def run_sections(profile: Profile, ctx: Context, only: list[str] | None = None) -> list[Section]:
    """Run the chosen sections (all by default) in order, timing each."""
    out = []
    for key in only or list(SECTIONS):
        module, attr = SECTIONS[key]
        ctx.log(f"[{key}]")
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        section = importlib.import_module(f".{module}", __name__).run(getattr(profile, attr), ctx)
        section.seconds, section.load_before = time.perf_counter() - t0, load
        ctx.log(f"[{key}] done in {section.seconds:.0f} s")
        out.append(section)
    return out


def run_all(profile: str | Profile, out: str | Path, only: list[str] | None = None,
            log: Callable[[str], None] = print) -> tuple[list[Section], str]:
    """Run the benchmark with a private cache and temp data; write the report to ``out``, plots next to it.

    Returns the sections and the Markdown text.
    """
    from .report import render

    prof = PROFILES[profile] if isinstance(profile, str) else profile
    out = Path(out)
    saved = {k: os.environ.get(k) for k in ("GRAFT_CACHE_DIR", "HF_HUB_OFFLINE")}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="graft-bench-") as tmp:
        os.environ["GRAFT_CACHE_DIR"] = str(Path(tmp) / "cache")
        os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is downloaded: every backbone starts from random weights
        try:
            machine = machine_info()
            ctx = Context(work=Path(tmp) / "work", plots=out.parent / "bench", log=log)
            sections = run_sections(prof, ctx, only)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    text = render(sections, machine, prof.name, time.perf_counter() - t0)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return sections, text
