"""Graft's view helpers: shared by every page (``ui.common``) and its charts (``ui.charts``)."""
