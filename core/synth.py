"""Synthetic defect photos of machined, cast, woven, wooden and painted parts.

Every image is a procedural surface (numpy, vectorised) plus at most one defect,
then lit, blurred, noised and JPEG-compressed like a cheap inspection camera.
Each image draws from three independent random streams (surface, defect,
camera), so an "ok" and a defect image rendered from the same seed differ only
where the defect is: handy for tests and for checking saliency maps.
"""

from __future__ import annotations

import colorsys
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from core.errors import GraftError

__all__ = [
    "SURFACES",
    "DEFECTS",
    "DEFAULT_CLASSES",
    "render",
    "generate",
    "make_easy_dataset",
]

SURFACES: tuple[str, ...] = ("brushed_metal", "cast_metal", "textile", "wood", "painted_plastic")
# "dent" covers dents and pits; "stain" covers stains and discoloration.
DEFECTS: tuple[str, ...] = ("scratch", "dent", "crack", "stain")
DEFAULT_CLASSES: tuple[str, ...] = ("ok", "scratch", "dent", "stain")

_LABELS: tuple[str, ...] = ("ok", *DEFECTS)  # fixed order: a label's index seeds its images
_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG"}
_JPEG_QUALITY = 85
_MIN_SIZE = 16
_REF = 224.0  # pixel constants below are tuned at 224 px and scaled by size / _REF

Array = np.ndarray


class _Style(NamedTuple):
    """Gains applied to defects and camera; the easy dataset turns them up."""

    size_gain: float = 1.0
    width_gain: float = 1.0
    contrast_gain: float = 1.0
    noise_gain: float = 1.0
    bold: bool = False  # always the most visible polarity (bright scratch, dark stain)


_NORMAL = _Style()
_EASY = _Style(size_gain=1.5, width_gain=3.0, contrast_gain=1.6, noise_gain=0.5, bold=True)


# --------------------------------------------------------------------------- validation


def _check_label(label: str) -> None:
    if label not in _LABELS:
        raise GraftError(f"Unknown class '{label}'.", hint=f"Use one of: {', '.join(_LABELS)}.")


def _check_surface(surface: str) -> None:
    if surface not in SURFACES:
        raise GraftError(f"Unknown surface '{surface}'.", hint=f"Use one of: {', '.join(SURFACES)}.")


def _check_size(size: int) -> None:
    if int(size) < _MIN_SIZE:
        raise GraftError(f"Image size {size} px is too small.", hint=f"Use at least {_MIN_SIZE} px.")


# --------------------------------------------------------------------------- numpy helpers


def _grid(size: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates (x, y) relative to the image centre."""
    ax = np.arange(size, dtype=np.float32) - (size - 1) / 2.0
    return ax[None, :].repeat(size, 0), ax[:, None].repeat(size, 1)


def _resize(a: Array, size: int) -> Array:
    """Bicubic resize of a 2-D float array to size x size (Pillow 'F' mode keeps float precision)."""
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F")
    return np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.float32)


def _standardise(a: Array) -> Array:
    return (a - a.mean()) / (a.std() + 1e-6)


def _noise(rng: np.random.Generator, size: int, rows: int, cols: int | None = None) -> Array:
    """Smooth value noise: a small random grid upsampled; unit std."""
    grid = rng.standard_normal((max(rows, 2), max(cols or rows, 2)))
    return _standardise(_resize(grid, size))


def _fractal(rng: np.random.Generator, size: int, cells: int, octaves: int = 4) -> Array:
    """Sum of noise octaves (each twice as fine, half as strong); unit std."""
    out = np.zeros((size, size), np.float32)
    for k in range(octaves):
        out += _noise(rng, size, min(cells * 2**k, size)) * 0.5**k
    return _standardise(out)


def _blur(a: Array, sigma: float) -> Array:
    """Separable Gaussian blur over the first two axes (no scipy needed)."""
    if sigma < 0.25:
        return a
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    for axis in (0, 1):
        pad = [(0, 0)] * a.ndim
        pad[axis] = (r, r)
        p = np.pad(a, pad, mode="edge")
        n = a.shape[axis]
        a = sum(w * np.take(p, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return a.astype(np.float32)


def _rotate_crop(a: Array, angle: float, size: int) -> Array:
    """Rotate a larger square texture by ``angle`` degrees and crop the centre."""
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F").rotate(angle, Image.BILINEAR)
    off = (a.shape[0] - size) // 2
    return np.asarray(img, dtype=np.float32)[off : off + size, off : off + size]


def _smoothstep(e0: float, e1: float, x: Array) -> Array:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _shift(a: Array, dy: int, dx: int) -> Array:
    return np.roll(np.roll(a, dy, axis=0), dx, axis=1)


def _polyline_mask(size: int, strokes: Sequence[tuple[Array, float]], ss: int = 4) -> Array:
    """Anti-aliased mask of polylines ``(points (n, 2) in px, width px)``, drawn at ``ss``x."""
    canvas = Image.new("L", (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(canvas)
    for pts, width in strokes:
        xy = [tuple(p) for p in (np.asarray(pts) * ss + ss / 2.0).tolist()]
        draw.line(xy, fill=255, width=max(1, round(width * ss)), joint="curve")
    small = canvas.resize((size, size), Image.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- surfaces


def _tint(rng: np.random.Generator, grey: float, spread: float = 0.04) -> Array:
    """A near-neutral colour: grey with a small warm/cool cast."""
    return np.clip(grey * (1 + rng.uniform(-spread, spread, 3)), 0, 1).astype(np.float32)


def _hsv(h: float, s: float, v: float) -> Array:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


def _streaks(rng: np.random.Generator, d: int, along: int) -> Array:
    """Horizontal streak texture on a d x d canvas: varies per row, slowly along x."""
    fine = _resize(rng.standard_normal((d, along)), d)
    coarse = _resize(rng.standard_normal((max(d // 6, 2), 3)), d)
    hair = _resize(rng.standard_normal((d, 24)), d)  # short hairline streaks
    return _standardise(1.0 * fine + 0.5 * hair + 0.3 * coarse)


def _brushed_metal(size: int, rng: np.random.Generator) -> Array:
    d = int(size * 1.45) + 4
    angle = rng.uniform(-12, 12) + (90.0 if rng.random() < 0.35 else 0.0)
    tex = _rotate_crop(_streaks(rng, d, int(rng.integers(4, 9))), angle, size)
    x, y = _grid(size)
    t = np.deg2rad(angle)
    u = x * np.cos(t) - y * np.sin(t)  # along the brushing direction
    # Brushed metal shows a soft bright band across the brushing direction.
    sheen = np.exp(-(((u - rng.uniform(-0.4, 0.4) * size) / (rng.uniform(0.15, 0.4) * size)) ** 2))
    lum = 1 + rng.uniform(0.04, 0.09) * tex + rng.uniform(0.05, 0.2) * sheen
    return _tint(rng, rng.uniform(0.5, 0.75)) * lum[..., None]


def _cast_metal(size: int, rng: np.random.Generator) -> Array:
    s = size / _REF
    mottle = _fractal(rng, size, int(rng.integers(3, 6)))
    grain = _standardise(_blur(rng.standard_normal((size, size)).astype(np.float32), 0.7 * max(s, 0.5)))
    sparkle = _blur((rng.random((size, size)) < 0.004).astype(np.float32), 0.5)
    lum = 1 + rng.uniform(0.05, 0.1) * mottle + rng.uniform(0.05, 0.1) * grain + 0.5 * sparkle
    return _tint(rng, rng.uniform(0.32, 0.58), 0.03) * lum[..., None]


def _weave(size: int, rng: np.random.Generator, period: float) -> tuple[Array, Array]:
    """Plain weave: (height-like brightness, warp-on-top mask) on a size x size canvas."""
    x, y = _grid(size)
    x, y = x + size, y + size  # keep floor() indices positive
    col, row = np.floor(x / period).astype(int), np.floor(y / period).astype(int)
    fu, fv = (x / period) % 1.0, (y / period) % 1.0
    warp_on_top = ((col + row) % 2 == 0).astype(np.float32)
    # Each thread is a rounded yarn: bright in its middle, dark at the gaps.
    warp = np.sin(np.pi * fu) ** 0.6 * (0.75 + 0.25 * np.sin(np.pi * fv))
    weft = np.sin(np.pi * fv) ** 0.6 * (0.75 + 0.25 * np.sin(np.pi * fu))
    yarn_w = rng.normal(0, 0.08, col.max() + 2)[col]  # uneven yarn thickness / dye
    yarn_f = rng.normal(0, 0.08, row.max() + 2)[row]
    shade = warp_on_top * (warp + yarn_w) + (1 - warp_on_top) * (weft + yarn_f)
    return shade.astype(np.float32), warp_on_top


def _textile(size: int, rng: np.random.Generator) -> Array:
    d = int(size * 1.45) + 4
    period = max(3.0, rng.uniform(4.5, 8.0) * size / _REF)
    shade, warp_top = _weave(d, rng, period)
    angle = rng.uniform(-8, 8)
    shade, warp_top = _rotate_crop(shade, angle, size), _rotate_crop(warp_top, angle, size)
    h = rng.random()
    warp_c = _hsv(h, rng.uniform(0.1, 0.6), rng.uniform(0.3, 0.8))
    weft_c = warp_c * rng.uniform(0.8, 1.25) if rng.random() < 0.6 else _hsv(h + 0.05, 0.1, 0.8)
    base = warp_top[..., None] * warp_c + (1 - warp_top[..., None]) * weft_c
    fuzz = 1 + 0.05 * _fractal(rng, size, 8, 2)
    return base * (0.55 + 0.45 * shade)[..., None] * fuzz[..., None]


_WOODS = (  # (earlywood, latewood) RGB: pine, oak, walnut, birch, cherry
    ((0.86, 0.70, 0.48), (0.66, 0.45, 0.26)),
    ((0.78, 0.62, 0.42), (0.55, 0.40, 0.24)),
    ((0.52, 0.37, 0.25), (0.33, 0.22, 0.14)),
    ((0.90, 0.80, 0.64), (0.74, 0.61, 0.44)),
    ((0.74, 0.46, 0.30), (0.52, 0.30, 0.18)),
)


def _wood(size: int, rng: np.random.Generator) -> Array:
    d = int(size * 1.45) + 4
    x, y = _grid(d)
    period = size * rng.uniform(0.035, 0.09)
    cy = rng.choice([-1, 1]) * d * rng.uniform(0.6, 3.0)  # ring centre far off-canvas
    r = np.sqrt((y - cy) ** 2 + (rng.uniform(0.05, 0.35) * x) ** 2)
    # Growth rings wander slowly along the grain, barely across it.
    r = r + period * (rng.uniform(0.5, 2.0) * _noise(rng, d, 3, 2) + 0.25 * _noise(rng, d, 8, 5))
    t = (r / period) % 1.0
    late = t ** rng.uniform(4, 8)  # gradual earlywood, abrupt latewood boundary
    fibre = _streaks(rng, d, 10)
    ring = late + rng.uniform(0.06, 0.12) * fibre
    ring = _rotate_crop(ring, rng.uniform(-10, 10) + (90.0 if rng.random() < 0.3 else 0.0), size)
    early_c, late_c = (np.array(c, np.float32) for c in _WOODS[rng.integers(len(_WOODS))])
    jitter = rng.uniform(0.85, 1.1)
    ring = np.clip(ring, 0, 1.2)[..., None]
    return (early_c * (1 - ring) + late_c * ring) * jitter


def _painted_plastic(size: int, rng: np.random.Generator) -> Array:
    colour = _hsv(rng.random(), rng.uniform(0.05, 0.7), rng.uniform(0.25, 0.85))
    peel = _noise(rng, size, max(int(size / rng.uniform(3, 6)), 4))  # orange-peel bumps
    gy, gx = np.gradient(peel)
    a = rng.uniform(0, 2 * np.pi)
    lum = 1 + rng.uniform(0.03, 0.08) * (gx * np.cos(a) + gy * np.sin(a)) * size / _REF
    lum += 0.02 * _noise(rng, size, 3)
    x, y = _grid(size)
    cx, cy = rng.uniform(-0.5, 0.5, 2) * size
    gloss = rng.uniform(0.0, 0.12) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.35 * size) ** 2))
    return colour * lum[..., None] + gloss[..., None]


_SURFACE_FNS: dict[str, Callable[[int, np.random.Generator], Array]] = {
    "brushed_metal": _brushed_metal,
    "cast_metal": _cast_metal,
    "textile": _textile,
    "wood": _wood,
    "painted_plastic": _painted_plastic,
}


def _benign(img: Array, rng: np.random.Generator) -> Array:
    """Nuisance variation shared by every class: tone mottling and a little dust."""
    size = img.shape[0]
    img = img * (1 + rng.uniform(0.0, 0.05) * _fractal(rng, size, 2, 2))[..., None]
    n = rng.poisson(size * size / 6000)
    ys, xs = rng.integers(0, size, (2, n))
    dust = np.zeros((size, size), np.float32)
    dust[ys, xs] = rng.uniform(-0.25, 0.25, n)
    return img + _blur(dust, 0.6)[..., None]


# --------------------------------------------------------------------------- defects


def _curve(
    rng: np.random.Generator, centre: Array, length: float, angle: float, bend: float, n: int = 24
) -> Array:
    """A gently curved, slightly wobbly polyline of ``n`` points."""
    t = np.linspace(-0.5, 0.5, n)[:, None]
    along = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-along[1], along[0]])
    wobble = np.cumsum(rng.normal(0, 0.004 * length, n))[:, None]
    return centre + t * length * along + ((1 - 4 * t**2) * bend + wobble - wobble.mean()) * normal


def _scratch(img: Array, rng: np.random.Generator, sev: float, st: _Style, _light: float) -> Array:
    size, s = img.shape[0], img.shape[0] / _REF
    length = size * rng.uniform(0.2, 0.5) * (0.6 + 0.8 * sev) * st.size_gain
    angle = rng.uniform(0, np.pi)
    centre = rng.uniform(0.25, 0.75, 2) * size
    width = max(0.7, (1.0 + 1.8 * sev * rng.random()) * s) * st.width_gain
    bend = rng.normal(0, 0.12) * length
    strokes = []
    n_lines = 1 if rng.random() < 0.65 else int(rng.integers(2, 4))  # sometimes parallel abrasion marks
    for k in range(n_lines):
        off = k * rng.uniform(2, 5) * max(s, 0.5) * np.array([-np.sin(angle), np.cos(angle)])
        strokes.append((_curve(rng, centre + off, length * rng.uniform(0.6, 1.0), angle, bend), width))
    mask = _polyline_mask(size, strokes)
    mask *= np.clip(0.8 + 0.35 * _noise(rng, size, 5), 0.3, 1.0)  # fades in and out along its length
    contrast = min(0.95, (0.3 + 0.65 * sev) * st.contrast_gain)
    bright = rng.random() < 0.7 or st.bold
    target = rng.uniform(0.85, 1.0) if bright else rng.uniform(0.05, 0.2)
    shadow = _shift(mask, 1, 1) * (1 - mask)  # a groove has a dark lip on one side
    img = img * (1 - 0.4 * contrast * shadow[..., None])
    return img + (target - img) * (contrast * mask)[..., None]


def _dent_height(rng: np.random.Generator, size: int, sev: float, st: _Style) -> tuple[Array, float]:
    """Depth map (<= 0) of one dent or a cluster of small pits, and how dirty its floor is."""
    x, y = _grid(size)
    cx, cy = rng.uniform(-0.3, 0.3, 2) * size
    if rng.random() < 0.6:
        r = size * rng.uniform(0.035, 0.1) * (0.6 + 0.9 * sev) * st.size_gain
        a, q = rng.uniform(0, np.pi), rng.uniform(0.7, 1.3)
        du = (x - cx) * np.cos(a) + (y - cy) * np.sin(a)
        dv = -(x - cx) * np.sin(a) + (y - cy) * np.cos(a)
        d = np.sqrt((du / q) ** 2 + (dv * q) ** 2) / r
        # Sloped walls around a flatter floor: the light catches one wall, the other is in shadow.
        return -_smoothstep(1.0, rng.uniform(0.0, 0.4), d), rng.uniform(0.03, 0.15)
    h = np.zeros((size, size), np.float32)
    spread = size * rng.uniform(0.025, 0.07) * st.size_gain
    for _ in range(int(rng.integers(4, 14))):
        px, py = rng.normal(0, spread, 2)
        r = max(size / _REF, 0.6) * rng.uniform(1.5, 4.0) * (0.7 + 0.6 * sev) * st.size_gain
        d = np.sqrt((x - cx - px) ** 2 + (y - cy - py) ** 2) / r
        h = np.minimum(h, -rng.uniform(0.6, 1.0) * _smoothstep(1.0, 0.2, d))
    return h, rng.uniform(0.2, 0.45)


def _dent(img: Array, rng: np.random.Generator, sev: float, st: _Style, light: float) -> Array:
    h, dirt = _dent_height(rng, img.shape[0], sev, st)
    h = _blur(h, 0.7 * max(img.shape[0] / _REF, 0.5))
    gy, gx = np.gradient(h)
    # Lambert shading lit from `light`: normal ~ (-dh/dx, -dh/dy, 1).
    shade = -(gx * np.cos(light) + gy * np.sin(light))
    shade /= np.abs(shade).max() + 1e-6
    k = min(0.9, (0.2 + 0.6 * sev) * st.contrast_gain)
    occlusion = 1 + dirt * (0.5 + sev) * h  # dirt and less light at the bottom
    return img * ((1 + k * shade) * occlusion)[..., None]


def _crack_paths(rng: np.random.Generator, size: int, sev: float, st: _Style) -> list[tuple[Array, float]]:
    """Jagged random-walk polylines with a few tapering branches."""
    s = size / _REF
    step = max(1.5, 3.0 * s)
    width0 = max(0.7, (0.8 + 1.6 * sev) * s) * st.width_gain
    length0 = size * rng.uniform(0.25, 0.55) * (0.6 + 0.7 * sev) * st.size_gain
    todo = [(rng.uniform(0.25, 0.75, 2) * size, rng.uniform(0, 2 * np.pi), length0, width0, 0)]
    strokes: list[tuple[Array, float]] = []
    while todo:
        start, heading, length, width, depth = todo.pop()
        n = max(int(length / step), 4)
        turns = heading + np.cumsum(rng.normal(0, 0.35, n)) * 0.7 + np.cumsum(rng.normal(0, 0.05, n))
        pts = start + np.cumsum(step * np.stack([np.cos(turns), np.sin(turns)], 1), 0)
        for j, chunk in enumerate(np.array_split(np.arange(n), 4)):  # taper in four chunks
            idx = np.r_[max(chunk[0] - 1, 0), chunk]
            strokes.append((pts[idx], max(0.5 * width, width * (1 - 0.2 * j))))
        for i in np.flatnonzero(rng.random(n) < (0.06 if depth < 2 else 0)):
            side = rng.choice([-1, 1]) * rng.uniform(0.4, 1.0)
            todo.append((pts[i], turns[i] + side, length * rng.uniform(0.2, 0.45), width * 0.6, depth + 1))
    return strokes


def _crack(img: Array, rng: np.random.Generator, sev: float, st: _Style, _light: float) -> Array:
    size = img.shape[0]
    mask = _polyline_mask(size, _crack_paths(rng, size, sev, st))
    halo = _blur(mask, max(1.0, 2.0 * size / _REF))
    dark = min(0.95, (0.35 + 0.55 * sev) * st.contrast_gain)
    lip = _shift(mask, -1, -1) * (1 - mask)  # one broken edge catches the light
    img = img * (1 - 0.15 * dark * halo)[..., None] + 0.15 * dark * lip[..., None]
    return img * (1 - dark * mask)[..., None]


_STAIN_TINTS = (
    (1.00, 0.62, 0.36),  # rust
    (0.58, 0.55, 0.50),  # oil / grime
    (1.05, 0.97, 0.62),  # yellowing
    (0.86, 0.80, 1.02),  # heat tint
    (0.70, 0.80, 0.70),  # chemical discoloration
)


def _stain_mask(rng: np.random.Generator, size: int, sev: float, st: _Style) -> Array:
    """Soft blotch with a ragged edge; sometimes a tide-mark ring."""
    x, y = _grid(size)
    r = size * rng.uniform(0.08, 0.2) * (0.6 + 0.8 * sev) * st.size_gain
    cx, cy = rng.uniform(-0.3, 0.3, 2) * size
    a, q = rng.uniform(0, np.pi), rng.uniform(0.6, 1.4)
    du = (x - cx) * np.cos(a) + (y - cy) * np.sin(a)
    dv = -(x - cx) * np.sin(a) + (y - cy) * np.cos(a)
    d = np.sqrt((du / q) ** 2 + (dv * q) ** 2) / r + rng.uniform(0.1, 0.35) * _fractal(rng, size, 4, 3)
    soft = rng.uniform(0.15, 0.6)
    m = _smoothstep(1.0, 1.0 - soft, d)
    if rng.random() < 0.3 and not st.bold:  # water mark: pigment collects at the drying edge
        m *= 0.35 + 0.65 * np.exp(-(((d - (1 - soft / 2)) / 0.12) ** 2))
    return m


def _stain(img: Array, rng: np.random.Generator, sev: float, st: _Style, _light: float) -> Array:
    m = _stain_mask(rng, img.shape[0], sev, st)[..., None]
    alpha = min(0.9, (0.16 + 0.5 * sev) * st.contrast_gain)
    if rng.random() < 0.15 and not st.bold:  # bleached / faded patch
        return img + (1 - img) * 0.6 * alpha * m
    tint = np.array(_STAIN_TINTS[rng.integers(len(_STAIN_TINTS))], np.float32) * rng.uniform(0.7, 1.0)
    if st.bold:
        tint = tint * 0.5
    return img * (1 + alpha * m * (tint - 1))


_DEFECT_FNS: dict[str, Callable[[Array, np.random.Generator, float, _Style, float], Array]] = {
    "scratch": _scratch,
    "dent": _dent,
    "crack": _crack,
    "stain": _stain,
}


# --------------------------------------------------------------------------- camera


def _lighting(img: Array, rng: np.random.Generator, light: float) -> Array:
    """Directional falloff towards ``light``, vignette, exposure and white balance."""
    size = img.shape[0]
    x, y = _grid(size)
    grad = 1 + rng.uniform(0.0, 0.35) * (x * np.cos(light) + y * np.sin(light)) / size
    vignette = 1 - rng.uniform(0.0, 0.35) * (x**2 + y**2) / (0.5 * size**2)
    wb = rng.uniform(0.85, 1.15) * (1 + rng.uniform(-0.04, 0.04, 3))
    return img * (grad * vignette)[..., None] * wb.astype(np.float32)


def _camera(img: Array, rng: np.random.Generator, st: _Style) -> Image.Image:
    """Lens blur, sensor noise and one JPEG round trip; returns an RGB image."""
    size = img.shape[0]
    img = _blur(img, rng.uniform(0.2, 0.75) * min(1.0, size / _REF))
    sigma = rng.uniform(0.005, 0.025) * st.noise_gain
    luma = rng.standard_normal((size, size, 1)).astype(np.float32)
    chroma = rng.standard_normal((size, size, 3)).astype(np.float32)
    img = img + sigma * (0.8 * luma + 0.4 * chroma)
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=int(rng.integers(70, 96)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


# --------------------------------------------------------------------------- public API


def _plain(size: int, rng: np.random.Generator) -> Array:
    """Near-uniform grey part for the easy dataset: nothing for a defect to hide in."""
    return _tint(rng, rng.uniform(0.45, 0.65)) * (1 + 0.03 * _noise(rng, size, 4))[..., None]


def _render(
    label: str,
    size: int,
    rng: np.random.Generator,
    surface: str | None,
    severity: float | None,
    style: _Style,
) -> Image.Image:
    # Independent streams so the defect doesn't shift the surface or camera randomness.
    r_surf, r_def, r_cam = rng.spawn(3)
    surface = surface or SURFACES[int(r_surf.integers(len(SURFACES)))]
    light = float(r_cam.uniform(0, 2 * np.pi))
    base = _plain(size, r_surf) if style.bold else _SURFACE_FNS[surface](size, r_surf)
    img = _benign(base.astype(np.float32), r_surf)
    if label != "ok":
        sev = float(r_def.uniform(0.1, 1.0)) if severity is None else float(np.clip(severity, 0.0, 1.0))
        img = _DEFECT_FNS[label](img, r_def, sev, style, light)
    return _camera(_lighting(img, r_cam, light), r_cam, style)


def render(
    label: str,
    *,
    size: int,
    rng: np.random.Generator,
    surface: str | None = None,
    severity: float | None = None,
) -> Image.Image:
    """Render one synthetic inspection photo.

    Args:
        label: ``"ok"`` or one of :data:`DEFECTS`.
        size: Width and height in pixels (at least 16).
        rng: Source of randomness; the same generator state gives the same image.
        surface: One of :data:`SURFACES`; random when ``None``.
        severity: 0 (barely visible) to 1 (obvious); drawn from 0.1-1.0 when ``None``.
            Ignored for ``"ok"``.

    Returns:
        An RGB ``PIL.Image`` of ``size`` x ``size`` pixels.

    Raises:
        GraftError: If the label, surface or size is invalid.
    """
    _check_label(label)
    _check_size(size)
    if surface is not None:
        _check_surface(surface)
    return _render(label, int(size), rng, surface, severity, _NORMAL)


def _write_dataset(
    out: Path,
    classes: Sequence[str],
    per_class: int,
    fmt: str,
    draw: Callable[[str, int], Image.Image],
    progress: Callable[[int, int], None] | None,
) -> Path:
    """Write ``out/<class>/<class>_0001.<ext>`` for every class, replacing stale numbered files."""
    ext = "png" if _FORMATS[fmt] == "PNG" else "jpg"
    total, done = per_class * len(classes), 0
    for label in classes:
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        own = re.compile(rf"{re.escape(label)}_\d{{4,}}\.(jpg|png)")
        for old in folder.iterdir():  # only files this generator names; never user files
            if own.fullmatch(old.name):
                old.unlink()
        for i in range(per_class):
            img = draw(label, i)
            path = folder / f"{label}_{i + 1:04d}.{ext}"
            if ext == "jpg":
                img.save(path, "JPEG", quality=_JPEG_QUALITY)
            else:
                img.save(path, "PNG")
            done += 1
            if progress is not None:
                progress(done, total)
    return out


def _check_dataset_args(per_class: int, size: int, classes: Sequence[str], fmt: str) -> None:
    if int(per_class) < 1:
        raise GraftError(f"Images per class must be at least 1 (got {per_class}).")
    _check_size(size)
    if not classes:
        raise GraftError("No classes given.", hint=f"Use some of: {', '.join(_LABELS)}.")
    for label in classes:
        _check_label(label)
    if len(set(classes)) != len(classes):
        raise GraftError("A class is listed twice.", hint="List each class once.")
    if fmt.lower() not in _FORMATS:
        raise GraftError(f"Unknown image format '{fmt}'.", hint="Use jpg or png.")


def generate(
    out: str | Path,
    *,
    per_class: int,
    size: int = 224,
    seed: int = 0,
    surfaces: Sequence[str] | None = None,
    classes: Sequence[str] = DEFAULT_CLASSES,
    fmt: str = "jpg",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a folder-of-class-subfolders dataset of synthetic inspection photos.

    Files are ``out/<class>/<class>_0001.jpg`` and so on. Output is deterministic
    for a seed, and a class's images don't depend on which other classes are asked
    for. Surfaces cycle per image index so every class sees them equally often.
    Earlier numbered files of the same class are replaced; other files are kept.

    Args:
        out: Destination folder (created if missing).
        per_class: Images per class (at least 1).
        size: Square image size in pixels.
        seed: Random seed.
        surfaces: Surfaces to draw from; all of :data:`SURFACES` when ``None``.
        classes: Class names: ``"ok"`` and/or entries of :data:`DEFECTS`.
        fmt: ``"jpg"`` (quality 85) or ``"png"``.
        progress: Called as ``progress(done, total)`` after each image.

    Returns:
        ``out`` as a ``Path``.

    Raises:
        GraftError: For an unknown class or surface, or ``per_class < 1``.
    """
    _check_dataset_args(per_class, size, classes, fmt)
    pool = tuple(surfaces) if surfaces else SURFACES
    if not pool:
        raise GraftError("No surfaces given.", hint=f"Use some of: {', '.join(SURFACES)}.")
    for name in pool:
        _check_surface(name)

    def draw(label: str, i: int) -> Image.Image:
        rng = np.random.default_rng([int(seed), _LABELS.index(label), i])
        return _render(label, int(size), rng, pool[i % len(pool)], None, _NORMAL)

    return _write_dataset(Path(out), tuple(classes), int(per_class), fmt.lower(), draw, progress)


def make_easy_dataset(
    out: str | Path,
    *,
    per_class: int = 12,
    size: int = 48,
    seed: int = 0,
    classes: Sequence[str] = ("ok", "scratch", "stain"),
) -> Path:
    """Write a deliberately easy dataset for unit tests of training code.

    Defects are large, thick and high-contrast on smooth surfaces, so a tiny CNN
    trained for a few epochs at 32-48 px clearly beats chance. Layout is the same
    as :func:`generate` (JPEG).

    Args:
        out: Destination folder.
        per_class: Images per class.
        size: Square image size in pixels.
        seed: Random seed.
        classes: Class names: ``"ok"`` and/or entries of :data:`DEFECTS`.

    Returns:
        ``out`` as a ``Path``.

    Raises:
        GraftError: For an unknown class or ``per_class < 1``.
    """
    _check_dataset_args(per_class, size, classes, "jpg")

    def draw(label: str, i: int) -> Image.Image:
        rng = np.random.default_rng([int(seed), _LABELS.index(label), i, 1])
        return _render(label, int(size), rng, "painted_plastic", 1.0, _EASY)

    return _write_dataset(Path(out), tuple(classes), int(per_class), "jpg", draw, progress=None)
