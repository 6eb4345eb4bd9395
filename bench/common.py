"""Shared pieces of the benchmark: result types, timing, memory readings and the machine record."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["Goal", "Table", "Section", "Context", "time_calls", "median", "percentile", "rss_mb",
           "machine_info", "fmt"]


@dataclass
class Goal:
    """A target from issue 4 and whether this run met it."""

    name: str
    target: str
    measured: str
    met: bool

    def verdict(self) -> str:
        return "met" if self.met else f"MISSED (measured {self.measured}; goal {self.target})"


@dataclass
class Table:
    """A small table for the report: header row plus rows of already formatted cells."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Section:
    """What one bench section measured, ready for the report."""

    key: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)  # PNG paths relative to the report's folder
    code: str = ""  # a literal to paste somewhere (shown as a code block)
    data: dict[str, Any] = field(default_factory=dict)  # raw numbers, for tests and later use
    seconds: float = 0.0
    load_before: float = 0.0  # 1-minute load average when the section started (noise indicator)


@dataclass
class Context:
    """Where a section may write: ``work`` for throwaway data, ``plots`` for PNGs."""

    work: Path
    plots: Path
    plot_prefix: str = "bench"  # plots are referenced as f"{plot_prefix}/{file}" from the report
    log: Callable[[str], None] = print

    def plot_path(self, name: str) -> tuple[Path, str]:
        """(file to write, link for the report) of a plot called ``name``."""
        self.plots.mkdir(parents=True, exist_ok=True)
        return self.plots / name, f"{self.plot_prefix}/{name}"

    def subdir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def time_calls(fn: Callable[[], Any], warmup: int, iters: int, budget_s: float = float("inf"),
               min_iters: int = 1) -> list[float]:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls.

    Stops after ``iters`` timed calls, or earlier once ``min_iters`` are done and ``budget_s``
    seconds of timed calls have passed (slow backbones get fewer samples, not a longer run).
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iters:
        if len(times) >= min_iters and time.perf_counter() - start > budget_s:
            break
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def rss_mb() -> dict[str, float]:
    """Resident memory now, in MB: ``total``, ``anon`` (private heap), ``file`` (mapped files), ``peak``.

    File-backed pages (a memmap) are reclaimable page cache; anonymous pages are what a
    process really holds. ``peak`` is VmHWM, the high-water mark of this program's RSS
    (unlike ``ru_maxrss``, it doesn't inherit the RSS of the parent that forked it).
    Linux reports all four; elsewhere only ``total`` is known.
    """
    out = {"total": float("nan"), "anon": float("nan"), "file": float("nan"), "peak": float("nan")}
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                name = {"VmRSS": "total", "RssAnon": "anon", "RssFile": "file", "VmHWM": "peak"}.get(key)
                if name:
                    out[name] = int(value.split()[0]) / 1024
    except OSError:
        import psutil

        out["total"] = psutil.Process().memory_info().rss / 2**20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["peak"] = peak / 2**20 if platform.system() == "Darwin" else peak / 1024
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU, cores, bf16 support, memory, library versions and the date of this run."""
    import psutil
    import timm
    import torch

    from core.device import cpu_supports_bf16, physical_cores

    return {
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": _cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cores": os.cpu_count(),
        "bf16": cpu_supports_bf16(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def fmt(value: float, digits: int = 1) -> str:
    """A number for a table cell; NaN becomes an en dash."""
    if value is None or value != value:
        return "–"
    return f"{value:,.{digits}f}"
