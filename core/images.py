"""Safe image decoding: the only way Graft turns a file into pixels.

Training and prediction both go through :func:`open_rgb` (or :func:`load_resized`),
so an image looks the same to the model in both. Untrusted files are handled as:

* the format is detected by content, never by extension, and only
  JPEG/MPO, PNG, BMP, TIFF, WebP and GIF are decoded;
* the pixel count is checked from the header before any pixel is decoded, and
  Pillow's own decompression-bomb warning is raised as an error, so a bomb is
  refused with bounded memory;
* every decoder error becomes :class:`UnreadableImage` with a plain reason.

Colour conversion decisions (all images end up 8-bit RGB):

* alpha (LA, PA, RGBA, palette or colour-key transparency) is composited on white;
* 16-bit (I;16*) is scaled by 255 / (2**bit_depth - 1), rounded to nearest, so a 12-bit photo stored
  in a 16-bit file keeps its contrast with ``bit_depth=12`` (values above the scale are clipped); the
  default ``bit_depth`` of 16 maps 65535 -> 255 and 32768 -> 128;
* 32-bit integer (I) is scaled like 16-bit when it lies in 0..65535, else min-max stretched;
* float (F) is taken as 0..1 intensity when it lies in 0..1, else min-max stretched
  (NaN and infinities count as 0);
* CMYK, YCbCr, LAB, HSV, 1-bit and 48-bit RGB TIFF use Pillow's own conversion.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

from core.errors import GraftError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "UnreadableImage",
    "max_pixels",
    "is_junk_name",
    "has_image_extension",
    "open_rgb",
    "load_resized",
    "content_hash",
    "high_bit_max",
    "HIGH_BIT_MODES",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
)
# Fixed order so format detection is deterministic (Pillow tries them in turn).
# MPO (multi-picture JPEG) has no opener of its own: Pillow's JPEG opener returns it.
_OPEN_ORDER: tuple[str, ...] = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF")
ALLOWED_FORMATS: frozenset[str] = frozenset({*_OPEN_ORDER, "MPO"})
DEFAULT_MAX_PIXELS: int = 40_000_000
_ENV_MAX_PIXELS = "GRAFT_MAX_IMAGE_PIXELS"

_JUNK_BASENAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
# Every exception type Pillow's parsers and decoders raise on bad input.
_PIL_ERRORS: tuple[type[BaseException], ...] = (
    OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError, KeyError,
)
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_NOT_IMAGE = "it is not an image"
_DAMAGED = "the file is truncated or damaged"
_USE_INSTEAD = "use JPEG, PNG, BMP, TIFF or WebP"
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
HIGH_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})  # more than 8 bits per pixel
_WHITE = (255, 255, 255)
# Formats Pillow cannot name but people upload by mistake (magic bytes at offset 0).
_SNIFF_PREFIXES = ((b"%!PS", "EPS"), (b"%PDF", "PDF"))
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"mif1", b"msf1"})
_TOO_LARGE_HINT = f"Downscale it, or raise {_ENV_MAX_PIXELS} if this machine has the memory."

ImageSource = Union[str, Path, bytes, BinaryIO, Image.Image]


class UnreadableImage(GraftError):
    """An image file Graft refuses to decode; ``reason`` says why in plain words.

    Attributes:
        reason: e.g. ``"the file is truncated or damaged"``.
        name: the file's base name, or ``None`` when decoding bytes or an image.
    """

    def __init__(self, reason: str, *, name: str | None = None, hint: str = "") -> None:
        self.reason = reason
        self.name = name
        super().__init__(f"{name or 'The image'} can't be read: {reason}.", hint=hint)


class _Refused(Exception):
    """Internal: a reason to refuse, turned into UnreadableImage (with the name) by the guard."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def max_pixels() -> int:
    """Return the pixel limit per image, from ``GRAFT_MAX_IMAGE_PIXELS`` or the default.

    Read at call time so a changed environment takes effect at once. Values above
    Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 89.5 million) are capped
    to it, since Pillow refuses such images anyway.

    Raises:
        GraftError: the variable is set but is not a positive whole number.
    """
    raw = os.environ.get(_ENV_MAX_PIXELS, "").strip()
    if not raw:
        return _clamp(DEFAULT_MAX_PIXELS)
    try:
        value = int(raw.replace(",", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise GraftError(
            f"{_ENV_MAX_PIXELS} must be a positive whole number, not {raw!r}.",
            hint=f"Unset it to use the default of {DEFAULT_MAX_PIXELS:,} pixels.",
        )
    return _clamp(value)


def _clamp(limit: int) -> int:
    pil_limit = Image.MAX_IMAGE_PIXELS
    return limit if pil_limit is None else min(limit, int(pil_limit))


def is_junk_name(name: str) -> bool:
    """Tell whether a file name is operating-system clutter, not user data.

    Args:
        name: a base name or a relative path; ``/`` and ``\\`` both separate parts.

    Returns:
        True for anything inside ``__MACOSX/``, AppleDouble files (``._*``),
        ``.DS_Store``, ``Thumbs.db`` and ``desktop.ini``.
    """
    parts = [p for p in re.split(r"[\\/]", name) if p]
    if not parts:
        return False
    if any(p == "__MACOSX" for p in parts):
        return True
    base = parts[-1]
    return base.startswith("._") or base.lower() in _JUNK_BASENAMES


def has_image_extension(path: str | Path) -> bool:
    """Tell whether a file name looks like an image Graft can read (for listing folders).

    Only the name is checked; :func:`open_rgb` still checks the content.

    Args:
        path: a file name or path.

    Returns:
        True when the extension is in ``IMAGE_EXTENSIONS`` and the name is not junk.
    """
    name = str(path)
    if is_junk_name(name):
        return False
    return Path(name.replace("\\", "/")).suffix.lower() in IMAGE_EXTENSIONS


def open_rgb(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    draft: tuple[int, int] | None = None,
    bit_depth: int | None = None,
) -> Image.Image:
    """Decode an untrusted image into an 8-bit RGB ``PIL.Image`` (first frame, EXIF-upright).

    Args:
        source: a path, the file's bytes, a binary stream (its ``name`` attribute, e.g. of a
            Streamlit upload, is used in messages) or an already opened ``PIL.Image``.
        max_pixels: pixel limit for this call; default :func:`max_pixels`.
        draft: for JPEG, a size hint: decode at the smallest DCT scale that is still at
            least this big (much faster for large photos).
        bit_depth: the scale of 16-bit photos (e.g. 12 for 12-bit data in 16-bit files);
            default 16. 8-bit photos are not affected.

    Returns:
        A new RGB image that does not depend on the source.

    Raises:
        UnreadableImage: not an allowed format, empty, truncated, damaged or too large.
    """
    limit = _limit(max_pixels)
    name = _source_name(source)
    with _decode_guard(name, limit):
        if isinstance(source, Image.Image):
            _check_size(source.size, limit)
            return _finish(source, bit_depth)
        with _open_stream(source) as fp, _open_allowed(fp) as im:
            _check_size(im.size, limit)  # header only: nothing decoded yet
            if draft is not None and isinstance(im, JpegImagePlugin.JpegImageFile):
                im.draft("RGB", draft)
            im.load()
            return _finish(im, bit_depth)


def load_resized(source: ImageSource, size: int, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image and squash the whole of it to ``size`` x ``size`` (Graft's default preprocessing).

    No crop, so a defect at the edge survives. A shortcut for :func:`core.preprocess.model_pixels`
    with ``Preprocessing(size)``; training and prediction both go through that function.

    Args:
        source: anything :func:`open_rgb` accepts.
        size: output side length in pixels.
        max_pixels: pixel limit for this call; default :func:`max_pixels`.

    Returns:
        A writable ``uint8`` array of shape ``(size, size, 3)``.

    Raises:
        UnreadableImage: as :func:`open_rgb`.
        ValueError: ``size`` is not positive.
    """
    from .preprocess import Preprocessing, model_pixels  # preprocess builds on this module

    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return model_pixels(source, Preprocessing(size), max_pixels=max_pixels)


def high_bit_max(image: Image.Image) -> int | None:
    """The largest pixel value of a 16-bit (or 32-bit integer) image, else None (8-bit and float images)."""
    if image.mode not in HIGH_BIT_MODES:
        return None
    values = np.asarray(image)
    return int(values.max()) if values.size else 0


def content_hash(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --- opening ---------------------------------------------------------------------------


def _limit(override: int | None) -> int:
    if override is None:
        return max_pixels()
    if override <= 0:
        raise ValueError(f"max_pixels must be positive, got {override}")
    return _clamp(override)


def _source_name(source: object) -> str | None:
    if isinstance(source, (str, Path)):
        return Path(source).name
    name = getattr(source, "name", None)  # open files and Streamlit uploads have one
    if not isinstance(name, str):
        return None
    # Basename only: a full path could reveal the server's folder layout.
    return os.path.basename(name.replace("\\", "/")) or None


@contextmanager
def _decode_guard(name: str | None, limit: int) -> Iterator[None]:
    """Turn every decoding failure into UnreadableImage naming the file."""
    with warnings.catch_warnings():
        # Local filter, no global Pillow setting. catch_warnings is not thread-safe, but
        # our header check is the real guard and Pillow still hard-fails at twice its
        # limit, so a race between decoding threads can't let a bomb through.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except _Refused as exc:
            raise UnreadableImage(exc.reason, name=name, hint=exc.hint) from None
        except _BOMB_ERRORS as exc:
            reason = _bomb_reason(str(exc), limit)
            raise UnreadableImage(reason, name=name, hint=_TOO_LARGE_HINT) from None
        except FileNotFoundError:
            raise UnreadableImage("the file was not found", name=name) from None
        except IsADirectoryError:
            raise UnreadableImage("it is a folder, not a file", name=name) from None
        except PermissionError:
            raise UnreadableImage("permission to read it was denied", name=name) from None
        except _PIL_ERRORS as exc:
            raise UnreadableImage(
                _DAMAGED, name=name, hint="Copy or export the file again."
            ) from exc


@contextmanager
def _open_stream(source: str | Path | bytes | BinaryIO) -> Iterator[BinaryIO]:
    """Yield a seekable binary stream at offset 0; refuse empty input."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as fh:
            _refuse_if_empty(os.fstat(fh.fileno()).st_size)
            yield fh
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        stream: BinaryIO = io.BytesIO(bytes(source))
    elif getattr(source, "seekable", lambda: False)():
        stream = source
    else:
        stream = io.BytesIO(source.read())
    stream.seek(0, io.SEEK_END)
    _refuse_if_empty(stream.tell())
    stream.seek(0)
    yield stream  # a caller's stream is left open


def _refuse_if_empty(size: int) -> None:
    if size == 0:
        raise _Refused("the file is empty")


@contextmanager
def _open_allowed(fp: BinaryIO) -> Iterator[Image.Image]:
    """Open by content, allowed formats only; name the format when it is not allowed."""
    Image.init()
    # Pillow raises KeyError for a format it has no opener for (e.g. built without WebP).
    formats = tuple(fmt for fmt in _OPEN_ORDER if fmt in Image.OPEN)
    try:
        image = Image.open(fp, formats=formats)
    except Image.UnidentifiedImageError:
        raise _Refused(_unsupported_reason(fp)) from None
    with image:
        if image.format not in ALLOWED_FORMATS:  # defensive: never decode anything else
            raise _Refused(f"format {image.format} is not supported; {_USE_INSTEAD}")
        yield image


def _unsupported_reason(fp: BinaryIO) -> str:
    fmt = _sniff(fp) or _identify(fp)
    if fmt:
        return f"format {fmt} is not supported; {_USE_INSTEAD}"
    return _NOT_IMAGE


def _sniff(fp: BinaryIO) -> str | None:
    fp.seek(0)
    head = fp.read(16)
    for prefix, fmt in _SNIFF_PREFIXES:
        if head.startswith(prefix):
            return fmt
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIC"
    return None


def _identify(fp: BinaryIO) -> str | None:
    """Name a format Pillow knows but Graft refuses; header parse only, never decoded."""
    Image.init()
    # Formats without magic bytes (TGA, ...) would "recognise" random bytes.
    candidates = tuple(
        fmt for fmt, (_, accept) in Image.OPEN.items()
        if accept is not None and fmt not in ALLOWED_FORMATS
    )
    try:
        fp.seek(0)
        with Image.open(fp, formats=candidates) as image:
            return image.format
    except (*_PIL_ERRORS, *_BOMB_ERRORS):
        return None


# --- size limit ------------------------------------------------------------------------


def _check_size(size: tuple[int, int], limit: int) -> None:
    width, height = size
    if width * height > limit:
        raise _Refused(
            f"it is too large ({width}×{height} pixels); the limit is {limit:,} pixels",
            _TOO_LARGE_HINT,
        )


def _bomb_reason(pillow_message: str, limit: int) -> str:
    """Reason for an image Pillow itself refused at open (its message gives the pixel count)."""
    match = re.search(r"\((\d+) pixels\)", pillow_message)
    count = f" ({int(match.group(1)):,} pixels)" if match else ""
    return f"it is too large{count}; the limit is {limit:,} pixels"


# --- conversion to RGB -----------------------------------------------------------------


def _finish(image: Image.Image, bit_depth: int | None = None) -> Image.Image:
    """Apply EXIF orientation and convert to RGB; returns a new image."""
    return _to_rgb(_exif_upright(image), _scale_max(bit_depth))


def _scale_max(bit_depth: int | None) -> int:
    if bit_depth is None:
        return 65535
    if not 8 <= int(bit_depth) <= 16:
        raise ValueError(f"bit_depth must be between 8 and 16, got {bit_depth}")
    return 2 ** int(bit_depth) - 1


def _exif_upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)  # always a new image (in_place=False)
    except _PIL_ERRORS:
        return image.copy()  # broken EXIF must not make decodable pixels unusable


def _to_rgb(image: Image.Image, scale_max: int = 65535) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16"):
        return _gray_to_rgb(_scale_high(np.asarray(image), scale_max))
    if mode == "I":
        return _gray_to_rgb(_scale_int32(np.asarray(image), scale_max))
    if mode == "F":
        return _gray_to_rgb(_scale_float(np.asarray(image)))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _on_white(image)
    try:
        return image.convert("RGB")
    except ValueError:
        raise _Refused(f"colour mode {mode} is not supported; {_USE_INSTEAD}") from None


def _on_white(image: Image.Image) -> Image.Image:
    if image.mode == "La":  # premultiplied; Pillow only converts it via LA
        image = image.convert("LA")
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(gray).convert("RGB")


def _scale_high(values: np.ndarray, scale_max: int = 65535) -> np.ndarray:
    """0..scale_max -> 0..255, rounded to nearest in integers (exact, so any copy of it agrees)."""
    clipped = np.minimum(values.astype(np.int64), scale_max).clip(0)
    return ((clipped * 510 + scale_max) // (2 * scale_max)).astype(np.uint8)


def _scale_int32(values: np.ndarray, scale_max: int = 65535) -> np.ndarray:
    if values.size and values.min() >= 0 and values.max() <= 65535:
        return _scale_high(values, scale_max)
    return _stretch(values.astype(np.float64))


def _scale_float(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        return np.round(values * 255.0).astype(np.uint8)
    return _stretch(values)


def _stretch(values: np.ndarray) -> np.ndarray:
    """Min-max stretch to 0..255; a flat image becomes black."""
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)
