"""Train: start a run (a separate process), watch it live, stop it, and see the headline numbers.

The page only reads the run folder, so a refresh or a closed tab never disturbs training.
"""

# ruff: noqa: E402  (the router guard runs before the slower imports)
from __future__ import annotations

from ui.router import ensure_router

ensure_router()  # first, before the slower imports: a direct link to this page still gets the app frame

from pathlib import Path
from typing import Any

import streamlit as st

from core import ACTIVE_STATES, RunFolder, launch_run, read_status, request_stop, where_label
from core.jsonio import read_json
from core.verdict import held_out_words
from core.workspace import Workspace
from ui.charts import curves_figure, has_curve
from ui.common import (STATE_LABELS, attach_run, backbone_label, current_dataset, flash, fmt_duration, go_to,
                       guarded, headline_metrics, md_escape, model_choices, page_header, progress_summary,
                       run_state, select_run, show_flash, state_badge, strategy_title, workspace)
from ui.verdict_views import verdict_banner, verdict_of
from ui import warmup


POLL_S = 1.0
START_TEXT = {"imagenet": "ImageNet pretrained", "run": "from an earlier model", "file": "from a weights file",
              "scratch": "no pretraining"}


# --- starting a run ---------------------------------------------------------------------------------


def describe(choices: dict[str, Any]) -> str:
    """Backbone · start · strategy · epochs at size, in the Model page's card names."""
    kind = str(choices.get("start", "imagenet")).split(":", 1)[0]
    strategy = strategy_title(str(choices.get("strategy", "")))
    start = "" if kind == "scratch" else f" · {START_TEXT.get(kind, kind)}"  # "From scratch" says it already
    folds = choices.get("folds")
    how = " · thorough (5 folds)" if folds and int(folds) >= 2 else " · quick (one split)" if folds == 1 else ""
    return (f"{md_escape(backbone_label(choices.get('backbone', '')))}{start} · {strategy} · "
            f"{choices.get('epochs')} epochs at {choices.get('image_size')} px{how}")


@guarded
def start_section(ws: Workspace, attached: bool) -> None:
    dataset = current_dataset()
    if dataset is None:
        st.info("Choose or add a dataset on the Data page first.", icon=":material/photo_library:")
        if st.button("Go to Data", key="train_to_data"):
            go_to("data")
        return
    if attached:
        with st.expander("Start a new run", icon=":material/playlist_add:"):
            start_box(ws, dataset)
    else:
        with st.container(border=True):
            st.markdown("#### New run")
            start_box(ws, dataset)


def start_box(ws: Workspace, dataset: str) -> None:
    info = ws.dataset_info(dataset)
    choices = model_choices(info.total)
    st.markdown(f"**Dataset** {md_escape(dataset)} ({info.total:,} photos) · **Model** {describe(choices)}")
    busy = ws.active_runs()
    if busy:
        st.caption(f"{len(busy)} run(s) already queued or training. This computer trains "
                   f"{ws.max_concurrent_runs()} at a time; a new run waits its turn.")
    row = st.container(horizontal=True)
    if row.button("Start training", type="primary", icon=":material/play_arrow:", key="train_start"):
        with st.spinner("Starting the training process…"):
            config = ws.new_run_config(dataset, **choices)
            launch_run(config)
        select_run(config.out)
        st.session_state.pop("train_fresh", None)
        flash("Training started in the background. You can close this tab; it keeps going." if not busy else
              "The run is queued and starts when the runs before it are done.", icon=":material/rocket_launch:")
        st.rerun()
    if row.button("Change the model settings", key="train_to_model", icon=":material/tune:"):
        go_to("model")


# --- the run --------------------------------------------------------------------------------------


def run_view(path: str, polling: bool) -> None:
    """Everything about one run, read from its folder. When polling and the run has ended, rerun the
    whole page once so it is drawn without the timer."""
    status = read_status(path)
    state = status.get("state", "unknown")
    if polling and state not in ACTIVE_STATES:
        st.rerun()
    events = RunFolder(path).events()
    run_heading(path, status, events)
    if state in ACTIVE_STATES:
        active_panel(path, status, events)
    if has_curve(events):
        st.plotly_chart(curves_figure(events), config={"displayModeBar": False}, key="curves")
    elif state in ACTIVE_STATES:
        st.caption("The learning curves appear once training starts, after the photos are prepared.")
    if state not in ACTIVE_STATES:
        ended_panel(path, status, events)


def run_heading(path: str, status: dict[str, Any], events: list[dict[str, Any]]) -> None:
    config = read_json(Path(path) / "config.json", {}) or {}
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.subheader(f"Run {md_escape(config.get('name') or Path(path).name)}", anchor=False)
    with right:
        state_badge(run_state(status, events))
    if config:
        data = Path(str(config.get("data", ""))).name
        st.caption(f"Dataset {md_escape(data)} · {describe(config)} · trains on {md_escape(where_label(status))}")


def active_panel(path: str, status: dict[str, Any], events: list[dict[str, Any]]) -> None:
    progress = progress_summary(events, status)
    stopping = RunFolder(path).stop_requested()
    ahead = workspace().queue_position(path) if status["state"] == "queued" else 0
    if ahead:
        st.info(f"Queued: {ahead} run(s) ahead of this one. It starts on its own when they are done.",
                icon=":material/schedule:")
    elif status["state"] == "queued":  # about to take its slot: the process's first event has the expected time
        starting = progress_summary(events, {**status, "state": "running"}).text if events else ""
        st.progress(0.0, text=starting or "Starting the training process…")
    else:
        st.progress(progress.fraction, text=progress.text)
        st.caption(md_escape(status.get("message", "")))
    queued = status["state"] == "queued"
    label = ("Cancelling…" if queued else "Stopping after the current step…") if stopping else (
        "Cancel" if queued else "Stop training")
    # A callback, so the stop is requested before the view redraws and the label changes at once.
    st.button(label, key="train_stop", icon=":material/stop_circle:", disabled=stopping, on_click=stop_run,
              args=(path,))


def stop_run(path: str) -> None:
    try:
        request_stop(path)
    except OSError:  # the run folder was deleted meanwhile: nothing left to stop
        pass


def ended_panel(path: str, status: dict[str, Any], events: list[dict[str, Any]]) -> None:
    state, message = run_state(status, events), str(status.get("message", ""))
    metrics = read_json(Path(path) / "metrics.json", None)
    if state == "done":  # the verdict says whether it is any good: green only when it is ready
        st.caption(f"Training finished in {fmt_duration(_duration(status))}.")
        verdict_banner(verdict_of(path))
        if "Warning:" in message:  # e.g. the model predicts one class for everything
            st.warning(md_escape(message.split("Warning:", 1)[1].strip()), icon=":material/warning:")
    elif state == "cancelled":
        st.info("Cancelled before it started: nothing was trained.", icon=":material/cancel:")
    elif state == "stopped":  # the sentence about the stop (the message starts with the verdict's)
        said = next((s for s in message.split(". ") if s.startswith("Stopped")), "Stopped on request")
        st.info(md_escape(said.rstrip(".") + "."), icon=":material/stop_circle:")
        verdict_banner(verdict_of(path))
    elif state == "failed":
        failed_panel(message)
    elif state == "interrupted":
        st.warning("The training process ended unexpectedly (the computer may have restarted or run out of "
                   "memory).", icon=":material/warning:")
    if isinstance(metrics, dict) and metrics.get("accuracy") is not None:
        results(metrics)
    if state in ("interrupted", "stopped", "cancelled"):  # not after a failure: the same settings fail again
        with st.container(horizontal=True):
            if state != "cancelled":
                resume(path)
            start_again(path)


def failed_panel(message: str) -> None:
    """The reason, and the ways forward that can work: the same settings would fail the same way."""
    st.error(md_escape(message), icon=":material/error:")
    st.markdown("**What to do next:** the same settings would fail again, so change what the message names: the "
                "photos on the Data page, or the backbone, starting point or settings on the Model page.")
    with st.container(horizontal=True):
        if st.button("Change the model settings", icon=":material/tune:", key="failed_to_model"):
            go_to("model")
        if st.button("Check the data", icon=":material/photo_library:", key="failed_to_data"):
            go_to("data")


def _duration(status: dict[str, Any]) -> float | None:
    start, end = status.get("started"), status.get("ended") or status.get("updated")
    return end - start if start and end else None


def results(metrics: dict[str, Any]) -> None:
    seen = "the validation photos" if metrics.get("evaluated_on") == "val" else "photos the model never saw"
    st.markdown(f"#### Results on {seen}")
    headline_metrics(metrics)
    if metrics.get("catch_rate") is not None and metrics.get("false_alarm_rate") is not None:
        st.markdown(f"Out of 100 defective parts the model would catch about **{metrics['catch_rate'] * 100:.0f}**; "
                    f"out of 100 good parts it would wrongly flag about **{metrics['false_alarm_rate'] * 100:.0f}**.")
    plateau = "no improvement" in str(metrics.get("stopped_early")) and metrics.get("epochs_run")
    early = (f" Training stopped early after epoch {metrics['epochs_run']}: the validation score had stopped "
             "improving." if plateau else "")
    kept = (f" The model kept is the one from epoch {metrics['best_epoch']}." if metrics.get("best_epoch") else "")
    st.caption(f"Measured on {held_out_words(metrics)}.{kept}{early}")
    row = st.container(horizontal=True)
    if row.button("Evaluate in detail", type="primary", icon=":material/analytics:", key="train_to_evaluate"):
        go_to("evaluate")
    if row.button("Test on new photos", icon=":material/frame_inspect:", key="train_to_test"):
        go_to("test")


def resume(path: str) -> None:
    ws = workspace()
    if not ws.can_resume(Path(path).name):
        return
    if st.button("Continue where it stopped", type="primary", icon=":material/resume:", key="train_resume",
                 help="Continues from the last finished epoch, in this run."):
        with st.spinner("Starting the training process…"):
            launch_run(ws.resume_config(Path(path).name), resume=True)
        flash("Continuing from the last finished epoch.", icon=":material/resume:")
        st.rerun()


def start_again(path: str) -> None:
    if st.button("Start again", icon=":material/restart_alt:", key="train_again"):
        ws = workspace()
        with st.spinner("Starting the training process…"):
            config = ws.rerun_config(Path(path).name)
            launch_run(config)
        select_run(config.out)
        flash("Started again with the same settings.", icon=":material/rocket_launch:")
        st.rerun()


@st.fragment(run_every=POLL_S)
def live(path: str) -> None:
    guarded(run_view)(path, polling=True)


# --- other runs in the queue ------------------------------------------------------------------------


@guarded
def queue_section(ws: Workspace, attached: str | None) -> None:
    others = [r for r in ws.active_runs() if r["path"] != attached]
    if not others:
        return
    st.divider()
    st.markdown("#### Other runs in progress")
    for run in others:
        state = run["status"].get("state", "unknown")
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.markdown(f"{md_escape(run['id'])} · {STATE_LABELS.get(state, STATE_LABELS['unknown'])[0]}")
        if right.button("Show", key=f"show_{run['id']}"):
            select_run(run["path"])
            st.rerun()


@guarded
def main() -> None:
    page_header("Train", "Training runs in the background on this computer. Watch it learn: the curves update live, "
                         "and you can stop at any time.")
    show_flash()
    ws = workspace()
    path = attach_run()
    active = bool(path) and read_status(path).get("state") in ACTIVE_STATES
    if not active:
        warmup.training_process(ws.root)  # Start hands the run to a process that loaded PyTorch already
    if st.session_state.get("train_fresh") and not active:  # arriving from Model: the new run's settings first
        start_section(ws, attached=False)
        if path:
            st.divider()
            with st.expander(f"The previous run: {md_escape(Path(path).name)}", icon=":material/history:"):
                guarded(run_view)(path, polling=False)
        queue_section(ws, path)
        return
    if path:
        if active:
            live(path)
        else:
            guarded(run_view)(path, polling=False)
        st.divider()
    start_section(ws, path is not None)
    queue_section(ws, path)


main()
