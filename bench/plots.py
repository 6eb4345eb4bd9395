"""PNG plots with matplotlib (headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["bar_chart", "line_chart"]


def bar_chart(path: Path, groups: Sequence[str], series: dict[str, Sequence[float]], *, ylabel: str,
              title: str) -> Path:
    """Grouped bars: one group per entry of ``groups``, one bar per series."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 4))
    width = 0.8 / max(1, len(series))
    for k, (label, values) in enumerate(series.items()):
        ax.bar([i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))], values, width, label=label)
    ax.set_xticks(range(len(groups)), groups, rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def line_chart(path: Path, lines: dict[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str,
               ylabel: str, title: str, hline: tuple[float, str] | None = None, logx: bool = False,
               markers: bool = True, dashed: Sequence[str] = ("scratch",),
               ylim: tuple[float, float] | None = None) -> Path:
    """One line per entry of ``lines``: name -> (xs, ys); ``dashed`` names are dashed; optional reference line."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, (xs, ys) in lines.items():
        ax.plot(xs, ys, marker="o" if markers else None, label=label, linestyle="--" if label in dashed else "-")
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle=":", linewidth=1, label=hline[1])
    if logx:
        ax.set_xscale("log")
        ax.minorticks_off()
        xs = sorted({x for xs, _ in lines.values() for x in xs})
        ax.set_xticks(xs, [str(int(x)) if float(x).is_integer() else str(x) for x in xs])
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
