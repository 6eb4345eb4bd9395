"""Advice drawn the same way everywhere: "What to try next" on Evaluate and the offline ways on Model
(both from :mod:`core.advice`, so the words live in one place)."""

from __future__ import annotations

import streamlit as st

from core.advice import Advice
from ui.common import md_escape

__all__ = ["advice_markdown", "render_advice"]

_STYLE = {"problem": (st.error, ":material/error:"), "warning": (st.warning, ":material/warning:"),
          "tip": (st.info, ":material/lightbulb:"), "good": (st.success, ":material/thumb_up:")}


def advice_markdown(advice: Advice, inline: bool = False) -> str:
    """One piece of advice as markdown: the title in bold, the words, and its command as code to copy.

    Args:
        advice: what to say.
        inline: title and words in one sentence (a list item) instead of the title on its own line.
    """
    title, detail = md_escape(advice.title), md_escape(advice.detail)
    text = f"**{title}.** {detail}" if inline else f"**{title}**  \n{detail}"
    return text + (f"  \n  `{advice.command}`" if advice.command else "")


def render_advice(advice: list[Advice]) -> None:
    """Each piece of advice in a box coloured by its level (problem red, warning orange, tip blue, good green)."""
    for item in advice:
        show, icon = _STYLE.get(item.level, (st.info, ":material/lightbulb:"))
        show(advice_markdown(item), icon=icon)
