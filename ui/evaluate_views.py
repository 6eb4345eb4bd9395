"""Views of the Evaluate page: the verdict and the held-out numbers in factory words, the threshold
(chosen on validation or out-of-fold scores, with the held-out figures beside it), the targets, the
confusion matrix with its photos, per-class numbers, mistakes with heatmaps, advice, and the downloads.

All numbers come from ``core.results`` (computed from the run's files); this module lays them out.
The headline is what training recorded in ``metrics.json``, which saving a threshold never changes.
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
from core.decision import Decision, Targets, read_decision, save_decision
from core.errors import GraftError
from core.metrics import Rate
from core.numbers import fmt_range, fmt_score
from core.results import (CHOSEN_ON_SPLIT, band_at, OperatingPoint, Predictions, at_threshold, available_splits,
                          cell_indices, confusion_at, defect_roc, headline, is_optimistic, load_predictions,
                          mistake_indices, per_class_rates, recorded, resolve_images, run_files, sweep,
                          threshold_to_catch_all, tuning_split)
from core.runs_table import default_run_name, run_names, stored_run_name
from core.thresholds import save_threshold
from core.verdict import held_out_words
from ui.advice_views import render_advice
from ui.charts import BAND_NOTE, TEMPLATE, plain, tradeoff_figure
from ui.common import (ACCENT, BAD, MUTED, current_run, fmt_pct, md_escape, online, pretrained_cached, select_run,
                       show_error, workspace)
from ui.predict_views import HEATMAP_LEGEND, flow, model_stamp, photo_grid_rows
from ui.verdict_views import verdict_banner, verdict_of

__all__ = ["evaluable_runs", "choose_run", "render_evaluate", "render_headline", "render_threshold",
           "render_targets", "render_test_view", "render_confusion", "render_per_class", "render_roc",
           "render_mistakes", "render_advice", "advice_for", "imagenet_here", "render_downloads", "confusion_figure",
           "tradeoff_figure", "roc_figure", "per_class_frame", "cell_from_selection", "pct_range", "SPLIT_WORDS",
           "fmt_size", "graft_model_button"]

_ERROR_RED = "#FCA5A5"  # light red for mistake cells; BAD for the darkest
_TOP_LEGEND = dict(orientation="h", yanchor="bottom", y=1.04, xanchor="left", x=0)
# what the photos of a split are, in plain words
SPLIT_WORDS = {"val": "validation photos", "oof": "out-of-fold scores", "test": "test photos"}
_QUIET = dict(delta_color="off", delta_arrow="off", border=True)


# --- choosing the run ------------------------------------------------------------------------------


def evaluable_runs() -> list[dict[str, Any]]:
    """Runs that have test results, newest first."""
    return [r for r in workspace().list_runs() if (Path(r["path"]) / "predictions.csv").is_file()]


def _run_labels(runs: list[dict[str, Any]]) -> dict[str, str]:
    """``{path: "name · verdict"}``: the run names of the Runs page, so a run reads the same everywhere."""
    names = run_names(runs)
    out = {}
    for r in runs:
        verdict = verdict_of(r["path"])
        out[r["path"]] = names[r["id"]] + (f" · {verdict.title}" if verdict else "")
    return out


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
    labels = _run_labels(runs)
    index = paths.index(current) if current in paths else 0
    path = st.selectbox("Run", paths, index=index, format_func=labels.get, key=key,
                        help="Every finished training run of this workspace, newest first. Rename runs on the "
                             "Runs page.")
    if path != current:
        select_run(path)
    return path


def pct_range(rate: Rate) -> str:
    """``"21%–94%"``: the 95% range of a rate, or an empty string when there is nothing to count."""
    if not rate.n:
        return ""
    return fmt_range(*rate.interval)


# --- headline --------------------------------------------------------------------------------------


def render_headline(point: OperatingPoint, split: str) -> None:
    """Accuracy, defects caught and false alarms as big numbers, each with its count and 95% range."""
    row = flow()
    acc = point.accuracy
    seen = {"val": "Validation photos: they chose the alarm threshold, so this is a little optimistic.",
            "oof": "Each photo scored by a cross-validation model that did not train on it.",
            "test": "Test photos the model never saw while training."}
    words = SPLIT_WORDS.get(split, "photos").replace(" scores", " photos")
    row.metric("Accuracy", fmt_pct(acc.value), f"{acc.k} of {acc.n} {words} right · range {pct_range(acc)}",
                   **_QUIET, help=f"{seen.get(split, '')} 95% range: {pct_range(acc)}.")
    if point.caught is None:
        st.caption("This model has no good class, so there are no catch rate or false alarms. Mark the good "
                   "class on the Data page and train again to get them.")
        return
    caught, alarms = point.caught, point.false_alarms
    row.metric("Defects caught (catch rate)", fmt_pct(caught.value),
                   f"{caught.k} of {caught.n} defective parts · range {pct_range(caught)}", **_QUIET,
                   help=f"Defective parts the model flags (recall on defects). 95% range: {pct_range(caught)}.")
    row.metric("False alarms", fmt_pct(alarms.value),
                   f"{alarms.k} of {alarms.n} good parts flagged · range {pct_range(alarms)}", **_QUIET,
                   help=f"Good parts the model wrongly flags (false-positive rate). 95% range: {pct_range(alarms)}.")
    if caught.n and caught.n < 30:
        st.caption(f"With {caught.n} defective {words} the true catch rate could be anywhere between "
                   f"{fmt_pct(caught.interval[0])} and {fmt_pct(caught.interval[1])}; more photos narrow it.")


# --- targets ---------------------------------------------------------------------------------------


def render_targets(run_dir: str, decision: Decision) -> None:
    """The targets that make a run "Ready for a pilot", editable; saved with the run (``decision.json``)."""
    t = decision.targets
    name = Path(run_dir).name
    with st.expander(f"Targets for \"Ready for a pilot\": catch at least {fmt_pct(t.catch_rate)} of defects, "
                     f"at most {fmt_pct(t.false_alarm_rate)} false alarms", icon=":material/flag:"):
        row = st.container(horizontal=True, wrap=True, vertical_alignment="bottom")
        left, right, button = row, row, row
        catch = left.number_input("Catch rate to reach (%)", 0.0, 100.0, round(t.catch_rate * 100, 1), step=1.0,
                                  key=f"target-catch-{name}", help="The share of defective parts the line needs "
                                                                   "caught.")
        alarms = right.number_input("False alarms at most (%)", 0.0, 100.0, round(t.false_alarm_rate * 100, 1),
                                    step=1.0, key=f"target-alarms-{name}",
                                    help="The share of good parts the line can afford to have flagged.")
        changed = abs(catch / 100 - t.catch_rate) > 1e-9 or abs(alarms / 100 - t.false_alarm_rate) > 1e-9
        if button.button("Save the targets", icon=":material/save:", key="save-targets", disabled=not changed):
            try:
                save_decision(run_dir, targets=Targets(catch / 100, alarms / 100))
            except Exception as exc:
                show_error(exc)
                return
            st.session_state["_eval_flash"] = (f"Saved the targets: catch at least {fmt_pct(catch / 100)}, "
                                               f"at most {fmt_pct(alarms / 100)} false alarms.")
            st.rerun()
        st.caption("The verdict compares the held-out numbers with these targets. They are saved with the run and "
                   "used by the report.")


# --- uncertain band --------------------------------------------------------------------------------


def _band_words(cost: dict[str, Any]) -> str:
    """What a band costs on the held-out photos, in plain words."""
    sent = f"{cost['sent_to_person']} of {cost['n']} held-out photos ({fmt_pct(cost['share'])}) go to a person"
    if "defects_missed" in cost:
        return (f"{sent}; outside the band {cost['defects_missed']} of {cost['defects']} defects pass as good and "
                f"{cost['false_alarms']} of {cost['good_parts']} good parts are flagged.")
    return f"{sent}; outside the band {cost['wrong']} answers are wrong."


def render_band(run_dir: str, held: Predictions, threshold: float, decision: Decision) -> None:
    """The "uncertain: send to a person" band around the threshold, its cost, and saving it with the run."""
    name = Path(run_dir).name
    current = float(decision.uncertain_band or 0.0)
    with st.expander(f"Uncertain answers go to a person: band {fmt_score(current)} wide around the threshold",
                     icon=":material/front_hand:"):
        width = st.slider("Width of the uncertain band", 0.0, 0.5, round(current, 2), step=0.01,
                          key=f"band-{name}", help="Parts whose defect score lies this close to the threshold are "
                          "answered \"uncertain: send to a person\" on Test, in batch files, in predict and in "
                          "the report. 0 means every part gets an answer.")
        st.markdown(_band_words(band_at(held, threshold, width)))
        if st.button("Save the band", icon=":material/save:", key="save-band", disabled=abs(width - current) < 1e-9):
            try:
                save_decision(run_dir, uncertain_band=width)
            except Exception as exc:
                show_error(exc)
                return
            st.session_state["_eval_flash"] = f"Saved the uncertain band: {fmt_score(width)} wide."
            st.rerun()


# --- threshold -------------------------------------------------------------------------------------


def _threshold_options(preds: Predictions, extra: set[float]) -> list[float]:
    grid = {round(x, 2) for x in np.linspace(0.0, 1.0, 101)}
    return sorted(grid | {preds.threshold} | extra)


def _tuning_predictions(run_dir: str, held: Predictions) -> Predictions:
    """The photos the threshold is chosen on: validation (or out-of-fold) scores, never the test photos
    while validation photos exist; the held-out photos themselves only when there is nothing else."""
    split = tuning_split(available_splits(run_dir))
    if split is None or split == held.split:
        return held
    tune = load_predictions(run_dir, split)
    return tune if tune.n and tune.has_defects else held


def _rate_delta(rate: Rate, what: str) -> str:
    return f"{rate.k} of {rate.n} {what} · {pct_range(rate)}" if rate.n else f"no {what}"


def _point_metrics(point: OperatingPoint, where: str) -> None:
    """Catch rate and false alarms at one threshold on one set of photos, with counts and ranges."""
    row = flow()
    row.metric(f"Catch rate · {where}", fmt_pct(point.caught.value), _rate_delta(point.caught, "defects"),
               **_QUIET, help="Defective parts flagged at this threshold, with the 95% range.")
    row.metric(f"False alarms · {where}", fmt_pct(point.false_alarms.value),
               _rate_delta(point.false_alarms, "good parts"), **_QUIET,
               help="Good parts flagged at this threshold, with the 95% range.")


def _side_by_side(tune: Predictions, held: Predictions, chosen: float) -> None:
    """The tuning photos' numbers and, beside them, the held-out photos' at the same threshold."""
    if tune.split == held.split:
        label = ("tuned on these photos: optimistic" if is_optimistic(tune, CHOSEN_ON_SPLIT.get(tune.split, ""))
                 else "held out")
        with st.container(border=False):
            st.markdown(f"**On the {SPLIT_WORDS[tune.split]}** ({label})")
            _point_metrics(at_threshold(tune, chosen), "these photos")
        return
    row = flow()
    with row.container():
        # short headings: with their help icon they stay on one line at 900 px, so both card columns start level
        st.markdown(f"**{len(tune.images)} {SPLIT_WORDS[tune.split]}**",
                    help="The photos the threshold is chosen on (never the test photos).")
        _point_metrics(at_threshold(tune, chosen), "validation" if tune.split == "val" else "out-of-fold")
    with row.container():
        st.markdown(f"**{len(held.images)} {SPLIT_WORDS[held.split]} · held out**",
                    help="Photos that played no part in choosing the threshold: what to expect on the line.")
        _point_metrics(at_threshold(held, chosen), "held out")


def render_threshold(run_dir: str, held: Predictions, training: float | None,
                     targets: Targets | None = None) -> float:
    """The threshold slider over the validation (or out-of-fold) scores, with the held-out figures at the
    same threshold beside them, the trade-off chart, and saving it.

    Returns:
        The threshold chosen on the slider (the model's own when there is no good class).
    """
    if not held.has_defects:
        return held.threshold
    tune = _tuning_predictions(run_dir, held)
    extra = {training} if training is not None else set()
    names = {training: "chosen in training"} if training is not None else {}
    names[held.threshold] = "the model's"
    chosen = st.select_slider(
        f"Threshold, chosen on the {SPLIT_WORDS[tune.split]}: flag a part when its defect score is at least",
        _threshold_options(held, extra), value=held.threshold,
        format_func=lambda v: f"{fmt_score(v)} ({names[v]})" if v in names else fmt_score(v, 2),
        key=f"threshold-{Path(run_dir).name}",
        help="Lower catches more defects but raises more false alarms; higher does the opposite.")
    _side_by_side(tune, held, chosen)
    row = flow()
    with row.container(width="stretch"):
        st.markdown(f"**Catch rate and false alarms at every threshold** · {SPLIT_WORDS[tune.split]}")
        st.plotly_chart(tradeoff_figure(sweep(tune), chosen, held.threshold, targets), width="stretch",
                        config={"displayModeBar": False}, key="tradeoff")
    with row.container(width=380):  # a fixed width: it wraps under the trade-off chart at 900 px
        render_roc(held, chosen)
    _threshold_notes(tune, held, training)
    _save_threshold(run_dir, chosen, held.threshold, CHOSEN_ON_SPLIT.get(tune.split, "set by hand"))
    return float(chosen)


def _threshold_notes(tune: Predictions, held: Predictions, training: float | None) -> None:
    notes = [BAND_NOTE.rstrip("."), f"the model now flags parts from {fmt_score(held.threshold)} up"]
    if training is not None and abs(training - held.threshold) > 1e-9:
        notes.append(f"training had chosen {fmt_score(training)}")
    elif training is not None:
        notes.append(f"chosen in training as the best balance on the {SPLIT_WORDS[tune.split]}")
    every = threshold_to_catch_all(tune)
    text = "; ".join(notes) + "."
    if every is not None:
        floor = math.floor(every.threshold * 1000) / 1000  # rounding up would miss that defect
        text += (f" To catch every defect among the {SPLIT_WORDS[tune.split]}, use {floor:.3f} or lower "
                 f"({every.false_alarms.k} of {every.false_alarms.n} good parts would be flagged).")
    st.caption(text)


def _save_threshold(run_dir: str, chosen: float, current: float, chosen_on: str) -> None:
    if abs(chosen - current) < 1e-9:
        return
    if st.button(f"Use {fmt_score(chosen)} in the model from now on", icon=":material/save:", key="save-threshold",
                 help="Saves it in the model package: the Test page, exports and the report use it. The held-out "
                      "numbers at the top stay as training measured them."):
        try:
            save_threshold(run_dir, chosen, chosen_on=chosen_on)
        except Exception as exc:
            show_error(exc)
            return
        st.session_state["_eval_flash"] = f"Saved: the model now flags parts from {fmt_score(chosen)} up."
        st.rerun()


def render_test_view(run_dir: str, held: Predictions, training: float | None) -> None:
    """An explicit look at the test photos under another threshold, labelled optimistic: a threshold picked
    while looking at them flatters them. The held-out figures at the top stay as they are."""
    if held.split != "test" or not held.has_defects or tuning_split(available_splits(run_dir)) == "test":
        return  # no test photos, or the slider above already moves over them (no validation photos)
    with st.expander("Look at the test photos under another threshold (tuned on the test photos: optimistic)",
                     icon=":material/visibility:"):
        st.warning("**Tuned on the test photos: optimistic.** A threshold picked while looking at these photos "
                   "makes their numbers look better than the line will see. The held-out figures at the top of "
                   "the page stay as training measured them.", icon=":material/warning:")
        extra = {training} if training is not None else set()
        chosen = st.select_slider("Threshold to try on the test photos", _threshold_options(held, extra),
                                  value=held.threshold, format_func=lambda v: fmt_score(v, 2),
                                  key=f"test-threshold-{Path(run_dir).name}")
        _point_metrics(at_threshold(held, chosen), "tuned on test (optimistic)")


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
    fig.update_xaxes(title_text="false alarms", range=[-2, 102], ticksuffix="%")
    fig.update_yaxes(title_text="defects caught", range=[-2, 102], ticksuffix="%")
    return fig


def render_roc(preds: Predictions, chosen: float) -> None:
    """The ROC curve with its area, or a plain reason why there is none."""
    roc = defect_roc(preds)
    if roc is None:
        st.caption("The ROC curve needs a good class and both good and defective photos in the test set.")
        return
    st.markdown(f"**How well it ranks defects above good parts** · {fmt_score(roc['auc'], 2)}",
                help="The ROC curve: every threshold at once, and the area under it. 1.00 = defects and good "
                     "parts perfectly separated, 0.50 = guessing.")
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
    row = flow()
    left, right = row.container(width=420), row.container()  # side by side when wide, stacked at 900 px
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
    cards = []
    for i in idx:
        said = preds.classes[pred[i]]
        caption = (f"{Path(preds.images[i]).name}: really {preds.classes[preds.y[i]]}, "
                   f"said {said} ({fmt_pct(preds.probs[i, pred[i]])})")
        cards.append((images.get(preds.images[i]), caption, (model_dir, stamp, said) if heatmaps else None))
    with st.spinner("Drawing where the model looked…") if heatmaps else nullcontext():
        diffuse = photo_grid_rows(cards, columns)
    if heatmaps:
        from ui.anomaly_views import heatmap_legend  # a good-parts-only map has its own legend
        legend = heatmap_legend(run_dir, HEATMAP_LEGEND)
        st.caption(legend + (f" {diffuse} of these heatmaps are spread out: the model is not looking at "
                                     "one place; treat those verdicts with care." if diffuse else ""))


# --- per-class table -------------------------------------------------------------------------------


def _rate_text(rate: Rate | None) -> str:
    return "–" if rate is None or not rate.n else f"{fmt_pct(rate.value)} ({rate.k} of {rate.n})"


def per_class_frame(preds: Predictions, threshold: float) -> pd.DataFrame:
    """Per class: photos, how many of them it found (recall) and how often it is right when it names the
    class (precision), as ``"93% (14 of 15)"``; "–" where there is nothing to count (no photos of the class)."""
    rates = per_class_rates(preds, threshold)
    counts = np.bincount(preds.y, minlength=len(preds.classes)) if preds.n else np.zeros(len(preds.classes), int)
    rows = [{"Class": c, "Photos": int(counts[k]), "Found": _rate_text(rates[c]["found"]),
             "Right when it says so": _rate_text(rates[c]["right_when_said"])} for k, c in enumerate(preds.classes)]
    return pd.DataFrame(rows)


def render_per_class(preds: Predictions, threshold: float) -> None:
    frame = per_class_frame(preds, threshold)
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "Class": st.column_config.TextColumn("Class"),
        "Photos": st.column_config.NumberColumn("Photos", width="small",
                                                help=f"Photos of this class among the {SPLIT_WORDS[preds.split]}."),
        "Found": st.column_config.TextColumn(
            "Found", help="Of the parts that really are this class, how many the model named right (recall). "
                          "\"–\": no photos of this class here."),
        "Right when it says so": st.column_config.TextColumn(
            "Right when it says so", help="Of the parts the model named this class, how many really were "
                                          "(precision). \"–\": the model never named it."),
    })
    missing = [c for c, n in zip(frame["Class"], frame["Photos"]) if not n]
    if missing:
        st.caption(f"No {SPLIT_WORDS[preds.split]} of {', '.join(md_escape(c) for c in missing)}: they are left out "
                   "of the averages, not counted as 0% found.")


# --- mistakes --------------------------------------------------------------------------------------


def render_mistakes(preds: Predictions, threshold: float, images: dict[str, str], run_dir: str) -> None:
    """The wrong answers, most confidently wrong first, with where the model looked."""
    idx = mistake_indices(preds, threshold)
    if not idx:
        st.success(f"No mistakes on the {SPLIT_WORDS[preds.split]} at this threshold.",
                   icon=":material/celebration:")
        return
    heat = st.toggle("Show where the model looked (heatmaps)", value=True, key="eval_heatmaps",
                     help="Red areas drove the model's answer. A heatmap on the background instead of the defect "
                          "means the model learned the wrong clue.")
    limit = 12
    _photo_grid(preds, idx[:limit], threshold, images, run_dir, heat, columns=4)
    if len(idx) > limit:
        st.caption(f"Showing the {limit} most confident of {len(idx)} mistakes.")


# --- advice ----------------------------------------------------------------------------------------


def imagenet_here(backbone: str) -> bool:
    """Whether this computer can start a model from ImageNet: online, or the weights of ``backbone`` (or the
    default backbone) are in the hub cache. Torch-free: the probe ran in the background since the app started."""
    from core.catalogue import DEFAULT_BACKBONE, curated

    return online() or any(pretrained_cached(name) for name in {backbone, DEFAULT_BACKBONE} if curated(name))


def advice_for(run_dir: str, files: dict[str, Any]) -> list[Advice]:
    """:func:`core.advice.advise` for this run, knowing what this computer can do (offline: no ImageNet)."""
    config = files["config"]
    return advise(files["metrics"], files["events"], files["check"], config,
                  pretrained=imagenet_here(str(config.get("backbone") or "")),
                  has_models=bool(workspace().finished_models()))


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


def fmt_size(n_bytes: int | float | None) -> str:
    """``83_400_000`` -> ``"83.4 MB"``; sizes as people read them."""
    if n_bytes is None:
        return "–"
    value = float(n_bytes)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _build_onnx(run_dir: str) -> None:
    from core.export import ONNX_FILE, onnx_zip, read_onnx_metadata

    with st.spinner("Exporting to ONNX and checking it scores the photos the same…"):
        out = Path(tempfile.mkdtemp(prefix="graft-onnx-")) / f"graft-onnx-{Path(run_dir).name}.zip"
        try:
            path = onnx_zip(run_dir, out)
        finally:  # the parity numbers are worth showing even when the check failed
            onnx = Path(run_dir) / ONNX_FILE
            parity = read_onnx_metadata(onnx).get("parity_check", {}) if onnx.is_file() else {}
            st.session_state["_parity"] = {"key": (run_dir, *model_stamp(run_dir)), "parity": parity}
        st.session_state["_built_onnx"] = {"key": (run_dir, *model_stamp(run_dir)), "data": Path(path).read_bytes(),
                                           "name": Path(path).name}


def _parity_text(parity: dict[str, Any]) -> str:
    if not parity:
        return ""
    verdict = "passed" if parity.get("passed") else "FAILED"
    return (f"Parity check {verdict}: onnxruntime gave the same top class on "
            f"{fmt_pct(parity.get('top_class_agreement', 0))} of {parity.get('n_images')} "
            f"{parity.get('images_source', 'test')} photos; largest probability difference "
            f"{parity.get('max_prob_diff', float('nan')):.1e} (limit 1e-03).")


def _report_card(run_dir: str) -> None:
    st.markdown("**Stakeholder report**  \nOne HTML page that opens offline: the verdict, the numbers with their "
                "ranges, curves and examples.")
    report = _built("report", run_dir)
    if report is None:
        if st.button("Prepare the report", icon=":material/description:", key="build-report"):
            try:
                _build_report(run_dir)
            except Exception as exc:
                show_error(exc)
            report = _built("report", run_dir)
    if report is not None:
        st.download_button(f"Download the report ({fmt_size(len(report['data']))})", report["data"],
                           file_name=report["name"], mime="text/html", icon=":material/download:", type="primary",
                           key="dl-report")


def _onnx_card(run_dir: str) -> None:
    st.markdown("**ONNX for deployment**  \nOne ONNX file for any runtime, checked to score like Graft, with a "
                "README and a Python snippet.")
    onnx = _built("onnx", run_dir)
    if onnx is None and st.button("Prepare the ONNX file", icon=":material/package_2:", key="build-onnx"):
        try:
            _build_onnx(run_dir)
        except Exception as exc:
            show_error(exc)
        onnx = _built("onnx", run_dir)
    parity = st.session_state.get("_parity")
    if parity and parity.get("key") == (run_dir, *model_stamp(run_dir)):
        st.caption(_parity_text(parity["parity"]))
    if onnx is not None:
        st.download_button(f"Download ONNX for deployment ({fmt_size(len(onnx['data']))})", onnx["data"],
                           file_name=onnx["name"], mime="application/zip", icon=":material/download:",
                           type="primary", key="dl-onnx")


def graft_model_button(run_dir: str, key: str = "dl-graft-model") -> None:
    """The "Graft model" download (weights, model.json, decision.json), with its size, built on click."""
    from core.modeldir import model_package_zip, package_bytes  # torch-free: the Runs page stays quick

    try:
        size = package_bytes(run_dir)
    except GraftError:
        st.button("Download the Graft model", icon=":material/download:", disabled=True, key=f"{key}-off",
                  help="This run has no finished model.")
        return
    st.download_button(f"Download the Graft model ({fmt_size(size)})", lambda: model_package_zip(run_dir),
                       file_name=f"graft-model-{Path(run_dir).name}.zip", mime="application/zip",
                       icon=":material/download:", key=key,
                       help="To test it again in Graft, build a new run on it, or run python -m core predict.")


def render_downloads(run_dir: str) -> None:
    """Stakeholder report, ONNX for deployment and the Graft model: three separate downloads, each sized."""
    row = flow()  # fixed-width cards: three in a row when wide, stacked at 900 px
    with row.container(border=True, width=300, height="stretch"):
        _report_card(run_dir)
    with row.container(border=True, width=300, height="stretch"):
        _onnx_card(run_dir)
    with row.container(border=True, width=300, height="stretch"):
        st.markdown("**Graft model**  \nFor Graft itself: test it again, build a new run on it, or score photos "
                    "from the command line.")
        graft_model_button(run_dir)


# --- the page --------------------------------------------------------------------------------------


def _section(title: str, caption: str = "") -> None:
    st.subheader(title, divider="gray")
    if caption:
        st.caption(caption)


def _run_title(run_dir: str, config: dict[str, Any]) -> str:
    return stored_run_name(run_dir) or default_run_name(config)


def _decision(run_dir: str) -> Decision:
    try:
        return read_decision(run_dir)
    except GraftError:  # no model package: the numbers still stand, with default targets
        return Decision()


def render_evaluate(run_dir: str) -> None:
    """The whole Evaluate page body for one finished run: the verdict opens it, above the headline."""
    files = run_files(run_dir)
    held = load_predictions(run_dir)
    metrics, config = files["metrics"], files["config"]
    decision = _decision(run_dir)
    flash = st.session_state.pop("_eval_flash", None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    verdict_banner(verdict_of(run_dir))
    render_targets(run_dir, decision)
    st.caption(f"{md_escape(_run_title(run_dir, config))} · measured on {md_escape(held_out_words(metrics))}")
    render_headline(recorded(metrics) or headline(held, metrics), held.split)
    from ui.anomaly_views import render_target_note  # good parts only: its target beside the measured rate
    render_target_note(metrics)
    threshold = held.threshold
    training = decision.threshold_from_training
    if training is None:
        training = (files["spec"].get("info") or {}).get("threshold_from_training", held.threshold)
    if held.has_defects and not _defects_held_out(held):
        st.info("None of the held-out photos shows a defect, so there is no catch rate to trade against false "
                "alarms here. Add photos of defects to the dataset to see how many a threshold catches.",
                icon=":material/info:")
    elif held.has_defects:
        _section("Threshold: defects caught against false alarms",
                 "Every part gets a defect score from 0 to 1. The threshold is chosen on photos kept apart from "
                 "the held-out ones, so the held-out numbers beside it stay honest. Save it when the balance is "
                 "right for your line.")
        threshold = render_threshold(run_dir, held, float(training), decision.targets)
        render_band(run_dir, held, threshold, decision)
        render_test_view(run_dir, held, float(training))
    images = _images(run_dir)
    _section("Where it goes wrong", f"On the {SPLIT_WORDS[held.split]}. Rows: what the part really is. Columns: "
                                    "what the model said. Teal cells are right answers, red cells mistakes.")
    render_confusion(held, threshold, images, run_dir)
    _section("Per class")
    render_per_class(held, threshold)
    if not held.has_defects:
        render_roc(held, threshold)
    _section("Mistakes", "The most confident mistakes first: they are often labelling errors worth fixing.")
    render_mistakes(held, threshold, images, run_dir)
    _section("What to try next")
    render_advice(advice_for(run_dir, files))
    _section("Take it with you")
    render_downloads(run_dir)


def _defects_held_out(held: Any) -> bool:
    """Whether any held-out photo is labelled as a defect (a good-parts-only run may have none)."""
    good = held.classes.index(held.good_class)
    return bool((held.y[held.y >= 0] != good).any())


@st.cache_data(ttl=60, show_spinner=False)
def _images_cached(run_dir: str, config_mtime: float) -> dict[str, str]:
    return resolve_images(run_dir)


def _images(run_dir: str) -> dict[str, str]:
    config = Path(run_dir) / "config.json"
    return _images_cached(run_dir, config.stat().st_mtime if config.is_file() else 0.0)
