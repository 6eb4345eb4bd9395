"""Good parts only (anomaly detection) in the app: the Test page's photo card (the verdict good / defect /
uncertain, the defect score on the scale where the threshold sits at 0.5, the heatmap with its own legend),
the Model page's target false-alarm rate, and the Evaluate page's line that puts that target beside the
false-alarm rate measured on held-out good photos.

Torch-free: the Model page imports it and draws at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from core.config import Strategy
from core.jsonio import read_json
from core.metrics import DEFECT_ANSWER, GOOD_ANSWER, UNCERTAIN_ANSWER
from core.numbers import fmt_against, fmt_range
from ui.common import fmt_pct, md_escape

__all__ = ["FALSE_ALARM_TARGETS", "DEFAULT_FALSE_ALARM_TARGET", "TARGET_KEY", "is_anomaly", "is_anomaly_run",
           "one_in", "target_words", "valid_target", "false_alarm_section", "target_note", "render_target_note",
           "verdict_message", "score_words", "score_figure", "anomaly_photo_card", "heatmap_colorscale",
           "HEATMAP_CAPTION", "HEATMAP_TOGGLE", "WIDGET_KEY",
           "heatmap_legend", "anomaly_labels"]

# The choices offered on the Model page; core.anomaly.DEFAULT_FALSE_ALARM_TARGET is the default (a test checks).
FALSE_ALARM_TARGETS = (0.005, 0.01, 0.02, 0.05, 0.1)
DEFAULT_FALSE_ALARM_TARGET = 0.01
TARGET_KEY = "false_alarm_target"  # in RunConfig.extra (core.anomaly_fit.false_alarm_target reads it)
WIDGET_KEY = "anomaly_false_alarm_target"
FEW_GOOD_PHOTOS = 10  # as core.check's FEW_PER_CLASS (a test checks): below it the threshold is shaky
_KEPT_KEY = "_anomaly_false_alarm_target"  # the user's target while another strategy is chosen
HEATMAP_CAPTION = "Where it looks unlike the good parts"
HEATMAP_TOGGLE = "Show where it looks unlike the good parts"


def is_anomaly(spec: Any) -> bool:
    """Whether a loaded model (its ``ModelSpec``) is a good-parts-only model."""
    return bool(getattr(spec, "anomaly", None))


def is_anomaly_run(run_dir: str | Path) -> bool:
    """Whether a run folder holds a good-parts-only run (from its config; no model is loaded)."""
    config = read_json(Path(run_dir) / "config.json", {}) or {}
    return isinstance(config, dict) and config.get("strategy") == Strategy.ANOMALY.value


def heatmap_legend(run_dir: str | Path, classifier_legend: str) -> str:
    """The legend under a run's heatmaps: a good-parts-only run's own, else the classifier's."""
    if not is_anomaly_run(run_dir):
        return classifier_legend
    from core.anomaly_predict import HEATMAP_LEGEND  # heatmaps are drawn: torch is loaded already

    return HEATMAP_LEGEND


# --- the target false-alarm rate (Model page, Evaluate page) ---------------------------------------


def one_in(rate: float) -> str:
    """``0.01`` -> ``"1 in 100"``; ``0.05`` -> ``"1 in 20"``."""
    return f"1 in {round(1 / rate):,}" if rate > 0 else "none"


def target_words(rate: float) -> str:
    """The target in business words: "about 1 in 100 good parts will be flagged for a second look"."""
    return f"about {one_in(rate)} good parts will be flagged for a second look"


def _pct(rate: float) -> str:
    """``0.005`` -> ``"0.5%"``, ``0.05`` -> ``"5%"``."""
    return fmt_pct(rate, 1 if rate < 0.01 else 0)


def valid_target(value: Any) -> float | None:
    """A target false-alarm rate Graft accepts (0% < rate < 50%, as ``core.anomaly_fit``), or None."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        return None
    return rate if 0.0 < rate < 0.5 else None


def false_alarm_section(choices: dict[str, Any]) -> None:
    """The Model page's target false-alarm rate, shown while "Good parts only" is the strategy.

    The value lives in ``choices["extra"]["false_alarm_target"]``, so it reaches the run's config
    (``Workspace.new_run_config(dataset, **choices)``) and the user's place (``ui.place``). With another
    strategy it is taken out of the choices (a classifier has no use for it) and kept for coming back.
    """
    extra = dict(choices.get("extra") or {})
    if choices.get("strategy") != Strategy.ANOMALY.value:
        if TARGET_KEY in extra:
            st.session_state[_KEPT_KEY] = extra.pop(TARGET_KEY)
            _set_extra(choices, extra)
        return
    _dataset_warnings()
    current = valid_target(extra.get(TARGET_KEY, st.session_state.get(_KEPT_KEY))) or DEFAULT_FALSE_ALARM_TARGET
    options = sorted({*FALSE_ALARM_TARGETS, current})
    if st.session_state.get(WIDGET_KEY) not in options:
        st.session_state[WIDGET_KEY] = current
    box = st.container(border=True, key="anomaly_false_alarms")
    box.markdown("**False alarms you accept**")
    rate = box.select_slider("Target share of good parts flagged", options, key=WIDGET_KEY,
                             format_func=lambda v: f"{_pct(v)} ({one_in(v)})",
                             help="Graft sets the threshold on good photos kept aside from training, so that this "
                                  "share of them would be flagged.")
    box.caption(f"With {_pct(rate)}, {target_words(rate)}. A lower target sends fewer good parts to a person but "
                "lets faint defects through more often; a higher one catches more. With few good photos kept "
                "aside, Graft can only approximate it.")
    extra[TARGET_KEY] = float(rate)
    _set_extra(choices, extra)


def _dataset_warnings() -> None:
    """Without a good class the mode can't learn: say so here, and hold the Model page's "Next" back. With
    fewer than 10 good photos, say that the threshold will be shaky (as the dataset check does)."""
    from ui.common import current_dataset, workspace

    dataset = current_dataset()
    info = workspace().dataset_info(dataset) if dataset else None
    if info and info.good_class and info.counts.get(info.good_class, 0) < FEW_GOOD_PHOTOS:
        st.warning(f"Only {info.counts.get(info.good_class, 0)} photos of good parts: the threshold that decides "
                   f"'defect' is set on a few of them and will be shaky below {FEW_GOOD_PHOTOS}. Add good photos.",
                   icon=":material/warning:")
    if info and not info.good_class:
        st.warning("Good-parts-only mode learns from photos of good parts, so it needs to know which class holds "
                   "them. Mark the good class on the Data page.", icon=":material/rule:")
        st.session_state.setdefault("_start_blocked", "Mark the good class on the Data page first, or choose "
                                                      "another way to adapt the model.")


def _set_extra(choices: dict[str, Any], extra: dict[str, Any]) -> None:
    if extra:
        choices["extra"] = extra
    else:
        choices.pop("extra", None)


def target_note(metrics: dict[str, Any]) -> str | None:
    """The target a good-parts-only run was trained with beside the false-alarm rate measured on its held-out
    good photos, in one or two sentences; None for any other run."""
    memory = metrics.get("anomaly")
    if not isinstance(memory, dict) or memory.get("false_alarm_target") is None:
        return None
    target = float(memory["false_alarm_target"])
    pct = _pct(target)
    text = f"Trained for a target of {pct} false alarms: {target_words(target)}."
    if memory.get("threshold_rule", "").startswith("best trade-off"):
        text += (" Defect photos were kept aside for checking, so the threshold is the best trade-off on them "
                 "rather than this target.")
    rate, n = metrics.get("false_alarm_rate"), int(metrics.get("good_parts") or 0)
    if rate is None or not n:
        return text + " No good photos were held out to measure it on."
    low, high = (metrics.get("ranges") or {}).get("false_alarm_rate") or (0.0, 1.0)
    text += f" Measured: {fmt_pct(rate)} of {n} held-out good photos ({fmt_range(low, high)})."
    if n < round(1 / target):
        text += f" {n} good photos are too few to check a {pct} rate; about {round(3 / target):,} would be enough."
    return text


def render_target_note(metrics: dict[str, Any]) -> None:
    """:func:`target_note` as a caption (nothing for a classifier run)."""
    note = target_note(metrics)
    if note:
        st.caption(note)


def anomaly_labels(files: list[Path], root: Path, good: str) -> list[str | None]:
    """The true answer of each batch photo for a good-parts-only model, from its class folders: photos in the
    good class's folder are good, photos in any folder beside it (``scratch/``, ``dent/``...) are ``defect``;
    anything else is unlabelled (None).

    Its model knows two classes only (the good one and ``defect``), so the folder names of defect types are
    read as "a defect" rather than matched by name.
    """
    parts = []
    for f in files:
        try:
            parts.append(Path(f).resolve().relative_to(Path(root).resolve()).parts[:-1])
        except ValueError:
            parts.append(())
    homes = {p[:p.index(good)] for p in parts if good in p}  # the folders that hold a good-class folder
    out: list[str | None] = []
    for p in parts:
        home = next((h for h in homes if len(p) > len(h) and p[:len(h)] == h), None)
        out.append(good if good in p else DEFECT_ANSWER if home is not None else None)
    return out


# --- one photo on the Test page ---------------------------------------------------------------------


def verdict_message(verdict: str | None, score: float, threshold: float, band: float) -> tuple[str, str, str]:
    """(kind ``success`` / ``error`` / ``warning``, text, icon) of a good-parts-only verdict."""
    value, thr = fmt_against(score, threshold)
    if verdict == UNCERTAIN_ANSWER:
        return ("warning", f"Uncertain: send it for a second look · defect score {value} is within "
                           f"{band / 2:.2f} of the threshold {thr}, too close to call", ":material/help:")
    if verdict == DEFECT_ANSWER or (verdict != GOOD_ANSWER and score >= threshold):
        return ("error", f"Defect: looks unlike the good parts · defect score {value}, at or above the threshold "
                         f"{thr}", ":material/report:")
    return ("success", f"Good part: looks like the good parts · defect score {value}, below the threshold {thr}",
            ":material/verified:")


def score_words(score: float, threshold: float) -> str:
    """The score's scale in words: the threshold Graft set sits at 0.5 (and says so when it was changed)."""
    value, _ = fmt_against(score, threshold, digits=3)
    text = (f"Defect score {value}, on a scale where Graft put the threshold at 0.5: below it the part looks like "
            "the good parts it learned from, from 0.5 up it is flagged. It says how unusual the part looks, "
            "not how sure Graft is.")
    if abs(threshold - 0.5) > 1e-9:
        text += f" The threshold has since been changed to {fmt_against(threshold, 0.5, digits=3)[0]} on Evaluate."
    return text


def heatmap_colorscale() -> list[list[Any]] | str:
    """The overlay's colours (OpenCV's jet, as pytorch-grad-cam blends them) as a plotly colour scale."""
    import numpy as np

    try:
        import cv2
    except ImportError:  # heatmaps need it anyway; plotly's jet is close
        return "Jet"
    steps = np.linspace(0, 255, 11).astype(np.uint8)
    bgr = cv2.applyColorMap(steps[None, :], cv2.COLORMAP_JET)[0]
    return [[i / 10, f"rgb({r},{g},{b})"] for i, (b, g, r) in enumerate(bgr.tolist())]


def score_figure(score: float, threshold: float) -> go.Figure:
    """The heatmap's colour scale from 0 to 1, the threshold marked, and this photo's score on it."""
    import numpy as np

    xs = np.linspace(0, 1, 101)
    fig = go.Figure(go.Heatmap(x=xs, y=[0], z=[xs], colorscale=heatmap_colorscale(), zmin=0, zmax=1,
                               showscale=False, hoverinfo="skip"))
    fig.add_vline(x=threshold, line=dict(color="#0F172A", width=2, dash="dot"))
    shown = min(max(float(score), 0.0), 1.0)
    side = "left" if shown > 0.75 else "right" if shown < 0.25 else "center"  # the label stays inside the chart
    fig.add_trace(go.Scatter(x=[shown], y=[0.62], mode="markers+text", text=[f"this photo: {score:.2f}"],
                             textposition=f"top {side}", marker=dict(symbol="triangle-down", size=14,
                                                                      color="#0F172A"),
                             hoverinfo="skip", showlegend=False, cliponaxis=False))
    below = dict(y=0, yref="paper", yanchor="top", showarrow=False, font=dict(size=11, color="#475569"))
    fig.add_annotation(x=threshold, text=f"threshold {threshold:.2f}: flagged from here", **below)
    fig.add_annotation(x=0, xanchor="left", text="like the good parts", **below)
    fig.add_annotation(x=1, xanchor="right", text="unlike them", **below)
    fig.update_layout(height=110, margin=dict(l=10, r=10, t=28, b=28), showlegend=False,
                      plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)")
    fig.update_xaxes(range=[0, 1], visible=False)
    fig.update_yaxes(range=[-0.5, 1.2], visible=False)
    return fig


def anomaly_photo_card(i: int, photo: Any, result: Any, spec: Any, heat: tuple[bytes | None, bool] | None,
                       shown: Any) -> None:
    """One photo scored by a good-parts-only model: the photo, where it looks unlike the good parts, the
    verdict (good / defect / uncertain) and the score on its scale, with the heatmap's legend.

    Args:
        i: the card's index (widget keys).
        photo: a ``ui.predict_views.Photo``.
        result: its ``core.predict.Prediction``.
        spec: the model's ``ModelSpec``.
        heat: (overlay PNG or None, unused) from ``ui.predict_views.heatmap_view``; None with heatmaps off.
        shown: the photo as shown (a PIL image).
    """
    from core.anomaly_predict import HEATMAP_LEGEND  # torch is loaded by now: the model scored the photo
    from ui.predict_views import flow  # the shared wrapping row (predict_views imports this module lazily)

    row = flow()
    left, middle, right = row.container(width=190), row.container(width=190), row.container(width="stretch")
    left.image(shown, caption="The photo", width="stretch")
    png = heat[0] if heat else None
    if png:
        middle.image(png, caption=HEATMAP_CAPTION, width="stretch")
    elif heat is not None:
        middle.caption("No heatmap for this photo.")
    score = float(result.defect_score)
    kind, text, icon = verdict_message(result.verdict, score, spec.threshold, spec.uncertain_band)
    getattr(right, kind)(md_escape(text), icon=icon)
    right.plotly_chart(score_figure(score, spec.threshold), width="stretch", config={"displayModeBar": False},
                       key=f"anomaly-score-{i}")
    right.caption(score_words(score, spec.threshold))
    if png:
        st.caption(HEATMAP_LEGEND)
