"""Graft's Streamlit views. Importing the package runs the router guard first (:mod:`ui.router`): a direct
link as a fresh server's first request then reaches app.py's frame before any page's slower imports."""

from ui.router import ensure_router as _ensure_router

_ensure_router()
