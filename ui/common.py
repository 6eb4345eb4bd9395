"""Helpers shared by every page: the workspace, errors, session state, formatting and the look.

Pages stay thin: they lay out widgets and call these helpers and ``core``. Nothing here
trains or decodes at scale; long work happens in ``core`` or in the training process.
Names are stable: other pages import them.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.errors import GraftError
from core.numbers import fmt_pct as core_fmt_pct
from core.runs import ACTIVE_STATES
from core.workspace import Workspace, recommend_strategy

__all__ = [
    "ACCENT", "MUTED", "GOOD", "WARN", "BAD", "PAGES",
    "workspace", "show_error", "guarded", "friendly_errors",
    "current_dataset", "select_dataset", "current_run", "select_run", "attach_run",
    "model_choices", "update_model_choices", "default_choices", "online", "pretrained_cached", "backbone_label",
    "photo_sizes", "default_image_size", "image_size_warning", "recommended_strategy",
    "fmt_pct", "fmt_duration", "fmt_int", "md_escape", "page_header", "go_to", "flash", "show_flash",
    "STATE_LABELS", "state_badge", "headline_metrics", "Progress", "progress_summary", "render_sidebar",
    "render_nav", "dataset_line", "count_words", "strategy_title", "run_state", "STRATEGY_TITLES",
]

_log = logging.getLogger("graft.ui")
F = TypeVar("F", bound=Callable[..., Any])

# One accent colour (also in .streamlit/config.toml); the rest are quiet support colours.
ACCENT = "#0F766E"   # teal: validation curves, primary buttons, defect bars
MUTED = "#94A3B8"    # slate: training curves, the "good" class
GOOD, WARN, BAD = "#15803D", "#B45309", "#B91C1C"
METRIC_CARD_PX = 210  # headline cards: wide enough for "Defects caught (catch rate)" and "100.0%"

PAGES = {
    "data": "pages/1_data.py", "model": "pages/2_model.py", "train": "pages/3_train.py",
    "evaluate": "pages/4_evaluate.py", "test": "pages/5_test.py", "runs": "pages/6_runs.py",
}
PAGE_TITLES = {"data": "Data", "model": "Model", "train": "Train", "evaluate": "Evaluate", "test": "Test",
               "runs": "Runs"}


# --- the workspace ---------------------------------------------------------------------------


def _workspace_root() -> str:
    return str(Path(os.environ.get("GRAFT_WORKSPACE") or Path.cwd() / "workspace").expanduser().resolve())


@st.cache_resource(show_spinner=False)
def _workspace_at(root: str) -> Workspace:
    return Workspace(root)


def workspace() -> Workspace:
    """The workspace of ``GRAFT_WORKSPACE`` (or ``./workspace``), shared by all sessions of this process."""
    return _workspace_at(_workspace_root())  # keyed by the root, so a changed variable gets its own


# --- errors ----------------------------------------------------------------------------------


def show_error(exc: BaseException) -> None:
    """Show an error in plain words: a GraftError's own message, else a generic one. Never a traceback."""
    if isinstance(exc, GraftError):
        text = f"{exc.message} {exc.hint}".strip()
        st.error(md_escape(text), icon=":material/error:")
        return
    _log.error("Unexpected error in a Graft page", exc_info=exc)  # details go to the server log only
    st.error("Something went wrong on this page. Try the action again; if it keeps happening, reload the page. "
             "Your datasets, runs and models are saved and are not affected.", icon=":material/error:")


def guarded(fn: F) -> F:
    """Decorate a page body (or a part of it) so any error is shown with :func:`show_error`.

    Streamlit's own control flow (rerun, stop, switch page) is not an ``Exception`` and passes through.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # the page boundary: turn anything into a plain message
            show_error(exc)
            return None
    return wrapper  # type: ignore[return-value]


@contextmanager
def friendly_errors() -> Iterator[None]:
    """``with friendly_errors(): ...``: like :func:`guarded`, for a block inside a page."""
    try:
        yield
    except Exception as exc:
        show_error(exc)


# --- where the user is (session state holds only this; everything else is on disk) -----------


def current_dataset() -> str | None:
    """The dataset the user is working on (``st.session_state["dataset"]``), if it still exists."""
    name = st.session_state.get("dataset")
    if name and (workspace().datasets_dir / str(name)).is_dir():
        return str(name)
    st.session_state.pop("dataset", None)
    return None


def select_dataset(name: str | None) -> None:
    """Make ``name`` the current dataset (None: none)."""
    if name is None:
        st.session_state.pop("dataset", None)
    else:
        st.session_state["dataset"] = name


def current_run() -> str | None:
    """The run folder the user is looking at (``st.session_state["run"]``), if it still exists."""
    path = st.session_state.get("run")
    if path and Path(str(path)).is_dir():
        return str(path)
    st.session_state.pop("run", None)
    return None


def select_run(path: str | Path | None) -> None:
    """Make the run folder ``path`` the current run (None: none)."""
    if path is None:
        st.session_state.pop("run", None)
    else:
        st.session_state["run"] = str(path)


RECENT_S = 15 * 60  # a run that ended this recently is still "the run" after a refresh


def attach_run() -> str | None:
    """The current run; after a refresh (session lost), the newest run still queued or training,
    else one that ended in the last few minutes (so a refresh doesn't hide fresh results)."""
    path = current_run()
    if path is None:
        runs = workspace().list_runs()
        active = [r for r in runs if r["status"].get("state") in ACTIVE_STATES]
        recent = [r for r in runs if time.time() - float(r["status"].get("updated") or 0) < RECENT_S]
        if active or recent:
            path = (active or recent)[0]["path"]
            select_run(path)
    return path


# --- model choices (the Model page writes them, the Train page reads them) --------------------


def online() -> bool:
    """Whether pretrained weights can be downloaded: probed in the background once per server
    (every few minutes again), so asking costs nothing after the first page (up to 3 s before)."""
    if "online" not in st.session_state:
        from ui import warmup

        with st.spinner("Checking whether pretrained models can be downloaded…"):
            st.session_state["online"] = warmup.hub_reachable()
    return bool(st.session_state["online"])


def pretrained_cached(backbone: str) -> bool:
    """Whether ImageNet weights for ``backbone`` are already on this computer (usable offline)."""
    from core.catalogue import curated

    if curated(backbone):  # timm publishes its weights as timm/<name>: no need to load timm to ask
        from core.hub import cached_in_hub

        return cached_in_hub(f"timm/{backbone}")
    from ui import warmup

    if not warmup.engine_loaded():
        with st.spinner("Loading the model library…"):
            warmup.engine()
    return bool(warmup.engine().weights_cached(backbone))


def backbone_label(name: str) -> str:
    """The friendly name of a curated backbone (``ResNet-18``), else the timm name itself."""
    from core.catalogue import label_of  # torch-free

    return label_of(name)


def default_choices(n_images: int | None = None) -> dict[str, Any]:
    """Sensible settings for a user who changes nothing (offline-aware)."""
    from core import DEFAULT_BACKBONE, STRATEGY_DEFAULTS, RunConfig, Strategy

    base = RunConfig(data="", out="")
    if online():
        start = "imagenet"
    else:  # offline: build on the best usable earlier model, else learn from scratch
        best = workspace().best_model()
        start = f"run:{best['path']}" if best else "scratch"
    strategy = Strategy.SCRATCH if start == "scratch" else recommended_strategy(n_images or 0)[0]
    size = default_image_size(current_dataset(), DEFAULT_BACKBONE)
    st.session_state["image_size_auto"] = ((current_dataset(), DEFAULT_BACKBONE), size)
    return {"backbone": DEFAULT_BACKBONE, "start": start, "strategy": strategy.value,
            "epochs": STRATEGY_DEFAULTS[strategy]["epochs"], "lr": STRATEGY_DEFAULTS[strategy]["lr"],
            "image_size": size, "batch_size": base.batch_size, "seed": base.seed,
            "patience": base.patience}


def model_choices(n_images: int | None = None) -> dict[str, Any]:
    """The run settings chosen so far (``st.session_state["choices"]``), with defaults filled in.

    Keys: backbone, start, strategy (value string), epochs, lr, image_size, batch_size, seed, patience;
    all of them are ``RunConfig`` fields, so ``Workspace.new_run_config(dataset, **choices)`` works.
    The image size follows the dataset and backbone (:func:`default_image_size`) until the user picks one.
    """
    if "choices" not in st.session_state:
        defaults = default_choices(n_images)
        restored = st.session_state.pop("choices_restored", None) or {}  # from the URL or last_used.json
        st.session_state["choices"] = {**defaults, **restored}
        if restored.get("image_size") not in (None, defaults["image_size"]):
            st.session_state.pop("image_size_auto", None)  # a size the user chose: theirs to keep
    _follow_photo_size(st.session_state["choices"])
    return st.session_state["choices"]


def _follow_photo_size(choices: dict[str, Any]) -> None:
    auto = st.session_state.get("image_size_auto")
    if auto is None or choices.get("image_size") != auto[1]:
        return  # chosen by the user (or set by another page): theirs to keep
    key = (current_dataset(), choices["backbone"])
    if tuple(auto[0]) == key:
        return
    size = default_image_size(*key)
    st.session_state["image_size_auto"] = (key, size)
    if size != choices["image_size"]:
        update_model_choices(image_size=size)


def recommended_strategy(n_images: int) -> tuple[Any, str]:
    """:func:`core.workspace.recommend_strategy` for the current dataset's photos and classes."""
    dataset = current_dataset()
    n_classes = len(workspace().dataset_info(dataset).classes) if dataset else None
    return recommend_strategy(n_images, n_classes)


def photo_sizes(dataset: str | None) -> dict[str, float] | None:
    """Median and extreme photo sizes of ``dataset`` from its (cached) check report, or None."""
    if not dataset:
        return None
    with friendly_errors():
        return workspace().check(dataset).sizes or None
    return None


def default_image_size(dataset: str | None, backbone: str) -> int:
    """The image size Graft chooses for these photos and this backbone (:mod:`core.imagesize`)."""
    from core.catalogue import native_size_of
    from core.imagesize import choose_image_size

    native = native_size_of(backbone)
    if native is None:  # another timm model: ask timm (loads PyTorch)
        from core.backbones import native_size

        native = native_size(backbone)
    return choose_image_size(photo_sizes(dataset), native)


def image_size_warning(choices: dict[str, Any]) -> str | None:
    """A plain warning when the chosen size shrinks the current dataset's photos more than about 4×."""
    from core.imagesize import shrink_warning

    return shrink_warning(photo_sizes(current_dataset()), int(choices["image_size"]))


def update_model_choices(**changes: Any) -> None:
    """Change run settings, e.g. ``update_model_choices(start="run:/path/to/run")`` from the Runs page.

    The Model page's widgets for the changed settings are reset so they show the new values.
    """
    model_choices().update(changes)
    for key in changes:  # e.g. "start" also resets "model_start_run", the earlier-model picker
        for widget in [k for k in st.session_state if str(k).startswith(f"model_{key}")]:
            del st.session_state[widget]


# --- formatting ------------------------------------------------------------------------------


def fmt_pct(value: float | None, digits: int = 0) -> str:
    """``0.934`` -> ``"93%"``; None or NaN -> ``"–"``: core's one percentage format, everywhere."""
    return core_fmt_pct(value, digits)


def fmt_duration(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``; ``4000`` -> ``"1 h 7 min"``; None -> ``"–"``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def fmt_int(n: int | float | None) -> str:
    """``1234`` -> ``"1,234"``."""
    return "–" if n is None else f"{int(n):,}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$=^&])")


def md_escape(text: object) -> str:
    """User text (class names, file names, messages) made inert for Streamlit markdown."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


# --- layout pieces ---------------------------------------------------------------------------


from ui.router import FRAMED_KEY, ensure_router, mark_framed  # noqa: E402,F401  (re-exported: pages import them here)


def page_header(title: str, subtitle: str = "") -> None:
    """The page title and one line saying what this step is for."""
    st.title(title)
    if subtitle:
        st.caption(subtitle)


def flash(message: str, icon: str = ":material/check_circle:", level: str = "success") -> None:
    """Remember a message to show after the next rerun (e.g. after an import); ``level`` is
    success, info, warning or error (an import whose photos can't train is not a success)."""
    st.session_state["_flash"] = (message, icon, level)


def show_flash() -> None:
    """Show (once) the message left by :func:`flash`."""
    message = st.session_state.pop("_flash", None)
    if message:
        text, icon, level = (*message, "success")[:3]
        {"info": st.info, "warning": st.warning, "error": st.error}.get(level, st.success)(text, icon=icon)


def count_words(n: int, singular: str, plural: str | None = None) -> str:
    """``1 class``, ``2 classes``, ``1,200 photos``."""
    return f"{fmt_int(n)} {singular if n == 1 else plural or singular + 's'}"


def go_to(page: str) -> None:
    """Open another page (``"evaluate"`` or a file such as ``"pages/4_evaluate.py"``)."""
    target = PAGES.get(page, page)
    try:
        st.switch_page(target)
    except StreamlitAPIException:  # the page runs on its own (tests) or the page is missing
        name = PAGE_TITLES.get(page, Path(target).stem)
        st.info(f"Open the {name} page from the menu on the left.")


STATE_LABELS: dict[str, tuple[str, str, str]] = {
    "queued": ("Waiting in line", "orange", ":material/schedule:"),
    "running": ("Training", "blue", ":material/autorenew:"),
    "done": ("Finished", "green", ":material/check_circle:"),
    "failed": ("Failed", "red", ":material/error:"),
    "stopped": ("Stopped", "gray", ":material/stop_circle:"),
    "cancelled": ("Cancelled", "gray", ":material/cancel:"),
    "interrupted": ("Interrupted", "orange", ":material/warning:"),
    "unknown": ("Unknown", "gray", ":material/help:"),
}


STRATEGY_TITLES = {"feature-extraction": "Feature extraction", "fine-tune": "Fine-tune",
                   "progressive": "Progressive unfreezing", "multi-task": "Multi-task", "scratch": "From scratch"}


def strategy_title(value: str) -> str:
    """The Model page's card name of a strategy (``"feature-extraction"`` -> ``"Feature extraction"``)."""
    return STRATEGY_TITLES.get(value, value.replace("-", " ").capitalize())


def run_state(status: dict[str, Any], events: list[dict[str, Any]] | None = None) -> str:
    """The state to show: a run stopped before it ever started training is "cancelled"."""
    state = str(status.get("state", "unknown"))
    if state == "stopped" and not any(e.get("event") == "run_start" for e in events or []):
        return "cancelled"
    return state


def state_badge(state: str) -> None:
    """A coloured badge for a run's state, in plain words."""
    label, color, icon = STATE_LABELS.get(state, STATE_LABELS["unknown"])
    st.badge(label, color=color, icon=icon)  # type: ignore[arg-type]


def headline_metrics(metrics: dict[str, Any]) -> None:
    """The numbers a manager asks for first: accuracy, defects caught, false alarms, F1."""
    n, caught, px = metrics.get("n"), metrics.get("catch_rate"), METRIC_CARD_PX
    with st.container(horizontal=True):  # fixed-width cards wrap on a narrow screen instead of cutting numbers
        st.metric("Accuracy", fmt_pct(metrics.get("accuracy")), border=True, width=px,
                  help=f"Share of {fmt_int(n)} held-back photos the model labelled correctly.")
        st.metric("Defects caught (catch rate)", fmt_pct(caught), border=True, width=px,
                  help=_count_help(metrics, "defects_caught", "defects", "defective parts flagged as defective "
                                   "(recall on defects)."))
        st.metric("False alarms", fmt_pct(metrics.get("false_alarm_rate")), border=True, width=px,
                  help=_count_help(metrics, "false_alarms", "good_parts", "good parts wrongly flagged as "
                                   "defective (false-positive rate)."))
        st.metric("Balanced score", f"{metrics['macro_f1']:.2f}" if metrics.get("macro_f1") is not None else "–",
                  border=True, width=px,
                  help="How well every class is recognised, with rare classes counting as much as common ones, "
                       "from 0 to 1 (1.00 is perfect). Statisticians call it macro F1.")
    if caught is None:
        st.caption("Mark the good class on the Data page to see defects caught and false alarms.")


def _count_help(metrics: dict[str, Any], part: str, whole: str, what: str) -> str:
    if metrics.get(part) is None:
        return what[0].upper() + what[1:]
    return f"{metrics[part]} of {metrics[whole]}: {what}"


# --- run progress (pure: tested without a browser) ------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where a run is: a fraction for the bar and one line of text."""

    fraction: float
    text: str
    phase: str = ""
    epoch: int = 0
    epochs: int = 0
    eta_s: float | None = None
    images_per_s: float | None = None


_PHASES = {"start": "Starting the training process", "check": "Checking photos", "decode": "Preparing photos",
           "features": "Reading the photos with the pretrained network",
           "refit": "Refitting the decision on the trained network"}
_FEW_SECONDS = 5.0  # below this the time left reads "a few seconds" (never "0 s" while work remains)


def _time_left(eta: float | None) -> str:
    """" · about 2 min 05 s left" for the whole run (nothing when it isn't known yet)."""
    if eta is None or not math.isfinite(float(eta)) or eta < 0:
        return ""
    return " · a few seconds left" if eta < _FEW_SECONDS else f" · about {fmt_duration(eta)} left"


def _train_speed(events: list[dict[str, Any]]) -> float | None:
    """The newest training speed (photos through the network per second), never a feature pass's."""
    return next((e["images_per_s"] for e in reversed(events) if e.get("images_per_s")
                 and (e.get("event") == "epoch" or e.get("phase") == "train")), None)


def progress_summary(events: list[dict[str, Any]], status: dict[str, Any]) -> Progress:
    """Turn a run's event log and status into a progress bar value and a line of text.

    The bar shows the current phase's share; the time left (``eta_s``) is the whole run's.
    """
    state = status.get("state", "unknown")
    if state == "queued":
        return Progress(0.0, "Waiting for its turn…", "queued")
    last = next((e for e in reversed(events) if e.get("event") in ("progress", "epoch")), None)
    speed = _train_speed(events)
    if last is None:
        done = state not in ACTIVE_STATES
        return Progress(1.0 if done else 0.0, "Starting…" if not done else "", "start")
    phase = last.get("phase", "train") if last["event"] == "progress" else "train"
    eta = last.get("eta_s")
    if phase in _PHASES or (last["event"] == "progress" and "epoch" not in last):  # a phase counted in photos
        done, total = int(last.get("done", 0)), max(int(last.get("total", 1)), 1)
        label = _PHASES.get(phase, "Building the memory of good parts")
        text = f"{label}…" if phase == "start" else f"{label}: {done:,} of {total:,}"
        return Progress(min(1.0, done / total), text + _time_left(eta), phase, eta_s=eta)
    epoch, epochs = int(last.get("epoch", 0)), max(int(last.get("epochs", 1)), 1)
    within = last.get("batch", 1) / max(last.get("batches", 1), 1) if last["event"] == "progress" else 1.0
    fraction = min(1.0, (epoch - 1 + within) / epochs) if epoch else 0.0
    text = f"Epoch {epoch} of {epochs}"
    if speed:
        text += f" · {speed:,.0f} photos/s"
    if state in ACTIVE_STATES:
        text += _time_left(eta) if epoch < epochs or within < 1 else " · scoring the test photos" + _time_left(eta)
    return Progress(fraction, text, "train", epoch, epochs, eta, speed)


# --- the frame -------------------------------------------------------------------------------


def render_nav(pages: list[Any]) -> None:
    """The sidebar's page links (app.py draws them before the page, so they show from the first paint)."""
    with st.sidebar:
        for page in pages:
            st.page_link(page)


def dataset_line(name: str | None, n_saved: int) -> str:
    """What the sidebar says about the dataset: the chosen one, else whether any are saved."""
    if name:
        return md_escape(name)
    if n_saved:
        return f"none chosen: open one of the {n_saved} saved on the Data page"
    return "none yet: start on the Data page"


def render_sidebar() -> None:
    """Workspace, current dataset and run, and the flow in one line (drawn by app.py)."""
    ws = workspace()
    with st.sidebar:
        st.divider()
        st.caption(f":material/folder_open: **Workspace**  \n{md_escape(ws.root)}")
        name = current_dataset()
        saved = 0 if name else sum(1 for p in ws.datasets_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        st.caption(f":material/photo_library: **Dataset**  \n{dataset_line(name, saved)}")
        run = current_run()
        if run:  # no state here: the sidebar is not redrawn by the Train page's live view
            st.caption(f":material/model_training: **Run**  \n{md_escape(Path(run).name)}")
        else:
            st.caption(":material/model_training: **Run**  \nnone yet")
        st.divider()
        st.caption("How it works: add labelled photos → pick a model → train → check the results → test new photos. "
                   "Everything is saved in the workspace.")
