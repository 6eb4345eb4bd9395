"""Views of the Evaluate page: headline numbers in factory words, the threshold, the confusion matrix
with its photos, per-class numbers, mistakes with heatmaps, advice, and the take-away downloads.

All numbers come from ``core.results`` (computed from the run's files); this module lays them out.
"""

from __future__ import annotations

import math
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import read_status
from core.advice import Advice, advise
from core.metrics import Rate
from core.results import (OperatingPoint, Predictions, at_threshold, cell_indices, confusion_at, defect_roc,
                          headline, load_predictions, mistake_indices, resolve_images, run_files, sweep,
                          threshold_to_catch_all)
from core.runs_table import run_row
from core.thresholds import save_threshold
from core.verdict import held_out_words
from ui.charts import TEMPLATE, plain
from ui.common import ACCENT, BAD, MUTED, current_run, fmt_pct, md_escape, select_run, show_error, workspace
from ui.predict_views import heatmap_png, model_stamp, shown_image

__all__ = ["evaluable_runs", "choose_run", "render_evaluate", "render_headline", "render_threshold",
           "render_confusion", "render_per_class", "render_roc", "render_mistakes", "render_advice",
           "render_downloads", "confusion_figure", "tradeoff_figure", "roc_figure", "per_class_frame",
           "cell_from_selection", "pct_range"]

_ERROR_RED = "#FCA5A5"  # light red for mistake cells; BAD for the darkest
_TOP_LEGEND = dict(orientation="h", yanchor="bottom", y=1.04, xanchor="left", x=0)


# --- choosing the run ------------------------------------------------------------------------------


def evaluable_runs() -> list[dict[str, Any]]:
    """Runs that have test results, newest first."""
    return [r for r in workspace().list_runs() if (Path(r["path"]) / "predictions.csv").is_file()]


def _run_label(run: dict[str, Any]) -> str:
    row = run_row(run)
    acc = f" · accuracy {fmt_pct(row['accuracy'])}" if row["accuracy"] is not None else ""
    return f"{row['run']} · {row['backbone']}{acc}"


def choose_run(key: str = "eval_run") -> str | None:
    """The run to look at: the current one when it has results, else the user picks (and it becomes current)."""
    runs = evaluable_runs()
    current = current_run()
    if current and not any(r["path"] == current for r in runs):
        state = read_status(current).get("state")
        st.info(f"The current run, {md_escape(Path(current).name)}, has no test results "
                f"({'still training' if state in ('queued', 'running') else 'it did not finish'}).",
                icon=":material/info:")
    if not runs:
        st.info("No finished run yet. Train a model on the Train page, then come back here.", icon=":material/info:")
        return None
    paths = [r["path"] for r in runs]
    labels = {r["path"]: _run_label(r) for r in runs}
    index = paths.index(current) if current in paths else 0
    path = st.selectbox("Run", paths, index=index, format_func=labels.get, key=key,
                        help="Every finished training run of this workspace, newest first.")
    if path != current:
        select_run(path)
    return path


def pct_range(rate: Rate) -> str:
    """``"21%–94%"``: the 95% range of a rate, or an empty string when there is nothing to count."""
    if not rate.n:
        return ""
    low, high = rate.interval
    return f"{low:.0%}–{high:.0%}"


# --- headline --------------------------------------------------------------------------------------


def render_headline(point: OperatingPoint, split: str) -> None:
    """Accuracy, defects caught and false alarms as big numbers, each with its count and 95% range."""
    cols = st.columns(3 if point.caught is not None else 1)
    acc = point.accuracy
    seen = {"val": "Validation photos: they chose the alarm threshold, so this is a little optimistic.",
            "oof": "Each photo scored by a cross-validation model that did not train on it."}
    cols[0].metric("Accuracy", fmt_pct(acc.value), f"{acc.k} of {acc.n} {split} photos right",
                   delta_color="off", delta_arrow="off", border=True,
                   help=f"{seen.get(split, 'Photos the model never saw during training.')} 95% range: {pct_range(acc)}.")
    if point.caught is None:
        st.caption("This model has no good class, so there are no catch rate or false alarms. Mark the good "
                   "class on the Data page and train again to get them.")
        return
    caught, alarms = point.caught, point.false_alarms
    cols[1].metric("Defects caught (catch rate)", fmt_pct(caught.value), f"{caught.k} of {caught.n} defective parts",
                   delta_color="off", delta_arrow="off", border=True,
                   help=f"Defective parts the model flags (recall on defects). 95% range: {pct_range(caught)}.")
    cols[2].metric("False alarms", fmt_pct(alarms.value), f"{alarms.k} of {alarms.n} good parts flagged",
                   delta_color="off", delta_arrow="off", border=True,
                   help=f"Good parts the model wrongly flags (false-positive rate). 95% range: {pct_range(alarms)}.")
    if caught.n and caught.n < 30:
        st.caption(f"With {caught.n} defective test photos the true catch rate could be anywhere between "
                   f"{caught.interval[0]:.0%} and {caught.interval[1]:.0%}; more test photos narrow it.")


# --- threshold -------------------------------------------------------------------------------------


def _threshold_options(preds: Predictions, training: float | None) -> list[float]:
    grid = {round(x, 2) for x in np.linspace(0.0, 1.0, 101)}
    extra = {preds.threshold} | ({training} if training is not None else set())
    return sorted(grid | extra)


def tradeoff_figure(points: list[OperatingPoint], chosen: float, model: float) -> go.Figure:
    """Catch rate and false alarm rate at every threshold, with their 95% ranges as bands."""
    x = [p.threshold for p in points]
    fig = go.Figure()
    for name, attr, color, fill in (("Defects caught", "caught", ACCENT, "rgba(15,118,110,0.13)"),
                                    ("False alarms", "false_alarms", BAD, "rgba(185,28,28,0.10)")):
        rates = [getattr(p, attr) for p in points]
        low = [r.interval[0] * 100 for r in rates]
        high = [r.interval[1] * 100 for r in rates]
        fig.add_trace(go.Scatter(x=x + x[::-1], y=high + low[::-1], fill="toself", fillcolor=fill, line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, legendgroup=attr))
        fig.add_trace(go.Scatter(x=x, y=[(r.value or 0) * 100 for r in rates], name=name, legendgroup=attr,
                                 line=dict(color=color, width=3, shape="hv"),
                                 customdata=[[r.k, r.n] for r in rates],
                                 hovertemplate=f"threshold %{{x:.2f}}<br>{name}: %{{y:.0f}}% (%{{customdata[0]}} of "
                                               "%{customdata[1]})<extra></extra>"))
    fig.add_vline(x=chosen, line=dict(color="#1F2937", width=2), annotation_text="this threshold",
                  annotation_position="top left" if chosen > 0.8 else "top right")
    if abs(model - chosen) > 1e-9:
        fig.add_vline(x=model, line=dict(color=MUTED, width=2, dash="dot"), annotation_text="model now",
                      annotation_position="bottom left" if model > 0.8 else "bottom right")
    fig.update_layout(template=TEMPLATE, height=370, hovermode="x unified", margin=dict(l=10, r=10, t=60, b=10),
                      legend=_TOP_LEGEND)
    fig.update_xaxes(title_text="threshold (flag a part when its defect score is at least this)", range=[0, 1])
    fig.update_yaxes(range=[0, 104], ticksuffix="%")
    return fig


def _live_metrics(point: OperatingPoint, base: OperatingPoint) -> None:
    cols = st.columns(3)
    caught, alarms = point.caught, point.false_alarms
    d_caught = caught.k - base.caught.k
    d_alarms = alarms.k - base.false_alarms.k
    cols[0].metric("Catch rate at this threshold", fmt_pct(caught.value),
                   f"{d_caught:+d} defects caught vs. now" if d_caught else "same as now", border=True,
                   delta_color="normal" if d_caught else "off", delta_arrow="auto" if d_caught else "off",
                   help=f"{caught.k} of {caught.n} defective parts flagged. 95% range {pct_range(caught)}.")
    cols[1].metric("False alarms at this threshold", fmt_pct(alarms.value),
                   f"{d_alarms:+d} false alarms vs. now" if d_alarms else "same as now", border=True,
                   delta_color="inverse" if d_alarms else "off", delta_arrow="auto" if d_alarms else "off",
                   help=f"{alarms.k} of {alarms.n} good parts flagged. 95% range {pct_range(alarms)}.")
    cols[2].metric("Accuracy at this threshold", fmt_pct(point.accuracy.value),
                   f"{point.missed} defect(s) missed", delta_color="off", delta_arrow="off", border=True)


def render_threshold(preds: Predictions, run_dir: str, training: float | None) -> float:
    """The threshold slider with live catch rate / false alarms, the trade-off chart, and saving it.

    Returns:
        The threshold chosen on the slider (the model's own when there is no good class).
    """
    if not preds.has_defects:
        return preds.threshold
    options = _threshold_options(preds, training)
    names = {training: "chosen in training"} if training is not None else {}
    names[preds.threshold] = "the model's"
    chosen = st.select_slider(
        "Threshold: flag a part as defective when its defect score is at least", options, value=preds.threshold,
        format_func=lambda v: f"{v:.3f} ({names[v]})" if v in names else f"{v:.2f}",
        key=f"threshold-{Path(run_dir).name}",
        help="Lower catches more defects but raises more false alarms; higher does the opposite.")
    point, base = at_threshold(preds, chosen), at_threshold(preds)
    _live_metrics(point, base)
    left, right = st.columns([1.5, 1])
    with left:
        st.markdown("**Catch rate and false alarms at every threshold**")
        st.plotly_chart(tradeoff_figure(sweep(preds), chosen, preds.threshold), width="stretch",
                        config={"displayModeBar": False}, key="tradeoff")
    with right:
        render_roc(preds, chosen)
    _threshold_notes(preds, training)
    _save_threshold(run_dir, chosen, preds.threshold)
    return float(chosen)


def _threshold_notes(preds: Predictions, training: float | None) -> None:
    notes = ["Shaded bands: where the true rates could lie (95% range) with this many test photos",
             f"the model now flags parts from {preds.threshold:.3f} up"]
    if training is not None and abs(training - preds.threshold) > 1e-9:
        notes.append(f"training had chosen {training:.3f}")
    elif training is not None:
        notes.append("chosen in training as the best balance on the validation photos")
    every = threshold_to_catch_all(preds)
    text = "; ".join(notes) + "."
    if every is not None:
        floor = math.floor(every.threshold * 1000) / 1000  # rounding up would miss that defect
        text += (f" To catch every defect in this test set, use {floor:.3f} or lower "
                 f"({every.false_alarms.k} of {every.false_alarms.n} good parts would be flagged).")
    st.caption(text)


def _save_threshold(run_dir: str, chosen: float, current: float) -> None:
    if abs(chosen - current) < 1e-9:
        return
    if st.button(f"Use {chosen:.3f} in the model from now on", icon=":material/save:", key="save-threshold",
                 help="Saves it in the model package: the Test page, exports and the report use it."):
        try:
            save_threshold(run_dir, chosen, chosen_on="test")  # this slider moves over the test photos
        except Exception as exc:
            show_error(exc)
            return
        st.session_state["_eval_flash"] = f"Saved: the model now flags parts from {chosen:.3f} up."
        st.rerun()


# --- ROC -------------------------------------------------------------------------------------------


def roc_figure(roc: dict[str, Any], chosen: OperatingPoint, model: OperatingPoint) -> go.Figure:
    """False alarm rate against catch rate for every threshold, with the chosen and the model's point."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", line=dict(color=MUTED, dash="dash", width=1),
                             name="Guessing", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[v * 100 for v in roc["false_alarm_rate"]], y=[v * 100 for v in roc["catch_rate"]],
                             mode="lines", line=dict(color=ACCENT, width=3, shape="hv"), name="This model",
                             customdata=roc["thresholds"],
                             hovertemplate="threshold %{customdata:.2f}: %{y:.0f}% caught, %{x:.0f}% false "
                                           "alarms<extra></extra>"))
    for point, name, color, symbol in ((model, "Model now", MUTED, "diamond"),
                                       (chosen, "This threshold", "#1F2937", "circle")):
        fig.add_trace(go.Scatter(x=[(point.false_alarms.value or 0) * 100], y=[(point.caught.value or 0) * 100],
                                 mode="markers", name=name, marker=dict(color=color, size=13, symbol=symbol,
                                                                        line=dict(color="white", width=1.5)),
                                 hovertemplate=f"{name}: %{{y:.0f}}% caught, %{{x:.0f}}% false alarms<extra></extra>"))
    fig.update_layout(template=TEMPLATE, height=370, margin=dict(l=10, r=10, t=60, b=10), legend=_TOP_LEGEND)
    fig.update_xaxes(title_text="false alarms (good parts flagged)", range=[-2, 102], ticksuffix="%")
    fig.update_yaxes(title_text="defects caught", range=[-2, 102], ticksuffix="%", scaleanchor="x")
    return fig


def render_roc(preds: Predictions, chosen: float) -> None:
    """The ROC curve with its area, or a plain reason why there is none."""
    roc = defect_roc(preds)
    if roc is None:
        st.caption("The ROC curve needs a good class and both good and defective photos in the test set.")
        return
    st.markdown(f"**ROC curve** · area under it {roc['auc']:.2f}",
                help="Every threshold at once. 1.00 = defects and good parts perfectly separated, 0.50 = guessing.")
    st.plotly_chart(roc_figure(roc, at_threshold(preds, chosen), at_threshold(preds)),
                    width="stretch", config={"displayModeBar": False}, key="roc")


# --- confusion matrix and its photos -----------------------------------------------------------


def confusion_figure(cm: np.ndarray, classes: list[str], selected: tuple[int, int] | None = None) -> go.Figure:
    """Rows = what the part really is, columns = what the model said. Right answers teal, mistakes red.

    A transparent square marker sits on every cell: plotly heatmaps report no selection in Streamlit,
    markers do, so clicking a cell selects its marker.
    """
    k = len(classes)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    signed = np.where(np.eye(k, dtype=bool), share, -share)  # +: right answers, -: mistakes
    names = [plain(c) for c in classes]
    text = [[f"{cm[i, j]}" if cm[i, j] else "" for j in range(k)] for i in range(k)]
    fig = go.Figure(go.Heatmap(
        z=signed, x=names, y=names, text=text, texttemplate="%{text}", textfont=dict(size=18),
        colorscale=[[0.0, BAD], [0.25, _ERROR_RED], [0.5, "#F1F5F9"], [0.75, "#99D5CD"], [1.0, ACCENT]],
        zmin=-1, zmax=1, showscale=False, xgap=3, ygap=3, hoverinfo="skip"))
    cells = [(i, j) for i in range(k) for j in range(k)]
    fig.add_trace(go.Scatter(
        x=[names[j] for _, j in cells], y=[names[i] for i, _ in cells], mode="markers",
        marker=dict(symbol="square", size=max(24, 260 // max(k, 1)), opacity=0.0, color="#000000"),
        customdata=[[cm[i, j], share[i, j] * 100] for i, j in cells], showlegend=False,
        hovertemplate="really %{y}, model said %{x}<br>%{customdata[0]} photos (%{customdata[1]:.0f}% of %{y})"
                      "<br>click to see them<extra></extra>"))
    if selected is not None:
        i, j = selected
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line=dict(color="#1F2937", width=3))
    fig.update_layout(template=TEMPLATE, height=120 + 70 * k, margin=dict(l=10, r=10, t=30, b=10),
                      clickmode="event+select", dragmode=False)
    fig.update_xaxes(title_text="the model said", side="top", type="category", showgrid=False)
    fig.update_yaxes(title_text="the part really is", autorange="reversed", type="category", showgrid=False)
    return fig


def cell_from_selection(event: Any, k: int) -> tuple[int, int] | None:
    """The (true, predicted) cell of a click on :func:`confusion_figure`, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or []:
        index = point.get("point_index", point.get("point_number"))
        if point.get("curve_number", 1) == 1 and index is not None and 0 <= int(index) < k * k:
            return divmod(int(index), k)
    return None


def _default_cell(cm: np.ndarray) -> tuple[int, int]:
    """The most common mistake, else the biggest right-answer cell."""
    off = cm - np.diag(np.diag(cm))
    if off.any():
        return tuple(int(v) for v in np.unravel_index(off.argmax(), cm.shape))  # type: ignore[return-value]
    i = int(np.diag(cm).argmax())
    return i, i


def render_confusion(preds: Predictions, threshold: float, images: dict[str, str], run_dir: str) -> None:
    """The matrix (click a cell), a fallback pair of pickers, and the photos of the chosen cell."""
    cm = confusion_at(preds, threshold)
    classes, k = preds.classes, len(preds.classes)
    true_key, pred_key, seen_key = "cell_true", "cell_pred", "_cell_clicked"
    if st.session_state.get("_cell_run") != run_dir:  # another run: start from its most common mistake
        for key in (true_key, pred_key, seen_key):
            st.session_state.pop(key, None)
        st.session_state["_cell_run"] = run_dir
    if st.session_state.get(true_key) not in classes or st.session_state.get(pred_key) not in classes:
        i, j = _default_cell(cm)
        st.session_state[true_key], st.session_state[pred_key] = classes[i], classes[j]
    left, right = st.columns([1, 1])
    with left:
        current = (classes.index(st.session_state[true_key]), classes.index(st.session_state[pred_key]))
        event = st.plotly_chart(confusion_figure(cm, classes, current), width="stretch", on_select="rerun",
                                selection_mode="points", key="confusion", config={"displayModeBar": False})
        clicked = cell_from_selection(event, k)
        if clicked is not None and clicked != st.session_state.get(seen_key):
            # a new click moves the pickers; the pickers stay free to change afterwards
            st.session_state[seen_key] = clicked
            st.session_state[true_key], st.session_state[pred_key] = classes[clicked[0]], classes[clicked[1]]
            st.rerun()
        st.caption("Click a cell to see its photos, or pick it here:")
        a, b = st.columns(2)
        true_cls = a.selectbox("True class", classes, key=true_key)
        pred_cls = b.selectbox("Predicted as", classes, key=pred_key)
    with right:
        _cell_photos(preds, threshold, true_cls, pred_cls, images, run_dir)


def _cell_photos(preds: Predictions, threshold: float, true_cls: str, pred_cls: str, images: dict[str, str],
                 run_dir: str) -> None:
    idx = cell_indices(preds, true_cls, pred_cls, threshold)
    verdict = "right" if true_cls == pred_cls else "mistakes"
    st.markdown(f"**Really {md_escape(true_cls)}, model said {md_escape(pred_cls)}** · {len(idx)} photo(s), {verdict}")
    if not idx:
        st.caption("No photos in this cell.")
        return
    heat = st.session_state.get("eval_heatmaps", True)
    _photo_grid(preds, idx[:12], threshold, images, run_dir, heat, columns=3)
    if len(idx) > 12:
        st.caption(f"Showing the 12 most confident of {len(idx)}.")


# --- photo cards (cell photos and mistakes) --------------------------------------------------------


def _photo_grid(preds: Predictions, idx: list[int], threshold: float, images: dict[str, str], run_dir: str,
                heatmaps: bool, columns: int) -> None:
    if not images:
        st.caption("The photos of this run's dataset can't be found any more, so they can't be shown.")
        return
    model_dir, stamp = model_stamp(run_dir)
    pred = preds.decide(threshold)
    cols = st.columns(columns)
    with st.spinner("Drawing where the model looked…") if heatmaps else nullcontext():
        for n, i in enumerate(idx):
            said = preds.classes[pred[i]]
            caption = (f"{Path(preds.images[i]).name}: really {preds.classes[preds.y[i]]}, "
                       f"said {said} ({preds.probs[i, pred[i]]:.0%})")
            with cols[n % columns]:
                _photo(images.get(preds.images[i]), caption, (model_dir, stamp, said) if heatmaps else None)


def _photo(path: str | None, caption: str, heat: tuple[str, float, str] | None) -> None:
    if path is None:
        st.caption(f"{caption} (photo missing)")
        return
    png = heatmap_png(heat[0], heat[1], path, heat[2]) if heat else None
    try:
        st.image(png if png else shown_image(path, 320), caption=caption, width="stretch")
    except Exception:  # a photo changed or vanished since training: say so, keep the page
        st.caption(f"{caption} (photo can't be read)")


# --- per-class table -------------------------------------------------------------------------------


def per_class_frame(preds: Predictions, threshold: float) -> pd.DataFrame:
    """Per class: photos, catch rate (recall), "right when it says so" (precision), F1."""
    from core import score

    result = score(preds.y, preds.probs, preds.classes, preds.good_class if preds.has_defects else None, threshold)
    rows = [{"Class": c, "Photos": v["support"], "Found (recall)": v["recall"],
             "Right when flagged (precision)": v["precision"], "F1": v["f1"]}
            for c, v in result["per_class"].items()]
    return pd.DataFrame(rows)


def render_per_class(preds: Predictions, threshold: float) -> None:
    frame = per_class_frame(preds, threshold)
    pct = dict(format="percent", min_value=0.0, max_value=1.0)
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "Class": st.column_config.TextColumn("Class"),
        "Photos": st.column_config.NumberColumn("Photos", width="small", help="Photos of this class in the test set."),
        "Found (recall)": st.column_config.ProgressColumn(
            "Found (recall)", help="Of the parts that really are this class, how many the model found.", **pct),
        "Right when flagged (precision)": st.column_config.ProgressColumn(
            "Right when flagged (precision)", help="Of the parts flagged as this class, how many really were.", **pct),
        "F1": st.column_config.NumberColumn("F1", format="%.2f", width="small", help="One number balancing the two (1.00 is perfect)."),
    })


# --- mistakes --------------------------------------------------------------------------------------


def render_mistakes(preds: Predictions, threshold: float, images: dict[str, str], run_dir: str) -> None:
    """The wrong answers, most confidently wrong first, with where the model looked."""
    idx = mistake_indices(preds, threshold)
    if not idx:
        st.success("No mistakes on the test photos at this threshold.", icon=":material/celebration:")
        return
    heat = st.toggle("Show where the model looked (heatmaps)", value=True, key="eval_heatmaps",
                     help="Red areas drove the model's answer. A heatmap on the background instead of the defect "
                          "means the model learned the wrong clue.")
    limit = 12
    _photo_grid(preds, idx[:limit], threshold, images, run_dir, heat, columns=4)
    if len(idx) > limit:
        st.caption(f"Showing the {limit} most confident of {len(idx)} mistakes.")


# --- advice ----------------------------------------------------------------------------------------


_ADVICE_STYLE = {"problem": (st.error, ":material/error:"), "warning": (st.warning, ":material/warning:"),
                 "tip": (st.info, ":material/lightbulb:"), "good": (st.success, ":material/thumb_up:")}


def render_advice(advice: list[Advice]) -> None:
    for item in advice:
        show, icon = _ADVICE_STYLE.get(item.level, (st.info, ":material/lightbulb:"))
        show(f"**{md_escape(item.title)}**  \n{md_escape(item.detail)}", icon=icon)


# --- downloads -------------------------------------------------------------------------------------


def _built(kind: str, run_dir: str) -> dict[str, Any] | None:
    """A file built earlier in this session for this model version (so a rerun doesn't rebuild it)."""
    found = st.session_state.get(f"_built_{kind}")
    if found and found.get("key") == (run_dir, *model_stamp(run_dir)):
        return found
    return None


def _build_report(run_dir: str) -> None:
    try:
        from core.report import build_report
    except ImportError:
        st.info("The stakeholder report isn't available in this version of Graft.", icon=":material/info:")
        return
    with st.spinner("Writing the report: curves, numbers, example photos with heatmaps…"):
        out = Path(tempfile.mkdtemp(prefix="graft-report-")) / f"graft-report-{Path(run_dir).name}.html"
        path = build_report(run_dir, out)
        st.session_state["_built_report"] = {"key": (run_dir, *model_stamp(run_dir)), "data": Path(path).read_bytes(),
                                             "name": Path(path).name}


def _build_bundle(run_dir: str) -> None:
    from core.export import ONNX_FILE, bundle_zip, read_onnx_metadata

    with st.spinner("Exporting to ONNX and checking it scores the test photos the same…"):
        out = Path(tempfile.mkdtemp(prefix="graft-bundle-")) / f"graft-model-{Path(run_dir).name}.zip"
        try:
            path = bundle_zip(run_dir, out)
        finally:  # the parity numbers are worth showing even when the check failed
            onnx = Path(run_dir) / ONNX_FILE
            parity = read_onnx_metadata(onnx).get("parity_check", {}) if onnx.is_file() else {}
            st.session_state["_parity"] = {"key": (run_dir, *model_stamp(run_dir)), "parity": parity}
        st.session_state["_built_bundle"] = {"key": (run_dir, *model_stamp(run_dir)), "data": Path(path).read_bytes(),
                                             "name": Path(path).name}


def _parity_text(parity: dict[str, Any]) -> str:
    if not parity:
        return ""
    verdict = "passed" if parity.get("passed") else "FAILED"
    return (f"Parity check {verdict}: onnxruntime gave the same top class on "
            f"{parity.get('top_class_agreement', 0):.0%} of {parity.get('n_images')} {parity.get('images_source', 'test')} "
            f"photos; largest probability difference {parity.get('max_prob_diff', float('nan')):.1e} (limit 1e-03).")


def render_downloads(run_dir: str) -> None:
    """Stakeholder report and model bundle: build on request (with progress), then download."""
    left, right = st.columns(2)
    with left, st.container(border=True):
        st.markdown("**Stakeholder report**  \nOne HTML file that opens offline: the problem, the approach, "
                    "curves, numbers, examples with heatmaps.")
        report = _built("report", run_dir)
        if report is None:
            if st.button("Prepare the report", icon=":material/description:", key="build-report"):
                try:
                    _build_report(run_dir)
                except Exception as exc:
                    show_error(exc)
                report = _built("report", run_dir)
        if report is not None:
            st.download_button("Download the report", report["data"], file_name=report["name"], mime="text/html",
                               icon=":material/download:", type="primary", key="dl-report")
    with right, st.container(border=True):
        st.markdown("**Model bundle**  \nThe model package, an ONNX file checked to score the same, and a README "
                    "with a copy-paste Python snippet.")
        bundle = _built("bundle", run_dir)
        if bundle is None and st.button("Prepare the bundle", icon=":material/package_2:", key="build-bundle"):
            try:
                _build_bundle(run_dir)
            except Exception as exc:
                show_error(exc)
            bundle = _built("bundle", run_dir)
        parity = st.session_state.get("_parity")
        if parity and parity.get("key") == (run_dir, *model_stamp(run_dir)):
            st.caption(_parity_text(parity["parity"]))
        if bundle is not None:
            st.download_button("Download the bundle (zip)", bundle["data"], file_name=bundle["name"],
                               mime="application/zip", icon=":material/download:", type="primary", key="dl-bundle")


# --- the page --------------------------------------------------------------------------------------


def _section(title: str, caption: str = "") -> None:
    st.subheader(title, divider="gray")
    if caption:
        st.caption(caption)


def render_evaluate(run_dir: str) -> None:
    """The whole Evaluate page body for one finished run."""
    files = run_files(run_dir)
    preds = load_predictions(run_dir)
    metrics, config = files["metrics"], files["config"]
    flash = st.session_state.pop("_eval_flash", None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    st.caption(f"{md_escape(Path(run_dir).name)} · {md_escape(str(config.get('backbone', '')))} · "
               f"{md_escape(str(config.get('strategy', '')))} · measured on {md_escape(held_out_words(metrics))}")
    render_headline(headline(preds, metrics), preds.split)
    threshold = preds.threshold
    training = files["decision"].get("threshold_from_training",
                                     (files["spec"].get("info") or {}).get("threshold_from_training", preds.threshold))
    if preds.has_defects:
        _section("Threshold: defects caught against false alarms",
                 "Every part gets a defect score from 0 to 1. Move the threshold to see what changes; save it when "
                 "the balance is right for your line.")
        threshold = render_threshold(preds, run_dir, float(training))
    images = _images(run_dir)
    _section("Where it goes wrong", "Rows: what the part really is. Columns: what the model said. "
             "Teal cells are right answers, red cells mistakes.")
    render_confusion(preds, threshold, images, run_dir)
    _section("Per class")
    render_per_class(preds, threshold)
    if not preds.has_defects:
        render_roc(preds, threshold)
    _section("Mistakes", "The most confident mistakes first: they are often labelling errors worth fixing.")
    render_mistakes(preds, threshold, images, run_dir)
    _section("What to try next")
    render_advice(advise(metrics, files["events"], files["check"], config))
    _section("Take it with you")
    render_downloads(run_dir)


@st.cache_data(ttl=60, show_spinner=False)
def _images_cached(run_dir: str, config_mtime: float) -> dict[str, str]:
    return resolve_images(run_dir)


def _images(run_dir: str) -> dict[str, str]:
    config = Path(run_dir) / "config.json"
    return _images_cached(run_dir, config.stat().st_mtime if config.is_file() else 0.0)
