"""The verdict on a run, drawn the same way on every page: never green styling for a model that isn't usable."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.verdict import Verdict, judge_run
from ui.common import md_escape

__all__ = ["verdict_of", "verdict_banner", "verdict_badge", "VERDICT_STYLE"]

# level -> (badge colour, icon); only "ready" is green
VERDICT_STYLE: dict[str, tuple[str, str]] = {
    "not_usable": ("red", ":material/block:"),
    "promising": ("orange", ":material/hourglass_top:"),
    "ready": ("green", ":material/verified:"),
}


def verdict_of(run_dir: str | Path) -> Verdict | None:
    """The run's verdict with its saved targets; None while it has no held-out numbers."""
    return judge_run(run_dir)


def verdict_banner(verdict: Verdict | None) -> None:
    """One box: the verdict's title in bold and its reason; red, orange or green by level."""
    if verdict is None:
        return
    text = f"**{verdict.title}.** {md_escape(verdict.reason)}"
    icon = VERDICT_STYLE[verdict.level][1]
    if verdict.level == "ready":
        st.success(text, icon=icon)
    elif verdict.level == "promising":
        st.warning(text, icon=icon)
    else:
        st.error(text, icon=icon)


def verdict_badge(verdict: Verdict | None) -> None:
    """A small coloured badge with the verdict's title (for headings and tables)."""
    if verdict is None:
        return
    color, icon = VERDICT_STYLE[verdict.level]
    st.badge(verdict.title, color=color, icon=icon)  # type: ignore[arg-type]
