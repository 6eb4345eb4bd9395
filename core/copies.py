"""Exact copies and near-copies of a photo (re-saved JPEGs, resized copies), so they never sit on both
sides of a split and flatter the score.

A photo's *look* is a 256-bit difference hash (dHash: is each pixel of a 17x16 grey thumbnail brighter
than its right neighbour?) and a 32x32 grey thumbnail. Two photos are near-copies when their hashes
differ in at most ``HASH_BITS`` bits (a cheap first filter) *and* their thumbnails differ by at most
``THUMB_MAD`` grey levels on average (the deciding test). The hash alone is not enough: on noisy or
low-texture surfaces (NEU steel, sensor noise) a re-saved JPEG flips a quarter of its bits, and
near-identical set-ups (MVTec bottles, every photo framed alike) give equal hashes for different
parts. Measured: re-saved JPEGs down to quality 30 and copies resized from 2x to 1/4 stay within
1.5 grey levels (and 33 bits); of the 1.6 million pairs of different NEU photos none comes within
2.0, of the 42,000 pairs of different bottle photos 10 do, and those few are then kept together,
which can only make the score more cautious.

The hash is computed with a few lines of numpy on the small decode the dataset check already makes
(a library such as imagehash would add SciPy and PyWavelets for the same eight lines).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

__all__ = ["Look", "look_of", "near_copy_pairs", "copy_groups", "members", "HASH_BITS", "THUMB_MAD"]

HASH_SIDE, THUMB_SIDE = 16, 32
HASH_BITS = 64  # at most this many of the 256 hash bits may differ (a quarter)
THUMB_MAD = 2.0  # mean absolute grey difference of the 32x32 thumbnails, 0..255
_CHUNK = 128  # rows compared at a time (bounded memory for large datasets)


@dataclass(frozen=True)
class Look:
    """What a photo looks like, small: its difference hash (32 bytes) and a 32x32 grey thumbnail."""

    dhash: bytes
    thumb: np.ndarray  # uint8 (32, 32)

    @property
    def hex(self) -> str:
        return self.dhash.hex()


def look_of(image: Image.Image) -> Look:
    """The :class:`Look` of a decoded photo (any size; the check's small decode is enough)."""
    grey = image.convert("L")
    small = np.asarray(grey.resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = np.packbits((small[:, 1:] > small[:, :-1]).ravel())
    thumb = np.asarray(grey.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR), dtype=np.uint8)
    return Look(bits.tobytes(), thumb)


def near_copy_pairs(looks: Sequence[Look]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of photos that are near-copies of each other."""
    if len(looks) < 2:
        return []
    hashes = np.frombuffer(b"".join(look.dhash for look in looks), dtype=np.uint64).reshape(len(looks), -1)
    thumbs = np.stack([look.thumb for look in looks]).astype(np.int16)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(looks), _CHUNK):
        block = hashes[start:start + _CHUNK]
        bits = np.bitwise_count(block[:, None, :] ^ hashes[None, :, :]).sum(2)
        rows, cols = np.nonzero(bits <= HASH_BITS)
        rows = rows + start
        keep = rows < cols
        rows, cols = rows[keep], cols[keep]
        for lo in range(0, len(rows), 4096):  # thumbnails compared in slices: bounded memory
            r, c = rows[lo:lo + 4096], cols[lo:lo + 4096]
            mad = np.abs(thumbs[r] - thumbs[c]).mean(axis=(1, 2))
            pairs.extend(zip(r[mad <= THUMB_MAD].tolist(), c[mad <= THUMB_MAD].tolist()))
    return pairs


def copy_groups(n: int, exact: Sequence[str], near: Iterable[tuple[int, int]] = ()) -> list[int]:
    """A group id per photo: photos with the same content hash or joined by near-copy pairs share one.

    Args:
        n: number of photos.
        exact: each photo's content hash (equal hashes are exact copies).
        near: index pairs of near-copies (from :func:`near_copy_pairs`); joining is transitive.

    Returns:
        ``n`` group ids, each the smallest photo index of its group.
    """
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[str, int] = {}
    for i, digest in enumerate(exact):
        join(first.setdefault(digest, i), i)
    for a, b in near:
        join(a, b)
    return [root(i) for i in range(n)]


def members(groups: Sequence[int]) -> dict[int, list[int]]:
    """Group id -> photo indices, for groups of two or more."""
    out: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        out[g].append(i)
    return {g: idx for g, idx in out.items() if len(idx) > 1}
