"""Tests for the synthetic defect-photo generator (core.synth). Fast: small images only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import GraftError
from core.synth import DEFAULT_CLASSES, DEFECTS, SURFACES, generate, make_easy_dataset, render

SIZE = 64


def _pixels(label: str, surface: str, seed: int, severity: float | None = None) -> np.ndarray:
    img = render(label, size=SIZE, rng=np.random.default_rng(seed), surface=surface, severity=severity)
    return np.asarray(img, dtype=np.float32)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_public_constants() -> None:
    assert SURFACES == ("brushed_metal", "cast_metal", "textile", "wood", "painted_plastic")
    assert DEFECTS == ("scratch", "dent", "crack", "stain")
    assert DEFAULT_CLASSES == ("ok", "scratch", "dent", "stain")


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("label", ("ok", *DEFECTS))
def test_every_surface_and_defect_renders(label: str, surface: str) -> None:
    img = render(label, size=40, rng=np.random.default_rng(1), surface=surface)
    assert isinstance(img, Image.Image)
    assert img.mode == "RGB" and img.size == (40, 40)
    assert np.asarray(img).std() > 1  # not a blank frame


def test_render_random_surface_and_odd_size() -> None:
    img = render("stain", size=57, rng=np.random.default_rng(0))
    assert img.mode == "RGB" and img.size == (57, 57)


def test_render_is_deterministic_for_a_seed() -> None:
    a = _pixels("crack", "wood", seed=3)
    b = _pixels("crack", "wood", seed=3)
    c = _pixels("crack", "wood", seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generate_is_deterministic(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", per_class=2, size=48, seed=5)
    second = generate(tmp_path / "b", per_class=2, size=48, seed=5)
    other = generate(tmp_path / "c", per_class=2, size=48, seed=6)
    assert _tree(first) == _tree(second)
    assert _tree(first) != _tree(other)


def test_generate_layout_counts_and_progress(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = generate(tmp_path / "ds", per_class=3, size=48, seed=0, progress=lambda d, t: calls.append((d, t)))
    assert out == tmp_path / "ds"
    assert sorted(p.name for p in out.iterdir()) == sorted(DEFAULT_CLASSES)
    for label in DEFAULT_CLASSES:
        names = sorted(p.name for p in (out / label).iterdir())
        assert names == [f"{label}_{i:04d}.jpg" for i in (1, 2, 3)]
        with Image.open(out / label / names[0]) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == (48, 48)
    assert calls[-1] == (12, 12) and len(calls) == 12


def test_generate_options(tmp_path: Path) -> None:
    out = generate(tmp_path / "p", per_class=1, size=32, surfaces=["textile"], classes=["ok", "crack"], fmt="png")
    assert sorted(p.name for p in out.iterdir()) == ["crack", "ok"]
    assert (out / "crack" / "crack_0001.png").is_file()


def test_class_images_do_not_depend_on_other_classes(tmp_path: Path) -> None:
    both = generate(tmp_path / "both", per_class=2, size=32, classes=["ok", "dent"])
    one = generate(tmp_path / "one", per_class=2, size=32, classes=["dent"])
    assert _tree(both / "dent") == _tree(one / "dent")


def test_regenerating_replaces_stale_images_but_keeps_user_files(tmp_path: Path) -> None:
    out = generate(tmp_path / "ds", per_class=3, size=32, classes=["ok"])
    (out / "ok" / "notes.txt").write_text("mine")
    generate(out, per_class=2, size=32, classes=["ok"])
    assert sorted(p.name for p in (out / "ok").iterdir()) == ["notes.txt", "ok_0001.jpg", "ok_0002.jpg"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"classes": ["ok", "rust"]},
        {"surfaces": ["marble"]},
        {"per_class": 0},
        {"classes": ["ok", "ok"]},
        {"classes": []},
        {"fmt": "gif"},
        {"size": 8},
    ],
)
def test_generate_rejects_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    args = {"per_class": 1, "size": 32, **kwargs}
    with pytest.raises(GraftError):
        generate(tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()  # validated before anything is written


def test_render_rejects_unknown_class_and_surface() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(GraftError, match="Unknown class"):
        render("rust", size=32, rng=rng)
    with pytest.raises(GraftError, match="Unknown surface"):
        render("ok", size=32, rng=rng, surface="marble")


@pytest.mark.parametrize("surface", SURFACES)
def test_defects_are_a_real_signal(surface: str) -> None:
    # Same seed => same part, light and camera; only the defect differs.
    assert np.array_equal(_pixels("ok", surface, 0), _pixels("ok", surface, 0))
    mean_diffs, peak_diffs = [], []
    for label in DEFECTS:
        for seed in range(3):
            diff = np.abs(_pixels(label, surface, seed) - _pixels("ok", surface, seed)).max(axis=2)
            mean_diffs.append(diff.mean())
            peak_diffs.append(np.percentile(diff, 99.5))
    assert np.mean(mean_diffs) > 0.3  # grey levels, averaged over the whole frame
    assert np.mean(peak_diffs) > 12  # and clearly visible where the defect is


def test_severity_controls_visibility() -> None:
    def total(sev: float) -> float:
        return sum(
            np.abs(_pixels(label, "painted_plastic", seed, sev) - _pixels("ok", "painted_plastic", seed)).mean()
            for label in DEFECTS
            for seed in range(3)
        )

    assert total(1.0) > 2 * total(0.1)


def test_make_easy_dataset_layout(tmp_path: Path) -> None:
    out = make_easy_dataset(tmp_path / "easy", per_class=4)
    assert out == tmp_path / "easy"
    assert sorted(p.name for p in out.iterdir()) == ["ok", "scratch", "stain"]
    for label in ("ok", "scratch", "stain"):
        files = sorted((out / label).glob("*.jpg"))
        assert [p.name for p in files] == [f"{label}_{i:04d}.jpg" for i in range(1, 5)]
        with Image.open(files[0]) as img:
            assert img.size == (48, 48) and img.mode == "RGB"


def test_make_easy_dataset_defects_are_strong(tmp_path: Path) -> None:
    out = make_easy_dataset(tmp_path / "easy", per_class=6, size=32)

    def spread(label: str) -> float:
        # Per-image brightness range: an easy defect is a big bright or dark mark.
        imgs = [np.asarray(Image.open(p).convert("L"), np.float32) for p in sorted((out / label).glob("*.jpg"))]
        return float(np.mean([np.percentile(a, 99) - np.percentile(a, 1) for a in imgs]))

    assert spread("scratch") > 1.5 * spread("ok")
    assert spread("stain") > 1.5 * spread("ok")
