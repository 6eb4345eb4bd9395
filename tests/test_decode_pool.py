"""The decode-once cache gives the same pixels whether threads or worker processes decode it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.imagecache import decoded_images, use_processes


def test_processes_and_threads_decode_the_same_pixels(easy_data: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    paths = sorted(str(p) for p in easy_data.rglob("*.png"))[:24]
    arrays = {}
    for pool in ("threads", "processes"):
        monkeypatch.setenv("GRAFT_DECODE_POOL", pool)
        monkeypatch.setenv("GRAFT_CACHE_DIR", str(tmp_path / pool))  # no reuse between the two
        seen: list[int] = []
        arrays[pool] = np.asarray(decoded_images(paths, [""] * len(paths), 32, progress=lambda d, t, e: seen.append(d)))
        assert seen[-1] == len(paths)
    assert arrays["threads"].shape == (24, 32, 32, 3)
    assert np.array_equal(arrays["threads"], arrays["processes"])


def test_small_datasets_and_small_machines_decode_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFT_DECODE_POOL", raising=False)
    monkeypatch.setattr("core.imagecache.physical_cores", lambda: 16)
    assert use_processes(20_000) and not use_processes(100)
    monkeypatch.setattr("core.imagecache.physical_cores", lambda: 2)
    assert not use_processes(20_000)
