"""Hostile names are shown as text, two sessions don't share choices, and EXIF turns the same way everywhere."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.imagecache import decoded_images
from core.images import content_hash
from core.predict import Predictor
from core.workspace import Workspace
from tests.conftest import ROOT, make_dataset

HOSTILE = "<img src=x onerror=alert(1)>"


def test_no_view_renders_raw_html() -> None:
    offenders = [p for p in [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]
                 if "unsafe_allow_html=True" in p.read_text()]
    assert offenders == []


def test_hostile_class_and_file_names_are_shown_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws_root = tmp_path / "ws"
    data = make_dataset(ws_root / "datasets" / "evil", {"ok": 3, HOSTILE: 3}, size=24)
    (data / "ok" / "ok_000.png").rename(data / "ok" / f"{HOSTILE}.png")
    monkeypatch.setenv("GRAFT_WORKSPACE", str(ws_root))
    at = AppTest.from_file(str(ROOT / "pages" / "1_data.py"), default_timeout=60)
    at.session_state["dataset"] = "evil"
    at.run()
    assert not at.exception
    markdown = [m for m in at.markdown if "onerror" in m.value]
    assert markdown and not any(m.allow_html for m in markdown)  # rendered by markdown, escaped, never as HTML


def test_two_sessions_keep_separate_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_WORKSPACE", str(tmp_path / "ws"))
    Workspace(tmp_path / "ws")
    page = str(ROOT / "pages" / "2_model.py")
    first, second = AppTest.from_file(page, default_timeout=60).run(), AppTest.from_file(page, default_timeout=60).run()
    first.button(key="use_backbone_1").click().run()
    assert first.session_state["choices"]["backbone"] != second.session_state["choices"]["backbone"]


def _rotated_jpeg(path: Path, orientation: int) -> None:
    """A 48x24 photo, red on its left half, stored sideways with an EXIF orientation tag."""
    arr = np.zeros((24, 48, 3), np.uint8)
    arr[:, :24] = (220, 30, 30)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, "JPEG", exif=exif, quality=95)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_the_same_in_training_and_prediction(tmp_path: Path, orientation: int) -> None:
    photo = tmp_path / f"o{orientation}.jpg"
    _rotated_jpeg(photo, orientation)
    trained_on = decoded_images([str(photo)], [content_hash(photo)], 32)[0]
    predictor = Predictor.__new__(Predictor)  # preprocessing only: no model needed
    from core.preprocess import Preprocessing

    predictor.spec = type("Spec", (), {"image_size": 32, "preprocessing": Preprocessing(32)})()
    seen_when_predicting = predictor.preprocess(photo)
    from_bytes = predictor.preprocess(io.BytesIO(photo.read_bytes()).getvalue())
    assert np.array_equal(trained_on, seen_when_predicting) and np.array_equal(trained_on, from_bytes)
    # upright means the red half moved to the top (6) or the bottom (8)
    red_top = trained_on[:8, :, 0].mean() > trained_on[-8:, :, 0].mean()
    assert red_top == (orientation == 6)
