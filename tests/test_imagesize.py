"""The default image size follows the photos and the backbone; the warning and the time cost are plain."""

from __future__ import annotations

import pytest

from core.imagesize import choose_image_size, larger_sizes, relative_cost, shrink_warning


def _sizes(width: int, height: int | None = None) -> dict[str, float]:
    return {"median_width": width, "median_height": height or width}


@pytest.mark.parametrize("side, native, expected", [
    (40, 224, 224), (200, 224, 224), (384, 224, 224), (896, 224, 224),  # small photos: the native size
    (1100, 224, 288), (1200, 224, 320), (2592, 224, 320),  # large photos: shrunk about 4× at most, up to 320 px
    (2000, 384, 384),  # never below the native size
])
def test_default_size(side: int, native: int, expected: int) -> None:
    assert choose_image_size(_sizes(side), native) == expected


def test_unknown_photo_sizes_use_the_native_size() -> None:
    assert choose_image_size(None, 224) == 224 and choose_image_size({}, 384) == 384


def test_the_shorter_side_counts() -> None:
    assert choose_image_size(_sizes(2592, 1944), 224) == 320


def test_warns_only_past_four_times() -> None:
    assert shrink_warning(_sizes(800), 224) is None  # 3.6×
    text = shrink_warning(_sizes(2592, 1944), 224)
    assert text is not None and "shrunk 9× to 224 px" in text and "training time" in text
    assert shrink_warning(None, 224) is None


def test_time_cost_grows_with_the_pixel_count() -> None:
    assert relative_cost(320, 160) == 4.0
    assert larger_sizes(224, _sizes(300)) == [256, 288]
    assert larger_sizes(224, _sizes(200)) == [] and larger_sizes(224, None) == []
