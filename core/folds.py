"""How many folds a run uses by default, and what folds cost in time: plain numbers, free of torch.

``core.crossval`` (which trains the folds) re-exports these, so the Model page can show the choice
and its cost without loading PyTorch.
"""

from __future__ import annotations

__all__ = ["CV_MAX_PHOTOS", "DEFAULT_FOLDS", "default_folds", "relative_cost"]

CV_MAX_PHOTOS, DEFAULT_FOLDS = 300, 5


def default_folds(n_photos: int) -> int:
    """5 folds for 300 photos or fewer (a single split leaves too few to choose on), else one split."""
    return DEFAULT_FOLDS if n_photos <= CV_MAX_PHOTOS else 1


def relative_cost(folds: int, strategy: str, val_fraction: float = 0.15, test_fraction: float = 0.15) -> float:
    """About how many times one split's training time a run with ``folds`` folds takes (for a time estimate).

    One split trains on ``1 - val - test`` of the photos. A K-fold run trains K models on
    ``(K-1)/K * (1 - val)`` of them and a final one on all. Feature extraction computes the features
    once and fits only small heads, so there the folds add little (the decode and the features dominate).
    """
    if folds < 2:
        return 1.0
    if strategy == "feature-extraction":
        return 1.0 + 0.1 * folds
    single = max(1e-6, 1.0 - val_fraction - test_fraction)
    return ((folds - 1) * (1.0 - val_fraction) + 1.0) / single
