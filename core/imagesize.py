"""The training image size: a default from the photos and the backbone, how much detail it costs, and its time.

Photos are squashed to a square of ``image_size`` pixels. Larger keeps finer defects but training
time grows with the pixel count (about the square of the side).
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["choose_image_size", "photo_side", "shrink_factor", "shrink_warning", "relative_cost",
           "larger_sizes", "SHRINK_WARN", "STEP", "MAX_AUTO"]

SHRINK_WARN = 4.0  # photos shrunk more than this lose small defects
STEP = 32  # CNN trunks downsample by 32: sizes on this grid waste no border pixels
MAX_AUTO = 320  # the largest size chosen without asking: about twice the training time of 224 px
SIZES = (64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512)


def photo_side(sizes: Mapping[str, float] | None) -> float | None:
    """The typical photo's shorter side (from a check report's ``sizes``), or None when unknown."""
    if not sizes or not sizes.get("median_width") or not sizes.get("median_height"):
        return None
    return float(min(sizes["median_width"], sizes["median_height"]))


def choose_image_size(sizes: Mapping[str, float] | None, native: int = 224) -> int:
    """The default size: the backbone's native size, raised for large photos so they shrink about 4× at most.

    Pretrained features work best at the scale they were trained at, so smaller photos are enlarged
    to the native size (measured on 200 px NEU photos with MobileNet-V2: a linear probe scores
    96.5 / 97.0 / 97.5 / 98.0% at 160 / 192 / 224 / 256 px). Larger photos get up to
    :data:`MAX_AUTO` px (about twice the training time of 224 px), so a defect a few dozen pixels
    wide in a 5-megapixel photo still spans a few pixels; the Model page warns when photos are
    shrunk more than :data:`SHRINK_WARN` times and shows what a larger size would cost.

    Args:
        sizes: the check report's ``sizes`` (median width and height of the photos).
        native: the backbone's pretrained input size (:func:`core.backbones.native_size`).
    """
    side = photo_side(sizes)
    if side is None or side <= native * SHRINK_WARN:
        return native
    wanted = -(-int(side / SHRINK_WARN) // STEP) * STEP  # rounded up to the 32 px grid
    return max(native, min(MAX_AUTO, wanted))


def shrink_factor(sizes: Mapping[str, float] | None, image_size: int) -> float | None:
    """How many times the typical photo's shorter side is shrunk at ``image_size``."""
    side = photo_side(sizes)
    return None if side is None else side / image_size


def shrink_warning(sizes: Mapping[str, float] | None, image_size: int) -> str | None:
    """A plain sentence when photos are shrunk more than :data:`SHRINK_WARN` times, else None."""
    factor = shrink_factor(sizes, image_size)
    if factor is None or factor <= SHRINK_WARN:
        return None
    side = int(photo_side(sizes) or 0)
    return (f"Your photos (about {side} px on their short side) are shrunk {factor:.0f}× to {image_size} px: "
            "defects smaller than a few dozen pixels may vanish. A larger image size keeps them, at a cost in "
            "training time.")


def relative_cost(image_size: int, reference: int) -> float:
    """Training time at ``image_size`` relative to ``reference`` (it grows with the pixel count)."""
    return (image_size / reference) ** 2


def larger_sizes(image_size: int, sizes: Mapping[str, float] | None, n: int = 2) -> list[int]:
    """Up to ``n`` standard sizes above ``image_size`` that still don't enlarge the photos (none when unknown)."""
    side = photo_side(sizes)
    return [s for s in SIZES if s > image_size and side is not None and s <= side][:n]
