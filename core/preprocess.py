"""How a photo becomes the model's input: the one definition training, prediction, heatmaps and export share.

:func:`model_pixels` decodes (safely, EXIF-upright, any mode to 8-bit RGB, 16-bit photos on the
dataset's own scale) and resizes; :func:`model_input` normalises a batch. The decode cache used in
training, :class:`core.predict.Predictor`, Grad-CAM and the ONNX bundle's snippet all follow these
steps, and ``model.json`` records every setting (:meth:`Preprocessing.to_json`) and says them in
words (:meth:`Preprocessing.describe`).

Resize methods:

* ``squash``: the whole photo is stretched to ``size`` x ``size`` (no crop; shapes are distorted when
  the photo isn't square, the same way in training and in production);
* ``pad``: the longer side is scaled to ``size`` keeping the shape, and the rest is filled with the
  normalisation mean (which becomes 0 after normalising).

Both resample with Pillow's bilinear filter (``reducing_gap=3.0``: a fast box reduction first), after
JPEGs were decoded at the smallest DCT scale that still covers ``size`` x ``size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from PIL import Image

from .images import ImageSource, open_rgb

if TYPE_CHECKING:
    import torch

__all__ = ["Preprocessing", "model_pixels", "model_input", "choose_resize", "choose_bit_depth", "pad_colour_for",
           "RESIZE_METHODS", "ASPECT_SPREAD_FOR_PAD", "BIT_DEPTHS"]

RESIZE_METHODS = ("squash", "pad")
ASPECT_SPREAD_FOR_PAD = 1.15  # widest / narrowest aspect ratio above which squashing distorts photos unequally
BIT_DEPTHS = (8, 10, 12, 14, 16)  # scales Graft picks from for photos stored in 16-bit files
_REDUCING_GAP = 3.0
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Every setting of the photo -> input path (see the module docstring)."""

    size: int
    resize: str = "squash"
    bit_depth: int | None = None  # None: 16-bit photos are read as full 16-bit (65535 -> 255)
    pad_colour: tuple[int, int, int] = (0, 0, 0)  # RGB fill of the padded area ("pad" only)
    mean: tuple[float, ...] = _IMAGENET_MEAN
    std: tuple[float, ...] = _IMAGENET_STD
    interpolation: str = "bilinear"  # the resampling actually used

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {RESIZE_METHODS}, got {self.resize!r}")
        if self.bit_depth is not None and self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"bit_depth must be one of {BIT_DEPTHS}, got {self.bit_depth!r}")

    @property
    def scale_max(self) -> int:
        """The raw value that becomes 255 in a 16-bit photo."""
        return 2 ** (self.bit_depth or 16) - 1

    def cache_tag(self) -> str:
        """What distinguishes the decoded pixels (not the normalisation): part of the decode cache key."""
        if self.resize == "squash" and self.bit_depth is None:
            return ""  # Graft's original preprocessing keeps its cache key
        return f"|{self.resize}|{self.bit_depth}|{','.join(map(str, self.pad_colour))}"

    def to_json(self) -> dict[str, Any]:
        """The settings as ``model.json`` and the ONNX metadata hold them."""
        return {"image_size": self.size, "resize": self.resize, "interpolation": self.interpolation,
                "bit_depth": self.bit_depth, "pad_colour": list(self.pad_colour), "mean": list(self.mean),
                "std": list(self.std)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Preprocessing":
        """Read :meth:`to_json` (older model.json files have no resize, bit depth or pad colour: squash)."""
        pad = d.get("pad_colour") or (0, 0, 0)
        return cls(size=int(d["image_size"]), resize=str(d.get("resize") or "squash"),
                   bit_depth=None if d.get("bit_depth") is None else int(d["bit_depth"]),
                   pad_colour=tuple(int(v) for v in pad), mean=tuple(float(v) for v in d["mean"]),
                   std=tuple(float(v) for v in d["std"]))

    def describe(self) -> str:
        """The steps in words, exact enough to reimplement (``model.json`` and the ONNX metadata say this)."""
        geometry = (f"the whole photo squashed (no crop) to {self.size}x{self.size}" if self.resize == "squash" else
                    f"the longer side scaled to {self.size} keeping the shape (new side = round(side * "
                    f"{self.size} / longer side)), centred on a {self.size}x{self.size} canvas filled with RGB "
                    f"{tuple(self.pad_colour)} (offsets (size - side) // 2)")
        bits = (f"16-bit values scaled by 255 / {self.scale_max} (a {self.bit_depth or 16}-bit scale, values above "
                f"it clipped, rounded to nearest: (v * 510 + {self.scale_max}) // {2 * self.scale_max})")
        return (f"decode the first frame, turn it upright by its EXIF orientation, convert to 8-bit RGB ({bits}; "
                "transparent areas composited on white); JPEGs decoded at the smallest scale covering "
                f"{self.size}x{self.size}; then {geometry} with Pillow's {self.interpolation} resampling "
                f"(reducing_gap={_REDUCING_GAP}); then divide by 255 and apply (x - mean) / std per channel, "
                "as a float32 NCHW batch")


def model_pixels(source: ImageSource, prep: Preprocessing, *, max_pixels: int | None = None) -> np.ndarray:
    """The photo as the model sees it, before normalisation: ``uint8`` (size, size, 3).

    Args:
        source: a path, the file's bytes, a binary stream or a PIL image.
        prep: the settings (a model's ``spec.preprocessing``).
        max_pixels: pixel limit for this call; default :func:`core.images.max_pixels`.

    Raises:
        UnreadableImage: the photo can't be decoded.
    """
    size = prep.size
    image = open_rgb(source, max_pixels=max_pixels, draft=(size, size), bit_depth=prep.bit_depth)
    if prep.resize == "squash":
        return np.array(image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP),
                        dtype=np.uint8)
    return np.array(_pad_to_square(image, size, prep.pad_colour), dtype=np.uint8)


def _pad_to_square(image: Image.Image, size: int, colour: tuple[int, int, int]) -> Image.Image:
    width, height = image.size
    longer = max(width, height)
    new = (max(1, round(width * size / longer)), max(1, round(height * size / longer)))
    resized = image.resize(new, Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP)
    canvas = Image.new("RGB", (size, size), tuple(colour))
    canvas.paste(resized, ((size - new[0]) // 2, (size - new[1]) // 2))
    return canvas


def model_input(pixels: np.ndarray, prep: Preprocessing, device: Any = "cpu") -> "torch.Tensor":
    """A uint8 (N, S, S, 3) batch from :func:`model_pixels` -> the normalised float NCHW input."""
    import torch

    from .augment import to_model_input  # the normalisation training uses on its decoded batches

    mean = torch.tensor(prep.mean, device=device)
    std = torch.tensor(prep.std, device=device)
    return to_model_input(torch.from_numpy(np.ascontiguousarray(pixels)).to(device), mean, std)


def pad_colour_for(mean: Sequence[float]) -> tuple[int, int, int]:
    """The RGB colour that normalises to (about) zero: the padded area then carries no signal."""
    return tuple(int(round(float(m) * 255)) for m in mean)[:3]  # type: ignore[return-value]


def choose_resize(aspect_min: float | None, aspect_max: float | None) -> str:
    """``pad`` when the photos' aspect ratios (width / height) differ by more than 15%, else ``squash``.

    Squashing photos of one shape distorts them all alike, which a model learns; squashing photos of
    different shapes distorts a scratch differently on each, so then padding keeps shapes true.
    """
    if not aspect_min or not aspect_max:
        return "squash"
    return "pad" if aspect_max / aspect_min > ASPECT_SPREAD_FOR_PAD else "squash"


def choose_bit_depth(max_value: int | None) -> int | None:
    """The smallest standard bit depth whose scale holds a dataset's largest 16-bit pixel value.

    One scale per dataset, so photos keep their relative brightness (a dark 12-bit photo stays darker
    than a bright one). None when the dataset has no 16-bit photos.
    """
    if max_value is None:
        return None
    return next((b for b in BIT_DEPTHS if max_value <= 2 ** b - 1), 16)
