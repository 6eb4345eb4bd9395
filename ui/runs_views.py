"""Views of the Runs page: every run in one table, side-by-side comparison, and per-run actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.results import run_files
from core.numbers import fmt_score
from core.runs_table import (COMPARE_METRICS, MAX_NAME, RATE_METRICS, backbone_words, compare_runs, epoch_curves, run_names, run_row, set_run_name,
                             run_strategy_words, stored_run_name)
from core import ACTIVE_STATES, request_stop
from ui.charts import LOSS_TICKS, TEMPLATE, plain
from ui.common import (STATE_LABELS, fmt_pct, go_to, md_escape, model_choices, select_run, show_error, state_badge,
                       update_model_choices, workspace)
from ui.evaluate_views import graft_model_button
from ui.predict_views import flow
from ui.verdict_views import verdict_badge, verdict_of

__all__ = ["runs_frame", "render_runs_table", "render_compare", "compare_figure", "compare_frame",
           "render_run_actions", "start_from_run", "TABLE_COLUMNS"]

_PALETTE = ["#0F766E", "#B45309", "#6D28D9", "#0369A1", "#BE185D", "#15803D", "#94A3B8"]
# the columns shown at first, in order: what a comparison needs fits 900 px; the rest sit behind the table menu
VERDICT_SHORT = {"not_usable": "Not usable", "promising": "Promising", "ready": "Ready for a pilot"}
TABLE_COLUMNS = ["Name", "Verdict", "Catch rate", "False alarms", "Accuracy", "Status", "Started", "Time"]


# --- the table -------------------------------------------------------------------------------------


def _minutes(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 60:.0f} s" if value < 1 else f"{value:.1f} min"


def runs_frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run in plain words: its name, verdict (with the targets saved with it), the held-out
    numbers in the one percentage format, and the honest status (a dead process reads "Interrupted", a run
    stopped before it started "Cancelled"); "–" where there is nothing to show."""
    names = run_names(runs)
    rows = []
    for run in runs:
        r = run_row(run)
        verdict = verdict_of(run["path"]) if run.get("metrics") else None
        status = r["status_words"] if r["status"] == "stopped" else \
            STATE_LABELS.get(r["status"], STATE_LABELS["unknown"])[0]
        rows.append({"Name": names[r["run"]], "Verdict": VERDICT_SHORT[verdict.level] if verdict else "–",
                     "Catch rate": fmt_pct(r["catch_rate"]), "False alarms": fmt_pct(r["false_alarm_rate"]),
                     "Accuracy": fmt_pct(r["accuracy"]), "Status": status, "Started": r["started"] or "–",
                     "Time": _minutes(r["minutes"]), "Photos": r["images"] or "–", "Dataset": r["dataset"] or "–",
                     "Backbone": backbone_words(r["backbone"]) or "–",
                     "Strategy": run_strategy_words(run.get("config") or {}) or "–",
                     "Start": r["start"] or "–", "Run": r["run"]})
    return pd.DataFrame(rows)


def render_runs_table(runs: list[dict[str, Any]]) -> None:
    st.dataframe(runs_frame(runs), hide_index=True, width="stretch", key="runs-table", column_order=TABLE_COLUMNS,
                 column_config={
        "Name": st.column_config.TextColumn("Name", width=200, pinned=True,
                                            help="Rename a run below (One run). Default: strategy · backbone · "
                                                 "dataset."),
        "Verdict": st.column_config.TextColumn("Verdict", width=110, help="Not usable, Promising (needs more photos) or Ready "
                                                               "for a pilot, from the held-out photos and the run's "
                                                               "targets."),
        "Catch rate": st.column_config.TextColumn("Catch rate", width=80, help="Defective parts caught, on the "
                                                                                    "held-out photos."),
        "False alarms": st.column_config.TextColumn("False alarms", width=95, help="Good parts flagged, on the "
                                                                                        "held-out photos."),
        "Accuracy": st.column_config.TextColumn("Accuracy", width=80, help="On the held-out photos."),
        "Status": st.column_config.TextColumn("Status", width=85,
                                              help="Interrupted: the training process ended unexpectedly. "
                                                   "Cancelled: stopped before it started."),
        "Started": st.column_config.TextColumn("Started", width=110),
        "Time": st.column_config.TextColumn("Time", width=70, help="How long it trained."),
        "Photos": st.column_config.TextColumn("Photos", help="Photos used (training + validation + test)."),
        "Run": st.column_config.TextColumn("Folder", help="The run's folder in the workspace."),
    })


# --- comparing -------------------------------------------------------------------------------------


def compare_figure(curves: dict[str, dict[str, list[Any]]]) -> go.Figure:
    """Validation accuracy and loss per epoch, one colour per run (dashed: training accuracy)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("Accuracy (dotted: training)", "Validation loss (lower: better)"))
    for n, (name, c) in enumerate(curves.items()):
        color, label = _PALETTE[n % len(_PALETTE)], plain(name)
        acc = [None if v is None else v * 100 for v in c["val_acc"]]
        fig.add_trace(go.Scatter(x=c["epoch"], y=acc, name=label, legendgroup=label, mode="lines+markers",
                                 line=dict(color=color, width=2.5),
                                 hovertemplate=f"{label}<br>epoch %{{x}}: %{{y:.1f}}%<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=c["epoch"], y=[None if v is None else v * 100 for v in c["train_acc"]],
                                 name=f"{label} (training)", legendgroup=label, showlegend=False, mode="lines",
                                 line=dict(color=color, width=1.5, dash="dot"), opacity=0.6,
                                 hovertemplate=f"{label} training<br>epoch %{{x}}: %{{y:.1f}}%<extra></extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=c["epoch"], y=c["val_loss"], name=label, legendgroup=label, showlegend=False,
                                 mode="lines+markers", line=dict(color=color, width=2.5),
                                 hovertemplate=f"{label}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>"), row=1, col=2)
    fig.update_layout(template=TEMPLATE, height=400, legend=dict(orientation="h", yanchor="bottom", y=1.12,
                                                                 xanchor="left", x=0),
                      margin=dict(l=10, r=10, t=80, b=10))
    longest = max([len(c["epoch"]) for c in curves.values()] + [1])
    fig.update_xaxes(title_text="epoch", dtick=1 if longest <= 15 else None)  # whole epochs, never "1.5"
    fig.update_yaxes(range=[0, 102], ticksuffix="%", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", tickformat=LOSS_TICKS, row=1, col=2)
    return fig


def compare_frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Metrics side by side: one column per run, headed by its name; rates in the one percentage format."""
    table = compare_runs(runs)
    names = run_names(runs)
    rates = {label for key, label in COMPARE_METRICS if key in RATE_METRICS}
    rows = []
    for label, values in table.items():
        shown = {}
        for run_id, v in values.items():
            if v is None:
                shown[names[run_id]] = "–"
            elif label in rates:
                shown[names[run_id]] = fmt_pct(v)
            elif isinstance(v, float):
                shown[names[run_id]] = fmt_score(v, 2)
            else:
                shown[names[run_id]] = str(v)
        rows.append({"": label, **shown})
    return pd.DataFrame(rows)


def render_compare(runs: list[dict[str, Any]]) -> None:
    """Pick runs by name; see their curves on one chart (named in the legend) and their numbers in one table."""
    names = run_names(runs)
    ids = [r["id"] for r in runs]
    default = [r["id"] for r in runs if r.get("metrics")][:2]
    chosen = st.multiselect("Runs to compare", ids, default=default, key="compare_runs", format_func=names.get,
                            help="Same dataset and split make a fair comparison, e.g. two strategies or backbones.")
    picked = [r for r in runs if r["id"] in chosen]
    if not picked:
        st.caption("Pick two or more runs to compare them.")
        return
    curves = {names[r["id"]]: epoch_curves(run_files(r["path"])["events"]) for r in picked}
    if any(c["epoch"] for c in curves.values()):
        st.plotly_chart(compare_figure(curves), width="stretch", config={"displayModeBar": False}, key="compare-fig")
    frame = compare_frame(picked)
    st.dataframe(frame, hide_index=True, width="stretch", height=38 + 35 * len(frame), key="compare-table",
                 column_config={"": st.column_config.TextColumn("", width=190, pinned=True)})
    datasets = {str(r["config"].get("data", "")) for r in picked}
    if len(datasets) > 1:
        st.caption("These runs used different datasets, so their test photos differ: compare with care.")


# --- one run's actions -------------------------------------------------------------------------------


def start_from_run(path: str, config: dict[str, Any]) -> None:
    """Make this run's model the Model page's starting point (keeping its backbone)."""
    from core import STRATEGY_DEFAULTS, Strategy

    choices = model_choices()
    changes: dict[str, Any] = {"start": f"run:{path}"}
    if config.get("backbone"):
        changes["backbone"] = config["backbone"]
    if choices.get("strategy") == Strategy.SCRATCH.value:  # "scratch" contradicts starting from a model
        defaults = STRATEGY_DEFAULTS[Strategy.FINE_TUNE]
        changes.update(strategy="fine-tune", epochs=defaults["epochs"], lr=defaults["lr"])
    update_model_choices(**changes)
    st.session_state.pop("model_start_run", None)  # the Model page's run picker re-reads the choice
    st.session_state["start"] = f"run:{path}"


def _run_choice_label(runs: list[dict[str, Any]]) -> dict[str, str]:
    names = run_names(runs)
    out = {}
    for r in runs:
        row = run_row(r)
        label = row["status_words"] if row["status"] == "stopped" else \
            STATE_LABELS.get(row["status"], STATE_LABELS["unknown"])[0]
        out[r["id"]] = f"{names[r['id']]} · {label}"
    return out


def _badges(run: dict[str, Any]) -> None:
    row = run_row(run)
    with st.container(horizontal=True):
        if row["status_words"] == "Cancelled":
            st.badge("Cancelled", color="gray", icon=":material/block:")
        else:
            state_badge(row["status"])
        verdict_badge(verdict_of(run["path"]) if run.get("metrics") else None)
        st.caption(md_escape(f"folder {row['run']}"))


def _rename(run: dict[str, Any]) -> None:
    """The run's name, editable; an empty name goes back to the default "strategy · backbone · dataset"."""
    current = stored_run_name(run["path"]) or run_row(run)["name"]
    with st.form(key=f"rename-form-{run['id']}", border=False, enter_to_submit=True):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        text = left.text_input("Name", value=current, max_chars=MAX_NAME, key=f"rename-{run['id']}",
                               help="Shown in the tables, the run pickers and chart legends. Leave it empty for the "
                                    "default: strategy · backbone · dataset.")
        if right.form_submit_button("Rename", icon=":material/edit:", width="stretch"):
            try:
                shown = set_run_name(run["path"], text)
            except Exception as exc:
                show_error(exc)
                return
            st.session_state["_runs_flash"] = f"Renamed the run: {shown}."
            st.rerun()


def render_run_actions(runs: list[dict[str, Any]]) -> None:
    """Pick one run; rename, open it, build on it, download its model, stop or delete it."""
    labels = _run_choice_label(runs)
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="runs_pick")
    run = next(r for r in runs if r["id"] == run_id)
    state = run["status"].get("state", "unknown")
    has_model = (Path(run["path"]) / "model" / "model.json").is_file()
    _badges(run)
    if state in ("failed", "interrupted", "stopped") and run["status"].get("message"):
        (st.warning if state != "stopped" else st.info)(md_escape(run["status"]["message"]))
    _rename(run)
    row = flow()  # buttons at their own width, wrapping at 900 px: no label is cut off
    cols = [row, row, row, row]
    if cols[0].button("Open in Evaluate", icon=":material/analytics:", disabled=not has_model):
        select_run(run["path"])
        go_to("evaluate")
    if cols[1].button("Open in Test", icon=":material/frame_inspect:", disabled=not has_model):
        select_run(run["path"])
        go_to("test")
    if cols[2].button("New run from this model", icon=":material/call_split:", disabled=not has_model,
                      help="Opens the Model page with this model as the starting point."):
        start_from_run(run["path"], run["config"])
        go_to("model")
    with cols[3]:
        graft_model_button(run["path"], key="dl-package")
    if state in ACTIVE_STATES:
        _stop(run)
    else:
        _delete(run)


def _stop(run: dict[str, Any]) -> None:
    if st.button("Stop this run", icon=":material/stop_circle:", key="stop-run",
                 help="Stops after the current batch; the best model so far is kept."):
        request_stop(run["path"])
        st.info("Asked the run to stop; it finishes its current batch first.", icon=":material/hourglass_top:")


def _delete(run: dict[str, Any]) -> None:
    with st.expander("Delete this run", icon=":material/delete:"):
        st.caption("Deletes the run folder and its model. This can't be undone.")
        sure = st.checkbox(f"Yes, delete {run['id']}", key=f"delete-sure-{run['id']}")
        if st.button("Delete", type="primary", disabled=not sure, key=f"delete-{run['id']}"):
            try:
                with st.spinner("Deleting…"):
                    workspace().delete_run(run["id"])
            except Exception as exc:
                show_error(exc)
                return
            if st.session_state.get("run") == run["path"]:
                select_run(None)
            st.session_state["_runs_flash"] = f"Deleted {run['id']}."
            st.rerun()
