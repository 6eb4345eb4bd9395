"""What the benchmark measured per strategy on real photos: the Model page quotes it, the recommendation follows it.

The numbers come from ``python -m bench`` (docs/benchmarks.md, "Transfer on real photos"): NEU steel
surfaces, 6 classes, 20 photos per class to learn from and 600 to test, the shared ImageNet
MobileNet-V2 weights, mean of 3 seeds; and MVTec bottle, ok vs defect, 120 photos to learn from.
The section prints the ``MEASURED`` literal below; paste it here when the recipes change.

Every number is scored as Graft ships models: each photo checked 8 ways (mirrored and turned,
:data:`core.config.DEFAULT_VIEWS`). Multi-task on NEU has a stand-in good class ('rolled-in_scale')
and one seed; from scratch one seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Strategy

__all__ = ["Measured", "MEASURED", "BASELINES", "PHOTOS_PER_CLASS", "FEW_PER_CLASS", "WORTH_MINUTES",
           "evidence_text",
           "best_measured"]

PHOTOS_PER_CLASS = 20
FEW_PER_CLASS = 10  # below this many photos per class, feature extraction measured as good as the rest
WORTH_MINUTES = 1.0  # accuracy points a slower strategy must gain over feature extraction to be recommended


@dataclass(frozen=True)
class Measured:
    """One strategy's result: NEU accuracy (0-1), seconds per training run, bottle accuracy (0-1)."""

    accuracy: float
    seconds: float
    bottle: float | None = None


# {strategy: (NEU 20/class accuracy, seconds per fit, bottle accuracy)}, from docs/benchmarks.md section 7
MEASURED: dict[Strategy, Measured] = {strategy: Measured(*values) for strategy, values in {
    Strategy.FEATURE_EXTRACTION: (0.991, 28, 1.000),
    Strategy.FINE_TUNE: (0.994, 159, 1.000),
    Strategy.PROGRESSIVE: (0.996, 125, None),
    Strategy.MULTI_TASK: (0.992, 142, 0.994),
    Strategy.SCRATCH: (0.898, 401, None),
}.items()}

# The plain baselines beside them (NEU 20/class accuracy)
BASELINES: dict[str, float] = {"linear probe": 0.974, "plain fine-tune script": 0.974, "plain script from scratch": 0.672}


def best_measured() -> Strategy:
    """The transfer strategy with the best measured accuracy."""
    return max((s for s in MEASURED if s != Strategy.SCRATCH), key=lambda s: MEASURED[s].accuracy)


def evidence_text(strategy: Strategy) -> str:
    """One plain sentence with the measured numbers, for the strategy's card."""
    m = MEASURED.get(strategy)
    if m is None:
        return ""
    minutes = m.seconds / 60
    took = f"{m.seconds:.0f} s" if m.seconds < 90 else f"{minutes:.0f} min"
    bottle = f"; {m.bottle:.0%} on bottles (ok or defect)" if m.bottle is not None else ""
    return (f"Measured on real steel-surface photos ({PHOTOS_PER_CLASS} per class to learn from): "
            f"{m.accuracy:.1%} correct{bottle}; training took {took} on a 2-core laptop.")
