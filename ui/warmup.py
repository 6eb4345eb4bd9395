"""Slow start-up work done once per server, off the first paint: PyTorch/timm and the model-hub probe.

``start()`` (app.py, after the first page has been drawn) begins it in a background thread; a page
that needs the answer calls :func:`hub_reachable` or :func:`engine`, which wait only for what is
still running.
"""

from __future__ import annotations

import importlib
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType

import streamlit as st

__all__ = ["probe", "start", "hub_reachable", "engine", "engine_loaded"]

HUB_RECHECK_S = 10 * 60  # the connection may come back: probe again after this long


@st.cache_resource(show_spinner=False)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="graft-warmup")


@st.cache_resource(show_spinner=False)
def _engine() -> Future:
    return _pool().submit(importlib.import_module, "core.backbones")  # torch + timm: seconds, once


@st.cache_resource(show_spinner=False, ttl=HUB_RECHECK_S)
def _hub() -> Future:
    from core.hub import pretrained_available  # torch-free

    return _pool().submit(pretrained_available)


def probe() -> None:
    """Begin probing the hub (returns at once; waiting on the network costs the page nothing)."""
    _hub()


def start() -> None:
    """Begin loading the engine and probing the hub (returns at once)."""
    _hub()
    _engine()


def hub_reachable() -> bool:
    """Whether pretrained weights can be downloaded right now (waits for the probe: at most ~3 s)."""
    return bool(_hub().result())


def engine() -> ModuleType:
    """``core.backbones``, loaded (waits for the import when it is still running)."""
    return _engine().result()


def engine_loaded() -> bool:
    """Whether PyTorch and timm are loaded already (a page can then skip its spinner)."""
    return _engine().done()
