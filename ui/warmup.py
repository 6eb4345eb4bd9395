"""Slow start-up work done once per server, off the first paint: the model-hub probe and PyTorch/timm.

:func:`probe` (app.py, before the page) asks the hub in a background thread: it only waits on the
network. :func:`start` (app.py, after the page) loads PyTorch and timm a few seconds later, once the
first page has reached the browser: an import holds Python's lock and would delay the page's messages.
A page that needs an answer sooner calls :func:`hub_reachable` or :func:`engine`, which wait only for
what is still running.
"""

from __future__ import annotations

import importlib
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import streamlit as st

__all__ = ["probe", "start", "hub_reachable", "engine", "engine_loaded", "training_process"]

HUB_RECHECK_S = 10 * 60  # the connection may come back: probe again after this long
ENGINE_DELAY_S = 5.0     # let the first page reach the browser before PyTorch loads
ENGINE = "core.backbones"


@st.cache_resource(show_spinner=False)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="graft-warmup")


def _load_engine_later() -> None:
    time.sleep(ENGINE_DELAY_S)
    importlib.import_module(ENGINE)


@st.cache_resource(show_spinner=False)
def _engine_warmup() -> Future:
    return _pool().submit(_load_engine_later)


@st.cache_resource(show_spinner=False, ttl=HUB_RECHECK_S)
def _hub() -> Future:
    from core.hub import pretrained_available  # torch-free

    return _pool().submit(pretrained_available)


def probe() -> None:
    """Begin probing the hub (returns at once; waiting on the network costs the page nothing)."""
    _hub()


def start() -> None:
    """Begin probing the hub and, a few seconds later, loading PyTorch and timm (returns at once)."""
    _hub()
    _engine_warmup()


def hub_reachable() -> bool:
    """Whether pretrained weights can be downloaded right now (waits for the probe: at most ~3 s)."""
    return bool(_hub().result())


def engine() -> ModuleType:
    """``core.backbones``, loaded now if the warm-up hasn't yet (an import in progress is waited for)."""
    return importlib.import_module(ENGINE)


def engine_loaded() -> bool:
    """Whether PyTorch and timm are loaded already (a page can then skip its spinner)."""
    return ENGINE in sys.modules


def training_process(workspace: Path) -> None:
    """Keep a warm training process for Start (:func:`core.ensure_standby`), started once this server's own
    warm-up has loaded PyTorch: on a fresh server, its imports would share the CPU with the first pages."""
    from core import ensure_standby  # torch-free

    if _engine_warmup().done():
        ensure_standby(workspace)
    else:
        _standby_when_warm(str(workspace))


@st.cache_resource(show_spinner=False)
def _standby_when_warm(workspace: str) -> Future:
    """Once per server and workspace: start the warm training process as soon as the warm-up is done
    (the page may not be drawn again before Start)."""
    from core import ensure_standby

    engine = _engine_warmup()

    def later() -> None:
        try:
            engine.result()
        except Exception:  # the warm-up failed: the pages say why; runs start the usual way
            return
        ensure_standby(workspace)

    return _pool().submit(later)
