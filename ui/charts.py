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

from .common import ACCENT, BAD, MUTED

__all__ = ["TEMPLATE", "curves_figure", "has_curve", "class_bar", "plain", "tradeoff_figure", "BAND_NOTE"]

TEMPLATE = "plotly_white+graft"
LOSS_TICKS = "~g"  # a small loss reads 0.0005, not plotly's "500µ"
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


def _epoch_so_far(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training progress of the epoch now running: its running training loss after each reported batch.

    An epoch's ``train_loss`` is the mean over its batches, so these points lead up to the epoch's own.
    """
    points: list[dict[str, Any]] = []
    for e in events:
        if e.get("event") in ("epoch", "run_end", "resumed"):
            points = []
        elif (e.get("event") == "progress" and e.get("phase") == "train" and e.get("loss") is not None
              and e.get("batches") and e.get("epoch") and int(e.get("batch", 0)) < int(e["batches"])):
            points.append(e)
    return points


def has_curve(events: list[dict[str, Any]]) -> bool:
    """Whether :func:`curves_figure` has anything to draw: an epoch, or the first training batches."""
    return any(e.get("event") == "epoch" for e in events) or bool(_epoch_so_far(events))


def _add_epoch_so_far(fig: go.Figure, points: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[float]:
    """The running training loss of the epoch in progress, dotted from the last finished epoch."""
    if not points:
        return []
    epoch = int(points[-1]["epoch"])
    x = [epoch - 1 + int(p["batch"]) / int(p["batches"]) for p in points]
    y = [float(p["loss"]) for p in points]
    before = [r for r in rows if int(r["epoch"]) == epoch - 1 and r.get("train_loss") is not None]
    if before:
        x, y = [float(epoch - 1)] + x, [float(before[-1]["train_loss"])] + y
    done = [f"epoch {epoch}, {min(p['batch'] / p['batches'], 1):.0%} done" for p in points]
    fig.add_trace(go.Scatter(x=x, y=y, name="Training photos (this epoch so far)", legendgroup="train",
                             showlegend=False, mode="lines+markers", marker=dict(size=4, color=MUTED),
                             line=dict(color=MUTED, width=2, dash="dot"),
                             customdata=([""] if before else []) + done,
                             hovertemplate="%{customdata}<br>Training photos: %{y:.3g}<extra></extra>"),
                  row=1, col=1)
    return x


def curves_figure(events: list[dict[str, Any]], height: int = 340) -> go.Figure:
    """Loss and accuracy per epoch, training (dashed, grey) against validation (solid, accent).

    Args:
        events: a run's event log (``RunFolder.events()``): the ``epoch`` records, and the training
            progress of the epoch now running (its running loss, dotted).
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
    so_far = _epoch_so_far(events)
    partial = _add_epoch_so_far(fig, so_far, rows)
    fig.update_layout(template=TEMPLATE, height=height, hovermode="x unified", margin=dict(t=40, b=10),
                      uirevision="curves")  # keeps zoom while the live view redraws
    # While training, the axis spans the planned epochs, so the curve visibly grows from left to right;
    # once the run has ended (early stop, stop button) it fits the epochs that ran.
    planned = max(x + [2]) if _ended(events) else max([int(r.get("epochs") or 0) for r in rows + so_far] + x + [2])
    low = 0.0 if any(v < 0.5 for v in partial) else 0.5  # the first epoch's batches start at 0
    fig.update_xaxes(title_text="epoch", title_standoff=12, automargin=True, range=[low, planned + 0.5],
                     dtick=1 if planned <= 15 else None)
    fig.update_yaxes(rangemode="tozero", tickformat=LOSS_TICKS, row=1, col=1)
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


BAND_NOTE = "Dotted lines: where the true rate could lie (95% range) with this many photos."
_TOP_LEGEND = dict(orientation="h", yanchor="bottom", y=1.04, xanchor="left", x=0)


def _band_edges(fig: go.Figure, x: list[float], low: list[float], high: list[float], color: str,
                group: str) -> None:
    """A 95% range as two thin dotted lines in the curve's colour: two ranges that overlap stay readable
    (filled bands of two colours blend into a grey block where they cross)."""
    for edge, name in ((low, "low"), (high, "high")):
        fig.add_trace(go.Scatter(x=x, y=edge, mode="lines", line=dict(color=color, width=1.2, dash="dot", shape="hv"),
                                 hoverinfo="skip", showlegend=False, legendgroup=group, name=f"{group} {name}",
                                 opacity=0.85))


def tradeoff_figure(points: list[Any], chosen: float, model: float, targets: Any = None,
                    height: int = 370) -> go.Figure:
    """Catch rate and false alarms at every threshold (``core.results.sweep`` points), each with its 95% range
    as dotted lines, the chosen and the model's threshold, and the user's targets as faint lines.

    Args:
        points: operating points across thresholds.
        chosen: the slider's threshold; model: the threshold the model uses now.
        targets: a :class:`core.decision.Targets` (drawn when given).
    """
    x = [p.threshold for p in points]
    fig = go.Figure()
    for name, attr, color in (("Defects caught", "caught", ACCENT), ("False alarms", "false_alarms", BAD)):
        rates = [getattr(p, attr) for p in points]
        _band_edges(fig, x, [r.interval[0] * 100 for r in rates], [r.interval[1] * 100 for r in rates], color, attr)
        fig.add_trace(go.Scatter(x=x, y=[(r.value or 0) * 100 for r in rates], name=name, legendgroup=attr,
                                 line=dict(color=color, width=3, shape="hv"),
                                 customdata=[[r.k, r.n] for r in rates],
                                 hovertemplate=f"{name}: %{{y:.0f}}% (%{{customdata[0]}} of "
                                               "%{customdata[1]})<extra></extra>"))
    if targets is not None:
        for value, color, words in ((targets.catch_rate, ACCENT, "catch-rate target"),
                                    (targets.false_alarm_rate, BAD, "false-alarm limit")):
            fig.add_hline(y=value * 100, line=dict(color=color, width=1, dash="dash"), opacity=0.5,
                          annotation_text=words, annotation_position="bottom right" if value > 0.5 else "top right",
                          annotation_font=dict(size=11, color=color))
    fig.add_vline(x=chosen, line=dict(color="#1F2937", width=2), annotation_text="this threshold",
                  annotation_position="top left" if chosen > 0.8 else "top right")
    if abs(model - chosen) > 1e-9:
        fig.add_vline(x=model, line=dict(color=MUTED, width=2, dash="dot"), annotation_text="model now",
                      annotation_position="bottom left" if model > 0.8 else "bottom right")
    fig.update_layout(template=TEMPLATE, height=height, hovermode="x unified", margin=dict(l=10, r=10, t=60, b=10),
                      legend=_TOP_LEGEND)
    fig.update_xaxes(title_text="threshold (defect score)", range=[0, 1], hoverformat=".2f")
    fig.update_yaxes(range=[-2, 112], tickvals=[0, 20, 40, 60, 80, 100],  # room above 100% for the labels
                     ticktext=[f"{v}%" for v in (0, 20, 40, 60, 80, 100)])
    return fig
