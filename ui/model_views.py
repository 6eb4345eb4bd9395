"""Model page pieces: the cached speed table, the expected training time, quick vs thorough,
plain advice when this computer is offline, and weights files checked the moment they arrive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from core.advice import offline_ways
from core.config import DEFAULT_VIEWS, RunConfig
from core.errors import GraftError
from core.workspace import Workspace
from ui.advice_views import advice_markdown
from ui.common import current_dataset, fmt_duration, fmt_int, photo_sizes, workspace

__all__ = ["backbone_speeds", "training_estimate", "image_size_cost", "thoroughness", "offline_advice",
           "check_weights_upload", "expected_duration_text"]

# --- the speed table (read from every run's events: cached until a run folder or speeds.json changes) ---


@st.cache_data(show_spinner=False, max_entries=8)
def _speeds(root: str, signature: tuple[float, float, int]) -> dict[str, dict[str, float]]:
    return Workspace(root).backbone_speeds()


def backbone_speeds(ws: Workspace) -> dict[str, dict[str, float]]:
    """``ws.backbone_speeds()``, cached: it reads every run's event log."""
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    finished = sum(1 for p in ws.runs_dir.iterdir() if (p / "metrics.json").exists()) if ws.runs_dir.is_dir() else 0
    return _speeds(str(ws.root), (mtime(ws.runs_dir), mtime(ws.speeds_file), finished))


# --- how long it will take ---------------------------------------------------------------------------


def training_estimate(choices: dict[str, Any], n_images: int, speed: dict[str, float] | None,
                      folds: int = 1) -> float | None:
    """Seconds the run should take on this computer (None without any speed to go by).

    The run's own plan and per-unit costs (:mod:`core.eta`: checking, decoding, the feature pass and
    the probe's views, every epoch of every fit, the head refit, scoring), with the costs taken from
    the speed measured here, else the backbone's speed on the reference CPU. With a warm training
    process waiting (:func:`core.ready_standby`), Start doesn't wait for PyTorch to load.
    """
    from core.catalogue import curated
    from core.eta import estimate_seconds, priors, shape_for

    info = curated(choices["backbone"])
    if not n_images or not (speed or (info and info.train_ips)):
        return None
    config = RunConfig(data="", out="", strategy=choices["strategy"], epochs=int(choices["epochs"]),
                       views=int(choices.get("views") or DEFAULT_VIEWS),
                       batch_size=int(choices.get("batch_size") or RunConfig.batch_size))
    prior = priors(choices["backbone"], int(choices["image_size"]), config.batch_size, speed)
    if _warm_process_waits(str(workspace().root)):
        prior["start"] = 0.0
    return estimate_seconds(shape_for(config, n_images, folds=folds), prior)


@st.cache_data(ttl=2, show_spinner=False)
def _warm_process_waits(root: str) -> bool:
    """Whether a warm training process waits here, asked once for a page's several estimates."""
    from core import ready_standby

    return ready_standby(root) is not None


def expected_duration_text(choices: dict[str, Any], n_images: int, speed: dict[str, float] | None) -> str:
    """"About 4 min on this computer" (or a plain note that it can't be told yet)."""
    seconds = training_estimate(choices, n_images, speed, _folds(choices, n_images))
    if seconds is None:
        return "The expected time shows once this backbone has trained here (or after measuring the speeds)."
    where = "this computer" if speed else "a 2-core laptop"
    return f"Expected training time: about {fmt_duration(seconds)} on {where}."


def _folds(choices: dict[str, Any], n_images: int) -> int:
    """The folds the run will use: the choice made, else the default for this many photos."""
    from core.folds import default_folds

    return int(choices.get("folds") or default_folds(n_images))


def image_size_cost(choices: dict[str, Any], n_images: int, speed: dict[str, float] | None) -> str:
    """What the chosen image size and the next larger ones cost, in one sentence: each the whole run's
    expected time (:func:`training_estimate`), else how many times as long as the chosen size."""
    from core.imagesize import larger_sizes, relative_cost

    size = int(choices["image_size"])
    bigger = larger_sizes(size, photo_sizes(current_dataset()))
    if not bigger:
        return f"{size} px keeps all the detail of your photos."
    est = [(s, training_estimate({**choices, "image_size": s}, n_images, speed, _folds(choices, n_images)))
           for s in [size, *bigger]]
    if any(t is None for _, t in est):
        ratios = ", ".join(f"{s} px takes about {relative_cost(s, size):.1f}× as long" for s in bigger)
        return f"Training time grows with the image size: {ratios}."
    parts = "; ".join(f"{s} px about {fmt_duration(t)}" for s, t in est)
    return f"Expected time of the whole run on {fmt_int(n_images)} photos: {parts}."


def thoroughness(choices: dict[str, Any], n_images: int, speed: dict[str, float] | None, key: str) -> int:
    """Quick (one split) or thorough (5 folds), with what each costs; returns the folds chosen."""
    from core.folds import DEFAULT_FOLDS, default_folds

    quick, thorough = 1, DEFAULT_FOLDS
    chosen = _folds(choices, n_images)
    if key not in st.session_state:
        st.session_state[key] = thorough if chosen >= 2 else quick

    def label(folds: int) -> str:  # fixed labels: the times go in the caption (a changing label resets the radio)
        return "Quick (one split)" if folds == 1 else f"Thorough ({folds} folds)"

    picked = st.radio("How carefully to measure the model", [quick, thorough], format_func=label, horizontal=True,
                      key=key, help="Quick trains once and judges the model on the photos it kept aside. Thorough "
                                    "trains on 5 different splits so every photo is judged once: surer figures for "
                                    "small datasets, about 5 times the training time.")
    times = [(label(f), training_estimate(choices, n_images, speed, f)) for f in (quick, thorough)]
    cost = " · ".join(f"{name}: about {fmt_duration(t)}" for name, t in times if t is not None)
    suggested = default_folds(n_images)
    st.caption((f"{cost}. " if cost else "") + f"Suggested for {fmt_int(n_images)} photos: "
               + ("thorough: with this few photos one split leaves too few to judge on." if suggested >= 2 else
                  "quick: there are enough photos to judge on one split."))
    return int(picked)


# --- offline ------------------------------------------------------------------------------------------


def offline_advice(n_images: int, n_classes: int, choices: dict[str, Any], speed: dict[str, float] | None,
                   has_models: bool) -> None:
    """What learning from scratch on these photos gives and costs here, and the real ways forward."""
    seconds = training_estimate(choices, n_images, speed, _folds(choices, n_images))
    per_class = n_images / max(1, n_classes)
    expect = ("With this few photos, a network that starts from nothing usually learns little more than the "
              "overall brightness and colour of each class: expect many missed defects."
              if per_class < 500 else
              "With this many photos, learning from scratch can work, but usually still lags a pretrained start.")
    took = f" It takes about {fmt_duration(seconds)} on this computer." if seconds is not None else ""
    st.warning(f"**From scratch on {fmt_int(n_images)} photos.** {expect}{took}", icon=":material/cloud_off:")
    with st.expander("Better ways forward without the internet", icon=":material/lightbulb:", expanded=True):
        st.markdown("\n".join(f"- {advice_markdown(way, inline=True)}" for way in offline_ways(
            has_models, *_good_parts(), where="above")))


def _good_parts() -> tuple[str | None, str | None]:
    """The current dataset's good class, and why good-parts-only mode suits it (if it does)."""
    from core.anomaly_choice import recommend_anomaly

    dataset = current_dataset()
    if not dataset:
        return None, None
    info = workspace().dataset_info(dataset)
    return info.good_class, recommend_anomaly(info.counts, info.good_class)


# --- weights files, checked on arrival -----------------------------------------------------------------


def check_weights_upload(path: Path, shown_name: str, backbone: str, image_size: int) -> str | None:
    """None when the weights at ``path`` fit ``backbone``; else one plain reason naming ``shown_name``."""
    from ui import warmup

    with st.spinner(f"Checking {shown_name}…"):
        backbones = warmup.engine()
        try:
            fit = backbones.check_weights_file(path, backbone, image_size)
        except GraftError as exc:
            return _plain_refusal(exc.message, path.name, shown_name)
    if fit.ok:
        return None
    from core.catalogue import label_of

    return (f"{shown_name} doesn't fit the {label_of(backbone)} backbone: {fit.matched} of {fit.needed} of its "
            "layers were found in the file. Pick the backbone the weights were saved from, or another file.")


def _plain_refusal(message: str, saved_name: str, shown_name: str) -> str:
    """A core refusal in plain words, naming the file the user chose (no exception names)."""
    text = message.replace(f"'{saved_name}'", shown_name).replace(saved_name, shown_name)
    if "(" in text and text.rstrip().endswith(")."):
        text = text[: text.rindex("(")].rstrip() + "."
    return f"{text} Graft only accepts plain weights files (.safetensors, or a .pth/.bin holding only tensors)."

