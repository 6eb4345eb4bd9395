"""Model: which pretrained network, where its weights come from, and how to adapt it to the photos."""

# ruff: noqa: E402  (the router guard runs before the slower imports)
from __future__ import annotations

from ui.router import ensure_router

ensure_router()  # first, before the slower imports: a direct link to this page still gets the app frame

from pathlib import Path
from typing import Any

import streamlit as st

import core  # the names used here (catalogue, evidence) are torch-free: the page draws at once
from core.config import DEFAULT_VIEWS, STRATEGY_DEFAULTS, RunConfig, Strategy
from core.errors import GraftError
from core.jsonio import read_json
from core.workspace import Workspace
from ui.common import (backbone_label, current_dataset, fmt_int, fmt_pct, friendly_errors, go_to, guarded,
                       image_size_warning, md_escape, model_choices, online, page_header,
                       pretrained_cached, recommended_strategy, update_model_choices, workspace)
from ui.anomaly_views import false_alarm_section
from ui.model_views import (backbone_speeds, check_weights_upload, expected_duration_text, image_size_cost,
                            offline_advice, thoroughness)
from ui.verdict_views import verdict_badge, verdict_of
from ui import warmup


STRATEGY_TEXT: dict[Strategy, tuple[str, str]] = {
    Strategy.FEATURE_EXTRACTION: ("Feature extraction", "Keeps the pretrained network as it is and trains only the "
                                  "final decision layer: fastest, and the safest choice with few photos."),
    Strategy.FINE_TUNE: ("Fine-tune", "Trains the decision layer first, then gently adjusts the whole network to "
                         "your parts: usually the most accurate from a few hundred photos."),
    Strategy.PROGRESSIVE: ("Progressive unfreezing", "Adapts the network step by step, from the last layers to the "
                           "first: careful fine-tuning that pays off with large datasets."),
    Strategy.MULTI_TASK: ("Multi-task", "Learns “ok or defect” and “which defect” (plus any extra CSV columns) at "
                          "once, so each question helps the other."),
    Strategy.SCRATCH: ("From scratch", "Ignores pretraining and learns everything from your photos alone: only for "
                       "very large datasets or very unusual images."),
    Strategy.ANOMALY: ("Good parts only (anomaly detection)", "Learns what good parts look like from photos of good "
                       "parts alone, and flags anything that looks different, even defects nobody photographed. "
                       "Needs no defect photos."),
}
START_TEXT = {"imagenet": "ImageNet pretrained", "run": "An earlier model of yours", "file": "A weights file",
              "scratch": "From scratch (no pretraining)"}
STAR = " :primary[:material/star:]"  # beside the card's name: the word goes below, small enough for a 900 px card
RECOMMENDED = ":primary[Recommended]"
IMAGE_SIZES = [32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384]
BATCH_SIZES = [4, 8, 16, 32, 64, 128]


# --- 1. backbone ----------------------------------------------------------------------------------


@guarded

def card_title(title: str, recommended: bool) -> None:
    """A card's name, with a star and a small "Recommended" under it (coloured text, not a badge: a badge is
    cut off in a narrow card)."""
    st.markdown(f"**{title}**" + (STAR if recommended else ""))
    if recommended:
        st.caption(RECOMMENDED)

def backbone_section(ws: Workspace, choices: dict[str, Any]) -> None:
    st.subheader("1 · Backbone", anchor=False)
    st.caption("The pretrained network that already knows how to see edges, textures and shapes. Bigger is usually "
               "more accurate but slower.")
    speeds = backbone_speeds(ws)
    backbones = core.list_backbones()
    for row in range(0, len(backbones), 3):  # row by row, so the cards of a row line up
        cols = st.columns(3)
        for col, (i, info) in zip(cols, list(enumerate(backbones))[row:row + 3]):
            with col.container(border=True, key=f"backbone_card_{i}", height="stretch",
                               vertical_alignment="distribute"):  # words at the top, the button at the foot
                backbone_card(info, choices["backbone"] == info.name, speeds.get(info.name), i)
    measure_speeds(ws, int(choices["image_size"]))
    other_backbone(choices)


def measure_speeds(ws: Workspace, image_size: int) -> None:
    busy = bool(ws.active_runs())
    if not st.button("Measure the speeds on this computer", icon=":material/speed:", key="model_measure",
                     type="tertiary", disabled=busy,
                     help="Runs a few training steps of each backbone on random pixels (about a minute). "
                          + ("Wait until training has finished." if busy else "")):
        return
    from core.backbones import measure_speed

    backbones = core.list_backbones()
    bar = st.progress(0.0, text="Measuring…")
    for k, info in enumerate(backbones):
        bar.progress(k / len(backbones), text=f"Measuring {info.label} ({k + 1} of {len(backbones)})…")
        with friendly_errors():
            ws.record_speed(info.name, measure_speed(info.name, image_size=image_size)["train_ips"], image_size)
    bar.empty()
    st.rerun()


def backbone_card(info, selected: bool, speed: dict[str, float] | None, i: int) -> None:
    with st.container():  # the words; the card spreads them and its button, so the buttons of a row line up
        card_title(info.label, info.name == core.DEFAULT_BACKBONE)
        st.write(info.blurb)
        # ImageNet accuracy means something only when its ImageNet weights can be the start
        imagenet = f" · ImageNet accuracy {info.top1:.1f}%" if info.top1 and st.session_state.get("online") else ""
        st.caption(f"{info.params_m:.1f} M parameters{imagenet}  \n{speed_text(info, speed)}")
    if st.button("Selected" if selected else "Use this", key=f"use_backbone_{i}",
                 type="primary" if selected else "secondary", icon=":material/check:" if selected else None,
                 width="stretch"):
        update_model_choices(backbone=info.name)
        st.rerun()


def speed_text(info, speed: dict[str, float] | None) -> str:
    if speed:
        return f"Trains about {speed['images_per_s']:,.0f} photos/s on this computer (at {speed['image_size']:.0f} px)"
    if info.train_ips:
        return f"Trains about {info.train_ips:,.0f} photos/s on a 2-core laptop"
    return "Speed on this computer: measured after its first run"


def other_backbone(choices: dict[str, Any]) -> None:
    custom = choices["backbone"] not in {b.name for b in core.CURATED}
    with st.expander("Any other timm model", expanded=custom, icon=":material/tune:"):
        st.caption("Any of the ~1,000 architectures in the timm library, by name, e.g. `convnext_tiny` or "
                   "`efficientnet_b2.ra_in1k`.")
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        name = left.text_input("timm model name", key="model_other_name", placeholder="e.g. convnext_tiny")
        if right.button("Use this model", key="model_other_use", width="stretch"):
            use_other_backbone(name.strip())
        if custom:
            st.success(f"Using {md_escape(choices['backbone'])}.", icon=":material/check:")


def use_other_backbone(name: str) -> None:
    """Switch to a timm model typed by the user, or say plainly why not (no CLI hints, no empty quotes)."""
    if not name:
        st.warning("Type the name of a timm model first, for example convnext_tiny.", icon=":material/edit:")
        return
    with st.spinner(f"Looking up {name} in the model library…"):
        backbones = warmup.engine()
        try:
            update_model_choices(backbone=backbones.check_name(name))
        except GraftError as exc:
            close = exc.hint.removeprefix("Did you mean ").rstrip("?") if exc.hint.startswith("Did you mean") else ""
            st.error(f"The model library has no model called “{md_escape(name)}”."
                     + (f" Did you mean {md_escape(close)}?" if close else " The six cards above are good choices."),
                     icon=":material/search_off:")
            return
    st.rerun()


# --- 2. start point ---------------------------------------------------------------------------------


@guarded
def start_section(ws: Workspace, choices: dict[str, Any], n_images: int) -> None:
    st.subheader("2 · Starting point", anchor=False)
    can_download = online() or pretrained_cached(choices["backbone"])
    if not can_download:
        st.warning("This computer can't reach the internet, so pretrained ImageNet weights can't be downloaded "
                   "right now. Start from an earlier model of yours, a weights file, or from scratch.",
                   icon=":material/cloud_off:")
    kinds = (["imagenet"] if can_download else []) + ["run", "file", "scratch"]
    kind = choices["start"].split(":", 1)[0]
    if kind not in kinds:  # e.g. ImageNet was chosen, then the connection went away
        kind = "scratch"
        set_start("scratch", choices, n_images)
    key = _seed_widget("start", kind)
    if st.session_state[key] not in kinds:
        st.session_state[key] = kind
    picked = st.radio("Start from", kinds, format_func=START_TEXT.get, horizontal=True, key=key)
    st.session_state.pop("_start_blocked", None)
    if picked == "imagenet":
        set_start("imagenet", choices, n_images)
        st.caption("Weights learned from 1.3 million everyday photos: the best start for almost any inspection task.")
    elif picked == "run":
        start_from_run(ws, choices, n_images)
    elif picked == "file":
        start_from_file(ws, choices, n_images)
    else:
        set_start("scratch", choices, n_images)
        st.caption("Every layer learns from your photos alone. Needs many more photos and epochs.")
    if picked == "file" and not choices["start"].startswith("file:"):
        st.session_state.setdefault("_start_blocked", "Upload a weights file, or choose another starting point.")
    if picked == "scratch" and not can_download:
        dataset = current_dataset()
        n_classes = len(ws.dataset_info(dataset).classes) if dataset else 2
        offline_advice(n_images, n_classes, choices, backbone_speeds(ws).get(choices["backbone"]),
                       bool(ws.finished_models()))


def set_start(start: str, choices: dict[str, Any], n_images: int) -> None:
    """Record the start point; from scratch implies the scratch strategy, and leaving it the recommended one."""
    if choices["start"] == start:
        return
    changes: dict[str, Any] = {"start": start}
    if start == "scratch":
        changes.update(strategy_changes(Strategy.SCRATCH))
    elif choices["strategy"] == Strategy.SCRATCH.value:
        changes.update(strategy_changes(recommended_strategy(n_images)[0]))
    update_model_choices(**changes)
    st.rerun()


def start_from_run(ws: Workspace, choices: dict[str, Any], n_images: int) -> None:
    finished = ws.finished_models()
    if not finished:
        st.info("No finished models yet. Train one first (from scratch works offline), then come back to build on it.",
                icon=":material/info:")
        return
    paths = [r["path"] for r in finished]
    best = ws.best_model()
    default = best["path"] if best else paths[0]  # the best usable model, not merely the newest
    current = choices["start"][4:] if choices["start"].startswith("run:") else default
    labels = {r["path"]: run_label(r) + (" · best so far" if best and r["path"] == best["path"] else "")
              for r in finished}
    path = st.selectbox("Earlier model", paths, index=paths.index(current) if current in paths else 0,
                        format_func=labels.get, key="model_start_run")
    verdict_badge(verdict_of(path))  # on its own line: beside the box it was cut off at 900 px
    set_start(f"run:{path}", choices, n_images)
    spec = next(r for r in finished if r["path"] == path)["config"]
    st.caption(f"The new model keeps this model's backbone ({md_escape(backbone_label(spec.get('backbone', '')))}) "
               "and what it learned, and adapts it to the current dataset.")
    if not best:
        st.warning("None of your earlier models is usable yet, so building on one rarely helps.",
                   icon=":material/warning:")


def run_label(run: dict[str, Any]) -> str:
    config, metrics = run["config"], run["metrics"]
    data = Path(str(config.get("data", ""))).name
    backbone = backbone_label(config.get("backbone", ""))
    name = config.get("name") or run["id"]
    return f"{name} · {data} · {backbone} · accuracy {fmt_pct(metrics.get('accuracy'))}"


def start_from_file(ws: Workspace, choices: dict[str, Any], n_images: int) -> None:
    upload = st.file_uploader("Weights file (.safetensors, .pth or .bin)", type=["safetensors", "pth", "bin"],
                              key="model_weights_upload")
    saved: dict[str, str] = st.session_state.setdefault("weights_saved", {})
    refused: dict[tuple[str, str], str] = st.session_state.setdefault("weights_refused", {})
    if upload is not None:
        key = (upload.file_id, choices["backbone"])
        if upload.file_id not in saved and key not in refused:
            with st.spinner(f"Saving {upload.name} in the workspace…"):
                path = ws.save_weights(upload.name, upload.getvalue())
            reason = check_weights_upload(path, upload.name, choices["backbone"], int(choices["image_size"]))
            if reason:  # refused at once: nothing is kept, and nothing fails 17 s after Start
                path.unlink(missing_ok=True)
                refused[key] = reason
            else:
                saved[upload.file_id] = str(path)
        if key in refused:
            st.error(md_escape(refused[key]), icon=":material/block:")
            st.session_state["_start_blocked"] = "Choose a weights file that fits, or another starting point."
            return
        set_start(f"file:{saved[upload.file_id]}", choices, n_images)
    if choices["start"].startswith("file:"):
        st.success(f"Using {md_escape(Path(choices['start'][5:]).name)}: its weights fit "
                   f"{md_escape(backbone_label(choices['backbone']))}. They are loaded as plain tensors, never as "
                   "code.", icon=":material/check:")
    else:
        st.caption("Weights saved from the same backbone, e.g. a model trained elsewhere on similar parts. The file "
                   "is checked the moment it arrives.")


# --- 3. strategy -----------------------------------------------------------------------------------


def strategy_changes(strategy: Strategy) -> dict[str, Any]:
    defaults = STRATEGY_DEFAULTS[strategy]
    return {"strategy": strategy.value, "epochs": defaults["epochs"], "lr": defaults["lr"]}


@guarded
def strategy_section(choices: dict[str, Any], n_images: int) -> None:
    st.subheader("3 · How to adapt it", anchor=False)
    recommended, reason = recommended_strategy(n_images) if n_images else (None, "")
    scratch = choices["start"] == "scratch"
    anomaly, good_only = anomaly_reason() if not scratch else (None, False)
    if good_only:  # one class only: a classifier can't train, good-parts-only mode can
        recommended, reason = Strategy.ANOMALY, anomaly
    if scratch:
        st.info("Starting from scratch trains every layer, so the strategy is “From scratch”.", icon=":material/info:")
    elif recommended:
        st.info(f"Recommended: **{STRATEGY_TEXT[recommended][0]}**. {reason}", icon=":material/lightbulb:")
    if anomaly and not good_only:
        st.info(f"Also worth a try: **{STRATEGY_TEXT[Strategy.ANOMALY][0]}**. {anomaly}", icon=":material/lightbulb:")
    strategies = list(enumerate(Strategy))
    for row in range(0, len(strategies), 3):  # row by row, so the cards of a row line up
        for col, (i, strategy) in zip(st.columns(3), strategies[row:row + 3]):
            with col.container(border=True, key=f"strategy_card_{i}", height="stretch",
                               vertical_alignment="distribute"):  # words at the top, the button at the foot
                badge = Strategy.ANOMALY if anomaly and strategy == Strategy.ANOMALY else recommended
                strategy_card(strategy, choices, badge, locked=scratch)


def anomaly_reason() -> tuple[str | None, bool]:
    """:func:`core.recommend_anomaly` for the current dataset (few or no defect photos), and whether the
    dataset holds good parts only."""
    dataset = current_dataset()
    if not dataset:
        return None, False
    info = workspace().dataset_info(dataset)
    reason = core.recommend_anomaly(info.counts, info.good_class)
    return reason, bool(reason) and not any(n for c, n in info.counts.items() if c != info.good_class)


def strategy_card(strategy: Strategy, choices: dict[str, Any], recommended: Strategy | None, locked: bool) -> None:
    title, text = STRATEGY_TEXT[strategy]
    selected = choices["strategy"] == strategy.value
    with st.container():  # the words; the card spreads them and its button, so the buttons of a row line up
        card_title(title, strategy == recommended and not locked)
        st.write(text)
        st.caption(core.evidence_text(strategy))
    disabled = locked and strategy != Strategy.SCRATCH
    if st.button("Selected" if selected else "Use this", key=f"use_strategy_{strategy.value}", disabled=disabled,
                 type="primary" if selected else "secondary", icon=":material/check:" if selected else None,
                 width="stretch"):
        changes = strategy_changes(strategy)
        if strategy == Strategy.SCRATCH:
            changes["start"] = "scratch"
        update_model_choices(**changes)
        st.rerun()


# --- advanced settings and summary -----------------------------------------------------------------


def _seed_widget(key: str, value: Any) -> str:
    """Give a widget its remembered value when it is (re)created; returns its session key."""
    widget = f"model_{key}"
    if widget not in st.session_state:
        st.session_state[widget] = value
    return widget


@guarded
def advanced_section(choices: dict[str, Any], n_images: int, speed: dict[str, float] | None) -> None:
    with st.expander("Advanced settings", icon=":material/settings:"):
        st.caption("The defaults suit the chosen strategy; change them only if you know why.")
        top, bottom = st.columns(3), st.columns(3)
        choices["epochs"] = int(top[0].number_input(
            "Epochs", 1, 1000, step=1, key=_seed_widget("epochs", choices["epochs"]),
            help="Passes over the training photos."))
        choices.setdefault("patience", RunConfig(data="", out="").patience)
        choices["patience"] = int(top[1].number_input(
            "Stop when no progress for (epochs)", 1, 1000, step=1,
            key=_seed_widget("patience", choices["patience"]),
            help="Training stops when the validation score hasn't improved for this many epochs."))
        sizes = sorted({*IMAGE_SIZES, int(choices["image_size"])})
        choices["image_size"] = int(top[2].selectbox(
            "Image size (pixels)", sizes, key=_seed_widget("image_size", choices["image_size"]),
            help="Photos are resized to this square. Larger shows finer defects but trains slower. The "
                 "default follows your photos and the backbone."))
        st.caption(image_size_cost(choices, n_images, speed))
        choices["lr"] = float(bottom[0].number_input(
            "Learning rate", 0.00001, 0.5, step=0.0005, format="%.5f", key=_seed_widget("lr", choices["lr"]),
            help="How big each learning step is."))
        batches = sorted({*BATCH_SIZES, int(choices["batch_size"])})
        choices["batch_size"] = int(bottom[1].selectbox(
            "Batch size", batches, key=_seed_widget("batch_size", choices["batch_size"]),
            help="Photos per step. Lower it if the computer runs out of memory."))
        choices["seed"] = int(bottom[2].number_input(
            "Seed", 0, 2**31 - 1, step=1, key=_seed_widget("seed", choices["seed"]),
            help="Fixes the random choices, so a run can be repeated exactly."))
        eight = st.checkbox(
            "Check each photo 8 ways", key=_seed_widget("views", int(choices.get("views", DEFAULT_VIEWS)) == 8),
            help="The finished model looks at each photo as it is, mirrored and turned, and averages the answers: "
                 "steadier answers (measured on real steel photos: fewer mistakes), but predicting takes about 8× as "
                 "long. Turn it off when a mirrored or turned part would itself be a defect (for example a part "
                 "fitted the wrong way round). Off: each photo is checked once, as it is.")
        choices["views"] = 8 if eight else 1


def summary(ws: Workspace, choices: dict[str, Any], dataset: str | None, n_images: int) -> None:
    st.divider()
    speed = backbone_speeds(ws).get(choices["backbone"])
    if n_images:
        choices["folds"] = thoroughness(choices, n_images, speed, key="model_folds")
    kind = choices["start"].split(":", 1)[0]
    strategy = STRATEGY_TEXT[Strategy(choices["strategy"])][0]
    start = START_TEXT[kind] if kind != "scratch" else "no pretraining"
    backbone = choices["backbone"]
    if kind == "run":  # an earlier model brings its own backbone
        config = read_json(Path(choices["start"][4:]) / "config.json", {}) or {}
        backbone = config.get("backbone") or backbone
    epochs = int(choices["epochs"])
    st.markdown(f"**Your choice:** {md_escape(backbone_label(backbone))} · {start} · {strategy} · "
                f"{epochs} epoch{'s' if epochs != 1 else ''} at {choices['image_size']} px")
    if n_images:
        st.caption(expected_duration_text(choices, n_images, speed))
    shrunk = image_size_warning(choices)
    if shrunk:
        st.warning(shrunk + " Change it under Advanced settings.", icon=":material/zoom_out:")
    blocked = st.session_state.get("_start_blocked")
    if dataset is None:
        st.warning("Choose or add a dataset on the Data page before training.", icon=":material/photo_library:")
    elif blocked:
        st.warning(blocked, icon=":material/block:")
    elif st.button("Next: train", type="primary", icon=":material/arrow_forward:", key="model_next"):
        st.session_state["train_fresh"] = True  # the Train page opens on the new run's settings and Start
        go_to("train")


@guarded
def main() -> None:
    page_header("Model", "Pick a pretrained network and how to adapt it to your photos. The recommended choices "
                         "work well; you can change them at any time.")
    ws = workspace()
    dataset = current_dataset()
    n_images = ws.dataset_info(dataset).total if dataset else 0
    if dataset:
        st.caption(f"Dataset: {md_escape(dataset)} · {fmt_int(n_images)} photos")
        warmup.training_process(ws.root)  # a training process loads PyTorch now: Start won't wait for it
    choices = model_choices(n_images)
    backbone_section(ws, choices)
    start_section(ws, choices, n_images)
    strategy_section(choices, n_images)
    guarded(false_alarm_section)(choices)  # good parts only: the false alarms the user accepts
    advanced_section(choices, n_images, backbone_speeds(ws).get(choices["backbone"]))
    summary(ws, choices, dataset, n_images)

main()
