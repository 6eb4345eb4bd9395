"""The model's decision threshold: saving a new one (in ``decision.json``; the held-out figures stay)."""

from __future__ import annotations

from pathlib import Path

from .decision import save_decision

__all__ = ["save_threshold"]


def save_threshold(run_dir: str | Path, threshold: float, chosen_on: str = "set by hand") -> float:
    """Store a new decision threshold in the run's model package (``model/decision.json``), atomically.

    The threshold training chose stays in the decision file (``threshold_from_training``), and
    ``metrics.json`` keeps the held-out figures measured at it: a threshold picked by looking at the
    test photos must not rewrite the numbers those photos gave.

    Args:
        run_dir: the run folder (or its ``model/`` folder).
        threshold: the defect score at which a part is flagged, between 0 and 1.
        chosen_on: where it was chosen (``validation``, ``out-of-fold``, ``test`` or ``set by hand``),
            so views can label figures on the same photos as optimistic.

    Returns:
        The threshold as stored.

    Raises:
        GraftError: no finished model, no good class, or a threshold outside 0..1.
    """
    return save_decision(run_dir, threshold=threshold, chosen_on=chosen_on).threshold
