"""Plotly figures in Graft's look: learning curves and photos per class.

User text (class names) is HTML-escaped before it reaches plotly, which renders a few tags.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from .common import ACCENT, MUTED

__all__ = ["TEMPLATE", "curves_figure", "class_bar", "plain"]

TEMPLATE = "plotly_white+graft"
FONT = "Source Sans Pro, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"

pio.templates["graft"] = go.layout.Template(layout=go.Layout(
    font=dict(family=FONT, size=13, color="#1F2937"),
    colorway=[ACCENT, MUTED, "#B45309", "#6D28D9", "#0369A1", "#BE185D"],
    margin=dict(l=10, r=10, t=40, b=10),
    hoverlabel=dict(font_family=FONT),
    legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="center", x=0.5),
    xaxis=dict(gridcolor="#EEF2F6", zeroline=False),
    yaxis=dict(gridcolor="#EEF2F6", zeroline=False),
))


def plain(text: object) -> str:
    """User text made safe for plotly labels (which render some HTML)."""
    return html.escape(str(text), quote=False)


def _epochs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Epoch records of the latest attempt (a resumed run may repeat epoch numbers)."""
    by_epoch: dict[int, dict[str, Any]] = {}
    for e in events:
        if e.get("event") == "epoch" and e.get("epoch") is not None:
            by_epoch[int(e["epoch"])] = e
    return [by_epoch[k] for k in sorted(by_epoch)]


def curves_figure(events: list[dict[str, Any]], height: int = 340) -> go.Figure:
    """Loss and accuracy per epoch, training (dashed, grey) against validation (solid, accent).

    Args:
        events: a run's event log (``RunFolder.events()``); only ``epoch`` records are used.
        height: figure height in pixels.
    """
    rows = _epochs(events)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("Loss (lower is better)", "Accuracy (higher is better)"))
    x = [r["epoch"] for r in rows]
    for col, key, scale in ((1, "loss", 1.0), (2, "acc", 100.0)):
        for split, name, color, dash in (("train", "Training photos", MUTED, "dash"),
                                         ("val", "Validation photos", ACCENT, "solid")):
            y = [None if r.get(f"{split}_{key}") is None else r[f"{split}_{key}"] * scale for r in rows]
            fig.add_trace(go.Scatter(x=x, y=y, name=name, legendgroup=split, showlegend=col == 1,
                                     mode="lines+markers", line=dict(color=color, width=2.5, dash=dash),
                                     marker=dict(size=5),
                                     hovertemplate=f"epoch %{{x}}<br>{name}: %{{y:.3g}}"
                                                   f"{'%' if scale > 1 else ''}<extra></extra>"),
                          row=1, col=col)
    _mark_best(fig, rows)
    fig.update_layout(template=TEMPLATE, height=height, hovermode="x unified", margin=dict(t=40, b=10),
                      uirevision="curves")  # keeps zoom while the live view redraws
    # While training, the axis spans the planned epochs, so the curve visibly grows from left to right;
    # once the run has ended (early stop, stop button) it fits the epochs that ran.
    planned = max(x + [2]) if _ended(events) else max([int(r.get("epochs") or 0) for r in rows] + x + [2])
    fig.update_xaxes(title_text="epoch", title_standoff=12, automargin=True, range=[0.5, planned + 0.5],
                     dtick=1 if planned <= 15 else None)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 102], ticksuffix="%", row=1, col=2)
    fig.update_annotations(font=dict(size=14))
    return fig


def _ended(events: list[dict[str, Any]]) -> bool:
    marks = [e.get("event") for e in events if e.get("event") in ("run_start", "resumed", "run_end")]
    return bool(marks) and marks[-1] == "run_end"


def _mark_best(fig: go.Figure, rows: list[dict[str, Any]]) -> None:
    """A star on the validation accuracy of the epoch whose weights were kept."""
    best = [r for r in rows if r.get("best") and r.get("val_acc") is not None]
    if best:
        b = best[-1]
        fig.add_trace(go.Scatter(x=[b["epoch"]], y=[b["val_acc"] * 100], mode="markers", name="Weights kept",
                                 marker=dict(symbol="star", size=14, color=ACCENT, line=dict(color="white", width=1)),
                                 hovertemplate="weights of epoch %{x}: %{y:.1f}%<extra></extra>"), row=1, col=2)


def class_bar(counts: Mapping[str, int], good_class: str | None = None, height: int = 300) -> go.Figure:
    """Photos per class as bars: defect classes in the accent colour, the good class in grey."""
    names = list(counts)
    fig = go.Figure(go.Bar(
        x=[plain(n) for n in names], y=[counts[n] for n in names],
        marker_color=[MUTED if n == good_class else ACCENT for n in names],
        text=[f"{counts[n]:,}" for n in names], textposition="outside", cliponaxis=False,
        hovertemplate="%{x}: %{y} photos<extra></extra>",
    ))
    fig.update_layout(template=TEMPLATE, height=height, showlegend=False, bargap=0.35,
                      yaxis_title="photos", xaxis_type="category")
    return fig
