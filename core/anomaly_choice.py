"""When to suggest good-parts-only (anomaly detection) mode: few or no defect photos. No torch here (pages use it)."""

from __future__ import annotations

from typing import Mapping

__all__ = ["recommend_anomaly", "FEW_DEFECT_PHOTOS"]

FEW_DEFECT_PHOTOS = 10  # below this many photos of a defect type, a classifier can't learn that type reliably


def recommend_anomaly(counts: Mapping[str, int], good_class: str | None) -> str | None:
    """Why good-parts-only mode suits this dataset, in one plain sentence; None when a classifier suits it better.

    Args:
        counts: photos per class.
        good_class: the class of good parts (None: the mode can't be used, nothing is suggested).
    """
    if not good_class or counts.get(good_class, 0) < 2:
        return None
    defects = {c: n for c, n in counts.items() if c != good_class and n > 0}
    if not defects:
        return (f"There are only photos of good parts ('{good_class}'): good-parts-only mode learns what they look "
                "like and flags anything different, without a single defect photo.")
    few = sorted(c for c, n in defects.items() if n < FEW_DEFECT_PHOTOS)
    if not few:
        return None
    names = ", ".join(f"'{c}' ({defects[c]})" for c in few)
    return (f"Some defect types have fewer than {FEW_DEFECT_PHOTOS} photos ({names}): good-parts-only mode learns "
            "from the good parts alone and also flags defects nobody photographed.")
