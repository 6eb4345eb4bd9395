"""Keep the user's place: dataset, run and model settings survive a refresh, a second tab and a shared link.

The place lives in three layers, read in this order once per browser session:

1. the URL's query parameters (``?dataset=sample&backbone=...&epochs=8``): a link can be shared;
2. the workspace's ``last_used.json`` (:meth:`core.workspace.Workspace.last_used`): a new tab or a
   refresh without parameters continues where the user was;
3. the defaults.

After every page run, :func:`sync_place` writes the session's place back to the URL and the workspace.
Everything read is checked: a dataset or run that no longer exists, or a setting ``RunConfig`` refuses,
is simply dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from core.config import RunConfig
from core.errors import GraftError
from ui.common import current_dataset, current_run, select_dataset, select_run, workspace

__all__ = ["restore_place", "sync_place", "place_params", "RESTORED_KEY", "CHOICE_PARAMS", "EXTRA_PARAMS"]

RESTORED_KEY = "_graft_place_restored"
SYNCED_KEY = "_graft_place_synced"
# URL parameter -> RunConfig field (short names keep a shared link readable)
CHOICE_PARAMS = {"backbone": "backbone", "start": "start", "strategy": "strategy", "epochs": "epochs",
                 "lr": "lr", "size": "image_size", "batch": "batch_size", "seed": "seed", "patience": "patience",
                 "folds": "folds", "views": "views"}
# URL parameter -> key of RunConfig.extra (kept in the choices' "extra"; validated below)
EXTRA_PARAMS = {"fa": "false_alarm_target"}
_NUMBERS = {"epochs": int, "image_size": int, "batch_size": int, "seed": int, "patience": int, "folds": int,
            "views": int, "lr": float}


# --- reading ----------------------------------------------------------------------------------------


def _from_url() -> dict[str, Any]:
    params = st.query_params
    place: dict[str, Any] = {k: params[k] for k in ("dataset", "run") if params.get(k)}
    choices = {field: params[name] for name, field in CHOICE_PARAMS.items() if params.get(name)}
    extra = {key: params[name] for name, key in EXTRA_PARAMS.items() if params.get(name)}
    if extra:
        choices["extra"] = extra
    if choices:
        place["choices"] = choices
    return place


def _valid_choices(raw: dict[str, Any]) -> dict[str, Any]:
    """Each setting that ``RunConfig`` accepts on its own; the start point must still exist."""
    out: dict[str, Any] = {}
    extra = _valid_extra(raw.get("extra"))
    if extra:
        out["extra"] = extra
    for field, value in raw.items():
        if field not in set(CHOICE_PARAMS.values()):
            continue
        try:
            value = _NUMBERS[field](value) if field in _NUMBERS else str(value)
            if field == "start":
                value = _start_from_param(value)
            RunConfig(data="", out="", **{field: value})
        except (GraftError, TypeError, ValueError):
            continue
        out[field] = value.value if hasattr(value, "value") else value
    return out


def _valid_extra(raw: Any) -> dict[str, Any]:
    """The extra settings Graft accepts: the good-parts-only false-alarm target (0% < rate < 50%)."""
    from ui.anomaly_views import valid_target

    target = valid_target(raw.get("false_alarm_target")) if isinstance(raw, dict) else None
    return {"false_alarm_target": target} if target is not None else {}


def _start_from_param(value: str) -> str:
    """``run:<id>`` / ``file:<name>`` (as in a URL) to the workspace paths a RunConfig holds."""
    kind, _, rest = value.partition(":")
    ws = workspace()
    if kind in ("imagenet", "scratch") and not rest:
        return kind
    if kind == "run" and rest:
        path = ws.run_path(Path(rest).name)  # refuses anything outside the runs folder
        if (path / "model" / "model.json").is_file():
            return f"run:{path}"
    if kind == "file" and rest:
        path = ws.weights_dir / Path(rest).name
        if path.is_file():
            return f"file:{path}"
    raise ValueError(value)


def _start_to_param(start: str) -> str:
    kind, _, rest = str(start).partition(":")
    return f"{kind}:{Path(rest).name}" if rest else kind


def restore_place() -> None:
    """Once per browser session, before the page runs: take the place from the URL, else the workspace."""
    if st.session_state.get(RESTORED_KEY):
        return
    st.session_state[RESTORED_KEY] = True
    ws = workspace()
    saved, url = ws.last_used(), _from_url()
    place = {**saved, **url, "choices": {**(saved.get("choices") or {}), **(url.get("choices") or {})}}
    if "dataset" not in st.session_state and place.get("dataset"):
        select_dataset(str(place["dataset"]))
        current_dataset()  # drops it again when it no longer exists
    if "run" not in st.session_state and place.get("run"):
        try:
            select_run(ws.run_path(Path(str(place["run"])).name))
        except GraftError:
            pass
    choices = _valid_choices(place["choices"])
    if choices and "choices" not in st.session_state:
        st.session_state["choices_restored"] = choices  # merged over the defaults by ui.common.model_choices


# --- writing ----------------------------------------------------------------------------------------


def place_params(dataset: str | None, run: str | None, choices: dict[str, Any] | None) -> dict[str, str]:
    """The query parameters that describe a place (pure: also used by the tests)."""
    out: dict[str, str] = {}
    if dataset:
        out["dataset"] = dataset
    if run:
        out["run"] = Path(run).name
    for name, field in CHOICE_PARAMS.items():
        value = (choices or {}).get(field)
        if value is None:
            continue
        out[name] = _start_to_param(value) if field == "start" else f"{value:g}" if field == "lr" else str(value)
    extra = (choices or {}).get("extra") or {}
    out.update({name: f"{extra[key]:g}" for name, key in EXTRA_PARAMS.items() if extra.get(key) is not None})
    return out


def sync_place() -> None:
    """After the page ran: the URL and ``last_used.json`` show the session's place (written only on change)."""
    dataset, run = current_dataset(), current_run()
    choices = st.session_state.get("choices") or st.session_state.get("choices_restored")
    params = place_params(dataset, run, choices)
    ours = ("dataset", "run", *CHOICE_PARAMS, *EXTRA_PARAMS)
    others = {k: v for k, v in st.query_params.to_dict().items() if k not in ours}
    if st.query_params.to_dict() != {**others, **params}:
        st.query_params.from_dict({**others, **params})  # one update: one history entry
    saved = {"dataset": dataset, "run": Path(run).name if run else None,
             "choices": {k: v for k, v in (choices or {}).items() if k in (*CHOICE_PARAMS.values(), "extra")} or None}
    if st.session_state.get(SYNCED_KEY) != saved:
        workspace().remember(**saved)
        st.session_state[SYNCED_KEY] = saved
