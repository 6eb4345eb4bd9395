"""The one exception type whose message is meant for the user."""

from __future__ import annotations

__all__ = ["GraftError"]


class GraftError(Exception):
    """A problem the user can fix. The message is one plain sentence (or two).

    The CLI prints it to stderr and exits 2; the app shows it with ``st.error``.
    Any other exception is a bug in Graft.
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}".strip())
