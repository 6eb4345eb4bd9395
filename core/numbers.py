"""Numbers as people read them: percentages, ranges and scores that never contradict each other.

One place decides how Graft rounds, so the report, the CLI and the pages can't show "0.52 is below
0.520" or "100%" for 199 of 200: a value strictly between 0 and 1 never reads as 0% or 100%, and a
score compared with a threshold gets as many decimals as it takes to see which side it is on.
"""

from __future__ import annotations

import math

__all__ = ["fmt_pct", "fmt_range", "fmt_score", "fmt_against", "DASH"]

DASH = "–"  # shown where there is nothing to count (e.g. a class with no photos)
_MAX_EXTRA_DIGITS = 2


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_pct(value: float | None, digits: int = 0) -> str:
    """``0.934`` -> ``"93%"``; None or NaN -> ``"–"``.

    A value strictly between 0 and 1 is never shown as ``0%`` or ``100%``: it gets up to two more
    decimals (``0.998`` -> ``"99.8%"``), then ``"<0.01%"`` / ``">99.99%"``.

    Args:
        value: a share between 0 and 1.
        digits: decimals of the percentage.
    """
    if _missing(value):
        return DASH
    value = float(value)
    for extra in range(_MAX_EXTRA_DIGITS + 1):
        d = digits + extra
        text = f"{value * 100:.{d}f}"
        if not (0.0 < value < 1.0) or float(text) not in (0.0, 100.0):
            return f"{text}%"
    edge = 10.0 ** -(digits + _MAX_EXTRA_DIGITS)
    return f"<{edge:g}%" if value < 0.5 else f">{100 - edge:g}%"


def fmt_range(low: float | None, high: float | None, digits: int = 0) -> str:
    """``(0.21, 0.94)`` -> ``"21%–94%"``; an empty string when there is no range."""
    if _missing(low) or _missing(high):
        return ""
    return f"{fmt_pct(low, digits)}–{fmt_pct(high, digits)}"


def fmt_score(value: float | None, digits: int = 3) -> str:
    """A score or threshold between 0 and 1 with fixed decimals (``0.4375`` -> ``"0.438"``)."""
    if _missing(value):
        return DASH
    return f"{float(value):.{digits}f}"


def fmt_against(value: float, threshold: float, digits: int = 2, max_digits: int = 10) -> tuple[str, str]:
    """A score and the threshold it is compared with, rounded alike and far enough apart to tell.

    ``fmt_against(0.5196, 0.52)`` gives ``("0.5196", "0.5200")``, never ``("0.52", "0.520")``.

    Args:
        value: e.g. a photo's defect score.
        threshold: the threshold it is compared with.
        digits: the fewest decimals to use.
        max_digits: the most decimals to use (equal numbers stay equal).

    Returns:
        ``(value text, threshold text)`` with the same number of decimals.
    """
    d = digits
    while d < max_digits and f"{value:.{d}f}" == f"{threshold:.{d}f}" and value != threshold:
        d += 1
    return f"{value:.{d}f}", f"{threshold:.{d}f}"
