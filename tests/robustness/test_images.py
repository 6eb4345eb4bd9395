"""Hostile and unusual image files: each is built here, in memory or tmp_path."""

from __future__ import annotations

import hashlib
import io
import resource
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import GraftError
from core.images import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    UnreadableImage,
    content_hash,
    has_image_extension,
    load_resized,
    max_pixels,
    open_rgb,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _png_claiming_size(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR is patched to claim a huge size (CRC fixed up)."""
    data = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def _px(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    return tuple(image.getpixel(xy))


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 3) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected))


# --- constants and helpers -----------------------------------------------------------


def test_public_constants() -> None:
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
    assert ALLOWED_FORMATS == {"JPEG", "MPO", "PNG", "BMP", "TIFF", "WEBP", "GIF"}
    assert DEFAULT_MAX_PIXELS == 40_000_000


def test_max_pixels_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFT_MAX_IMAGE_PIXELS", raising=False)
    assert max_pixels() == DEFAULT_MAX_PIXELS
    monkeypatch.setenv("GRAFT_MAX_IMAGE_PIXELS", "1234")
    assert max_pixels() == 1234
    monkeypatch.setenv("GRAFT_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(GraftError, match="GRAFT_MAX_IMAGE_PIXELS"):
        max_pixels()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.JPG", True), ("ok/b.tiff", True), ("c.webp", True), ("d.gif", True),
        ("e.txt", False), ("f.zip", False), ("noext", False), ("._a.jpg", False),
        (".DS_Store", False), ("Thumbs.db", False), ("__MACOSX/ok/a.jpg", False),
    ],
)
def test_has_image_extension(name: str, expected: bool) -> None:
    assert has_image_extension(name) is expected


def test_content_hash(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.bin", b"graft" * 100_000)
    assert content_hash(path) == hashlib.sha256(b"graft" * 100_000).hexdigest()


# --- refused inputs ------------------------------------------------------------------


def test_decompression_bomb_is_refused_without_decoding(tmp_path: Path) -> None:
    path = _write(tmp_path, "bomb.png", _png_claiming_size(30_000, 30_000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UnreadableImage, match="too large") as info:
        open_rgb(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024  # decoding it would need ~2.7 GB
    assert info.value.name == "bomb.png"
    assert "bomb.png" in info.value.message


def test_over_our_limit_but_under_pillows_is_refused_by_header(tmp_path: Path) -> None:
    # 8000x6000 = 48 M pixels: Pillow would allow it, our 40 M default must not.
    path = _write(tmp_path, "big.png", _png_claiming_size(8000, 6000))
    with pytest.raises(UnreadableImage, match=r"too large \(8000×6000 pixels\)"):
        open_rgb(path)


def test_env_limit_refuses_small_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "small.png", _encode(Image.new("RGB", (100, 100)), "PNG"))
    assert open_rgb(path).size == (100, 100)
    monkeypatch.setenv("GRAFT_MAX_IMAGE_PIXELS", "5000")
    with pytest.raises(UnreadableImage, match="too large"):
        open_rgb(path)
    with pytest.raises(UnreadableImage, match="too large"):
        load_resized(path, 32)
    assert open_rgb(path, max_pixels=10_000).size == (100, 100)


def test_truncated_jpeg(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), "JPEG", quality=95)
    path = _write(tmp_path, "scratch/03.jpg", data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="truncated") as info:
        open_rgb(path)
    assert info.value.message.startswith("03.jpg can't be read:")


def test_truncated_png() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), "PNG")
    with pytest.raises(UnreadableImage, match="truncated"):
        open_rgb(data[: len(data) // 2])


def test_zero_bytes(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImage, match="empty"):
        open_rgb(_write(tmp_path, "zero.png", b""))
    with pytest.raises(UnreadableImage, match="empty"):
        open_rgb(b"")


def test_random_bytes_named_jpg(tmp_path: Path) -> None:
    path = _write(tmp_path, "noise.jpg", np.random.default_rng(2).bytes(4096))
    with pytest.raises(UnreadableImage, match="not an image"):
        open_rgb(path)


def test_eps_named_png_is_unsupported(tmp_path: Path) -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    with pytest.raises(UnreadableImage, match="format EPS is not supported"):
        open_rgb(_write(tmp_path, "logo.png", eps))
    with pytest.raises(UnreadableImage, match="format EPS is not supported"):
        open_rgb(b"%!PS-Adobe-3.0 EPSF-3.0\n")  # too minimal for Pillow to parse


@pytest.mark.parametrize("head", [b"\x7fELF\x02\x01\x01\x00", b"MZ\x90\x00\x03\x00\x00\x00"])
def test_executable_named_png(tmp_path: Path, head: bytes) -> None:
    path = _write(tmp_path, "setup.png", head + bytes(range(256)) * 8)
    with pytest.raises(UnreadableImage, match="not an image"):
        open_rgb(path)


def test_known_but_refused_format_is_named() -> None:
    with pytest.raises(UnreadableImage, match="format ICO is not supported"):
        open_rgb(_encode(Image.new("RGB", (16, 16)), "ICO"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImage, match="not found"):
        open_rgb(tmp_path / "gone.png")


# --- colour modes ----------------------------------------------------------------------


def test_cmyk_jpeg_gives_right_rgb() -> None:
    data = _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    image = open_rgb(data)
    assert image.mode == "RGB"
    assert _close(_px(image, (16, 16)), RED, tol=8)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_gray_is_scaled_not_clipped(fmt: str) -> None:
    values = np.array([[65535, 32768, 0, 257 * 10]], dtype=np.uint16)
    image = open_rgb(_encode(Image.fromarray(values), fmt))
    got = np.asarray(image)[0, :, 0]
    assert got[0] == 255
    assert abs(int(got[1]) - 128) <= 1
    assert got[2] == 0 and got[3] == 10


def test_16bit_big_endian_and_int32_and_float() -> None:
    big = np.array([[65535, 32768]], dtype=">u2")
    assert list(np.asarray(open_rgb(Image.frombytes("I;16B", (2, 1), big.tobytes())))[0, :, 0]) == [255, 128]
    ints = Image.fromarray(np.array([[65535, 0]], dtype=np.int32))
    assert list(np.asarray(open_rgb(ints))[0, :, 0]) == [255, 0]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert list(np.asarray(open_rgb(unit))[0, :, 0]) == [0, 128, 255]
    wide = Image.fromarray(np.array([[-10.0, 0.0, 10.0, np.nan]], dtype=np.float32))
    assert list(np.asarray(open_rgb(wide))[0, :, 0]) == [0, 128, 255, 128]


def test_48bit_rgb_tiff() -> None:
    w, h = 4, 3
    pixels = np.tile(np.array([65535, 32768, 0], "<u2"), (h, w, 1)).tobytes()
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, 0), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 1, 0), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pixels)), (284, 3, 1, 1)]
    bps_at = 8 + 2 + 12 * len(tags) + 4
    out = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    for tag, typ, count, value in tags:
        value = {258: bps_at, 273: bps_at + 6}.get(tag, value)
        out += struct.pack("<HHI", tag, typ, count)
        out += struct.pack("<HH", value, 0) if typ == 3 and count == 1 else struct.pack("<I", value)
    out += struct.pack("<I3H", 0, 16, 16, 16) + pixels
    assert _close(_px(open_rgb(out), (1, 1)), (255, 128, 0), tol=1)


def test_palette_with_transparency_composites_on_white() -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0] + [255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 4, 8))
    for fmt in ("PNG", "GIF"):
        rgb = open_rgb(_encode(image, fmt, transparency=0))
        assert _px(rgb, (6, 4)) == WHITE, fmt  # transparent black -> white
        assert _px(rgb, (1, 4)) == RED, fmt


def test_palette_without_transparency() -> None:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    assert _px(open_rgb(_encode(image, "PNG")), (0, 0)) == GREEN


def test_la_and_rgba_composite_on_white() -> None:
    la = Image.new("LA", (4, 4), (0, 0))
    la.putpixel((0, 0), (0, 255))
    rgb = open_rgb(_encode(la, "PNG"))
    assert _px(rgb, (1, 1)) == WHITE and _px(rgb, (0, 0)) == (0, 0, 0)
    rgba = open_rgb(_encode(Image.new("RGBA", (4, 4), (255, 0, 0, 128)), "PNG"))
    assert _close(_px(rgba, (2, 2)), (255, 127, 127), tol=2)
    webp = open_rgb(_encode(Image.new("RGBA", (4, 4), (0, 0, 255, 0)), "WEBP", lossless=True))
    assert _px(webp, (2, 2)) == WHITE


def test_one_bit_and_grayscale() -> None:
    bw = Image.new("1", (4, 4), 0)
    bw.putpixel((0, 0), 1)
    rgb = open_rgb(_encode(bw, "PNG"))
    assert _px(rgb, (0, 0)) == WHITE and _px(rgb, (3, 3)) == (0, 0, 0)
    assert _px(open_rgb(_encode(Image.new("L", (2, 2), 77), "BMP")), (1, 1)) == (77, 77, 77)


# --- orientation and frames -----------------------------------------------------------


def _marked(width: int = 40, height: int = 20) -> Image.Image:
    """Blue image with a red block in its top-left corner."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, 6, 6))
    return image


@pytest.mark.parametrize(
    ("orientation", "red_corner"),
    [(1, (0, 0)), (6, (19, 0)), (8, (0, 39)), (3, (39, 19))],
)
def test_exif_orientation_png(orientation: int, red_corner: tuple[int, int]) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = open_rgb(_encode(_marked(), "PNG", exif=exif))
    assert image.size == ((40, 20) if orientation in (1, 3) else (20, 40))
    assert _px(image, red_corner) == RED
    opposite = (image.width - 1 - red_corner[0], image.height - 1 - red_corner[1])
    assert _px(image, opposite) == BLUE


@pytest.mark.parametrize(("orientation", "red_corner"), [(6, (19, 0)), (8, (0, 39))])
def test_exif_orientation_jpeg(orientation: int, red_corner: tuple[int, int]) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = open_rgb(_encode(_marked(), "JPEG", exif=exif, quality=95))
    assert image.size == (20, 40)
    assert _close(_px(image, red_corner), RED, tol=40)


def test_multipage_tiff_and_animated_gif_give_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in (RED, GREEN, BLUE)]
    for fmt, name in (("TIFF", "pages.tif"), ("GIF", "anim.gif"), ("WEBP", "anim.webp")):
        extra = {"lossless": True} if fmt == "WEBP" else {}
        data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], **extra)
        with Image.open(io.BytesIO(data)) as check:
            assert getattr(check, "n_frames", 1) == 3, fmt
        assert _px(open_rgb(_write(tmp_path, name, data)), (4, 4)) == RED, fmt


# --- sources and load_resized ---------------------------------------------------------


def test_sources_agree(tmp_path: Path) -> None:
    data = _encode(_marked(), "PNG")
    path = _write(tmp_path, "m.png", data)
    with open(path, "rb") as fh:
        from_stream = open_rgb(fh)
        assert not fh.closed  # a caller's stream is left open
    outputs = [open_rgb(path), open_rgb(str(path)), open_rgb(data), from_stream,
               open_rgb(Image.open(io.BytesIO(data)))]
    for image in outputs:
        assert image.mode == "RGB" and image.tobytes() == outputs[0].tobytes()


def test_stream_name_used_in_message() -> None:
    stream = io.BytesIO(b"not an image at all")
    stream.name = "/srv/uploads/ok/part 7.png"
    with pytest.raises(UnreadableImage) as info:
        open_rgb(stream)
    assert info.value.message.startswith("part 7.png can't be read")
    assert "/srv" not in info.value.message


def test_load_resized_shape_and_edges() -> None:
    image = Image.new("RGB", (640, 480), BLUE)
    image.paste(RED, (0, 0, 640, 24))  # thin defect along the top edge
    data = _encode(image, "JPEG", quality=95)
    out = load_resized(data, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and out.flags.writeable
    assert _close(tuple(int(v) for v in out[0, 32]), RED, tol=40)  # squashed, not cropped
    assert _close(tuple(int(v) for v in out[63, 32]), BLUE, tol=40)
    assert load_resized(_encode(Image.new("L", (7, 300), 200), "PNG"), 16).shape == (16, 16, 3)
    with pytest.raises(ValueError):
        load_resized(data, 0)


def test_draft_is_deterministic(tmp_path: Path) -> None:
    noise = np.random.default_rng(3).integers(0, 256, (1024, 768, 3), dtype=np.uint8)
    path = _write(tmp_path, "big.jpg", _encode(Image.fromarray(noise), "JPEG"))
    assert np.array_equal(load_resized(path, 224), load_resized(path.read_bytes(), 224))
    assert open_rgb(path, draft=(224, 224)).size == (384, 512)  # DCT-scaled by 1/2


def test_pillow_global_state_untouched(tmp_path: Path) -> None:
    from PIL import ImageFile

    filters = list(warnings.filters)
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(UnreadableImage):
        open_rgb(_png_claiming_size(30_000, 30_000))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert Image.MAX_IMAGE_PIXELS == limit
    assert list(warnings.filters) == filters
