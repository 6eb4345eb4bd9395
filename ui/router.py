"""The router guard, kept free of anything slow to import so a direct link reaches app.py at once."""

from __future__ import annotations

import streamlit as st

__all__ = ["ensure_router", "mark_framed", "FRAMED_KEY"]

FRAMED_KEY = "_graft_framed"


def ensure_router() -> None:
    """Make sure the page runs inside app.py's frame.

    Until app.py has run once in a server process, Streamlit treats ``pages/`` as a legacy
    page folder, so a first request straight to ``/evaluate`` runs the page bare. Leave that
    mode and, in a session app.py hasn't framed yet, rerun: app.py's ``st.navigation`` then
    opens the same page in the frame. (A framed session never reruns here, so no click is lost.)
    Call it before the page's other imports: the rerun then costs nothing.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if FRAMED_KEY not in st.session_state:
            st.rerun()


def mark_framed() -> None:
    """Called by app.py: this session has been drawn by the router."""
    st.session_state[FRAMED_KEY] = True
