"""Views of the Runs page: every run in one table, side-by-side comparison, and per-run actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.package import model_package_zip
from core.results import run_files
from core.runs_table import compare_runs, epoch_curves, run_row
from core import ACTIVE_STATES, request_stop
from ui.charts import TEMPLATE, plain
from ui.common import (STATE_LABELS, fmt_pct, go_to, md_escape, model_choices, select_run, show_error, state_badge,
                       update_model_choices, workspace)

__all__ = ["runs_frame", "render_runs_table", "render_compare", "compare_figure", "compare_frame",
           "render_run_actions", "start_from_run"]

_PALETTE = ["#0F766E", "#B45309", "#6D28D9", "#0369A1", "#BE185D", "#15803D", "#94A3B8"]


# --- the table -------------------------------------------------------------------------------------


def runs_frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run in plain words; status is the honest one (a dead process shows as interrupted)."""
    rows = []
    for run in runs:
        r = run_row(run)
        rows.append({"Run": r["run"], "Status": STATE_LABELS.get(r["status"], STATE_LABELS["unknown"])[0],
                     "Dataset": r["dataset"], "Backbone": r["backbone"], "Start": r["start"], "Strategy": r["strategy"],
                     "Images": r["images"], "Accuracy": r["accuracy"], "F1": r["f1"],
                     "Started": r["started"], "Minutes": r["minutes"]})
    return pd.DataFrame(rows)


def render_runs_table(runs: list[dict[str, Any]]) -> None:
    pct = dict(format="percent", min_value=0.0, max_value=1.0)
    st.dataframe(runs_frame(runs), hide_index=True, width="stretch", column_config={
        "Run": st.column_config.TextColumn("Run", width="medium"),
        "Status": st.column_config.TextColumn("Status", help="Interrupted: the training process ended unexpectedly."),
        "Images": st.column_config.NumberColumn("Photos", help="Photos used (training + validation + test).",
                                                width="small"),
        "Accuracy": st.column_config.ProgressColumn("Accuracy", help="On the test photos.", width="small", **pct),
        "F1": st.column_config.NumberColumn("F1", format="%.2f", width="small",
                                            help="Macro F1 on the test photos (1.00 is perfect)."),
        "Minutes": st.column_config.NumberColumn("Time (min)", format="%.1f", width="small"),
    })


# --- comparing -------------------------------------------------------------------------------------


def compare_figure(curves: dict[str, dict[str, list[Any]]]) -> go.Figure:
    """Validation accuracy and loss per epoch, one colour per run (dashed: training accuracy)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("Accuracy · dotted: training photos", "Validation loss (lower is better)"))
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
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(range=[0, 102], ticksuffix="%", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    return fig


def compare_frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Metrics side by side: one column per run, rates as percentages."""
    table = compare_runs(runs)
    rates = {"Accuracy", "F1 (macro)", "Catch rate", "False alarm rate"}
    rows = []
    for label, values in table.items():
        shown = {}
        for run_id, v in values.items():
            if v is None:
                shown[run_id] = "–"
            elif label in rates:
                shown[run_id] = fmt_pct(v, 1) if label != "F1 (macro)" else f"{v:.2f}"
            elif label == "ROC AUC":
                shown[run_id] = f"{v:.2f}"
            else:
                shown[run_id] = str(v)
        rows.append({"": label, **shown})
    return pd.DataFrame(rows)


def render_compare(runs: list[dict[str, Any]]) -> None:
    """Pick runs; see their curves on one chart and their numbers in one table."""
    ids = [r["id"] for r in runs]
    default = [r["id"] for r in runs if r.get("metrics")][:2]
    chosen = st.multiselect("Runs to compare", ids, default=default, key="compare_runs",
                            help="Same dataset and split make a fair comparison, e.g. two strategies or backbones.")
    picked = [r for r in runs if r["id"] in chosen]
    if not picked:
        st.caption("Pick two or more runs to compare them.")
        return
    curves = {r["id"]: epoch_curves(run_files(r["path"])["events"]) for r in picked}
    if any(c["epoch"] for c in curves.values()):
        st.plotly_chart(compare_figure(curves), width="stretch", config={"displayModeBar": False}, key="compare-fig")
    frame = compare_frame(picked)
    st.dataframe(frame, hide_index=True, width="stretch", height=38 + 35 * len(frame))
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
    out = {}
    for r in runs:
        row = run_row(r)
        label = STATE_LABELS.get(row["status"], STATE_LABELS["unknown"])[0]
        acc = f" · {fmt_pct(row['accuracy'])}" if row["accuracy"] is not None else ""
        out[r["id"]] = f"{r['id']} · {label}{acc}"
    return out


def render_run_actions(runs: list[dict[str, Any]]) -> None:
    """Pick one run; open it, build on it, download its model, stop or delete it."""
    labels = _run_choice_label(runs)
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="runs_pick")
    run = next(r for r in runs if r["id"] == run_id)
    state = run["status"].get("state", "unknown")
    has_model = (Path(run["path"]) / "model" / "model.json").is_file()
    state_badge(state)
    if state in ("failed", "interrupted", "stopped") and run["status"].get("message"):
        (st.warning if state != "stopped" else st.info)(md_escape(run["status"]["message"]))
    cols = st.columns([1, 1, 1.6, 1.3])
    if cols[0].button("Open in Evaluate", icon=":material/analytics:", disabled=not has_model, width="stretch"):
        select_run(run["path"])
        go_to("evaluate")
    if cols[1].button("Open in Test", icon=":material/frame_inspect:", disabled=not has_model, width="stretch"):
        select_run(run["path"])
        go_to("test")
    if cols[2].button("Start a new run from this model", icon=":material/call_split:", disabled=not has_model,
                      width="stretch", help="Opens the Model page with this model as the starting point."):
        start_from_run(run["path"], run["config"])
        go_to("model")
    with cols[3]:
        _download_package(run, has_model)
    if state in ACTIVE_STATES:
        _stop(run)
    else:
        _delete(run)


def _download_package(run: dict[str, Any], has_model: bool) -> None:
    if not has_model:
        st.button("Download model", icon=":material/download:", disabled=True, width="stretch",
                  help="This run has no finished model.", key="dl-disabled")
        return
    st.download_button("Download model (zip)", lambda: model_package_zip(run["path"]),
                       file_name=f"graft-model-{run['id']}.zip", mime="application/zip",
                       icon=":material/download:", width="stretch", key="dl-package",
                       help="The model package (weights + model.json), for Graft or `python -m core predict`.")


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
