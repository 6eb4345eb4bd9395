"""Model page (AppTest, real core, offline): backbone cards, start points, strategy cards, advanced settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import STRATEGY_DEFAULTS, Strategy
from core.workspace import Workspace
from tests.conftest import ROOT
from tests.pages.tiny_run import copy_workspace, trained_workspace

PAGE = str(ROOT / "pages" / "2_model.py")


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("GRAFT_WORKSPACE", str(tmp_path / "ws"))
    return Workspace(tmp_path / "ws")


@pytest.fixture
def trained(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace with dataset 'parts' (40 photos) and one finished tiny run."""
    root = copy_workspace(trained_workspace(tmp_path_factory), tmp_path / "trained")
    monkeypatch.setenv("GRAFT_WORKSPACE", str(root))
    return Workspace(root)


def page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def choices(at: AppTest) -> dict:
    return at.session_state["choices"]


def markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def test_offline_notice_and_six_backbone_cards(ws: Workspace) -> None:
    at = page()
    assert not at.exception
    assert "can't reach the internet" in at.warning[0].value
    cards = [b for b in at.button if b.key.startswith("use_backbone_")]
    assert len(cards) == 6
    assert [b.label for b in cards].count("Selected") == 1
    md = markdown(at)
    assert "**ResNet-18** :primary[:material/star:]" in md  # starred by its name, "Recommended" under it
    assert [c.value for c in at.caption].count(":primary[Recommended]") == 1 and sum(":material/star:" in m for m in md) == 1
    captions = "\n".join(c.value for c in at.caption)
    assert "11.2 M parameters" in captions and "ImageNet accuracy" not in captions  # offline: ImageNet can't be the start
    # offline without earlier models: start from scratch, so the strategy is "From scratch"
    assert at.radio(key="model_start").options == ["An earlier model of yours", "A weights file",
                                                   "From scratch (no pretraining)"]
    assert choices(at)["start"] == "scratch" and choices(at)["strategy"] == "scratch"
    strategies = [b for b in at.button if b.key.startswith("use_strategy_")]
    assert len(strategies) == 6 and [b.key for b in strategies if not b.disabled] == ["use_strategy_scratch"]



def test_offline_ways_forward_are_the_advice_words(ws: Workspace) -> None:
    from core.advice import WEIGHTS_COMMAND, offline_ways

    ws.add_sample()
    at = page(dataset="sample")
    assert not at.exception
    ways = [m for m in markdown(at) if m.startswith("- **Bring a weights file.**")]
    assert ways, markdown(at)
    for way in offline_ways(has_models=False, good_class="ok", where="above"):  # the same words as on Evaluate
        assert f"**{way.title}.**" in ways[0].replace("\\", "")
    assert f"`{WEIGHTS_COMMAND}`" in ways[0] and "choose “A weights file” above" in ways[0].replace("\\", "")

def test_pick_another_curated_backbone(ws: Workspace) -> None:
    at = page()
    at.button(key="use_backbone_1").click().run()
    assert choices(at)["backbone"] == "mobilenetv3_large_100.ra_in1k"
    assert at.button(key="use_backbone_1").label == "Selected"


def test_any_timm_model_by_name(ws: Workspace) -> None:
    at = page()
    at.text_input(key="model_other_name").input("test_resnet")
    at.button(key="model_other_use").click().run()
    assert not at.exception
    assert choices(at)["backbone"] == "test_resnet"
    assert "Using test\\_resnet." in [s.value for s in at.success]
    at.text_input(key="model_other_name").input("resnet_nope")
    at.button(key="model_other_use").click().run()
    assert not at.exception
    assert "no model called" in at.error[0].value and "Unknown backbone" not in at.error[0].value
    assert choices(at)["backbone"] == "test_resnet"


def test_recommendation_from_the_dataset_size_and_earlier_models(trained: Workspace) -> None:
    at = page(dataset="parts")
    assert not at.exception
    # offline with a finished model: start from it, and the strategy follows the dataset size (40 photos)
    assert choices(at)["start"].startswith("run:") and choices(at)["start"].endswith("r1")
    assert at.radio(key="model_start").value == "run"
    assert at.selectbox(key="model_start_run").value.endswith("r1")
    assert choices(at)["strategy"] == Strategy.FEATURE_EXTRACTION.value
    assert "Recommended: **Feature extraction**. With 40 photos" in at.info[0].value
    md = markdown(at)
    assert "**Feature extraction** :primary[:material/star:]" in md
    at.button(key="use_strategy_fine-tune").click().run()
    assert choices(at)["strategy"] == "fine-tune"
    assert choices(at)["epochs"] == STRATEGY_DEFAULTS[Strategy.FINE_TUNE]["epochs"]
    assert at.number_input(key="model_epochs").value == STRATEGY_DEFAULTS[Strategy.FINE_TUNE]["epochs"]


def test_from_scratch_locks_the_strategy(trained: Workspace) -> None:
    at = page(dataset="parts")
    at.radio(key="model_start").set_value("scratch").run()
    assert not at.exception
    assert choices(at)["start"] == "scratch" and choices(at)["strategy"] == "scratch"
    assert "strategy is “From scratch”" in at.info[0].value


def test_advanced_settings_are_stored(ws: Workspace) -> None:
    ws.add_sample()
    at = page(dataset="sample")
    at.number_input(key="model_epochs").set_value(3)
    at.selectbox(key="model_image_size").set_value(32)
    at.selectbox(key="model_batch_size").set_value(8)
    at.number_input(key="model_seed").set_value(7)
    at.number_input(key="model_patience").set_value(9)
    at.run()
    assert not at.exception
    c = choices(at)
    assert (c["epochs"], c["image_size"], c["batch_size"], c["seed"], c["patience"]) == (3, 32, 8, 7, 9)
    assert "3 epochs at 32 px" in "\n".join(markdown(at))
    assert at.button(key="model_next").label == "Next: train"


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="model_start").set_value("file").run()
    return at.file_uploader(key="model_weights_upload").set_value((name, data, "application/octet-stream")).run()


def test_a_fake_weights_file_is_refused_at_once_naming_it(ws: Workspace) -> None:
    at = _upload(page(), "fake_weights.pth", b"not a checkpoint at all" * 10)
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and "fake\\_weights\\.pth" in errors[0] and "plain weights file" in errors[0]
    assert "Error)" not in errors[0]  # no exception names
    assert not choices(at)["start"].startswith("file:")
    assert not ws.weights_dir.exists() or not list(ws.weights_dir.iterdir())  # nothing kept
    assert not [b for b in at.button if b.key == "model_next"]  # no way on to Train with a refused file


def test_a_weights_file_that_fits_is_kept_and_used(ws: Workspace) -> None:
    import io

    from safetensors.torch import save

    from core.backbones import build

    at = page()
    at.text_input(key="model_other_name").input("test_resnet")
    at.button(key="model_other_use").click().run()
    data = save(build("test_resnet", "scratch").state_dict())
    at = _upload(at, "../my weights.safetensors", io.BytesIO(data).getvalue())
    assert not at.exception and not at.error
    start = choices(at)["start"]
    assert start.startswith("file:") and Path(start[5:]).parent == ws.weights_dir
    assert any("its weights fit" in s.value for s in at.success)


def test_measure_the_speeds_on_this_computer(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.backbones

    measured: list[tuple[str, int]] = []

    def fake(name: str, image_size: int = 160, **kw) -> dict[str, float]:
        measured.append((name, image_size))
        return {"train_ips": 123.4, "infer_ips": 400.0, "precision": "fp32"}

    monkeypatch.setattr(core.backbones, "measure_speed", fake)
    at = page()
    at.button(key="model_measure").click().run()
    assert not at.exception
    size = choices(at)["image_size"]  # the default: no dataset yet, so the backbone's native size
    assert size == core.backbones.native_size(core.backbones.DEFAULT_BACKBONE) == 224
    assert len(measured) == 6 and {s for _, s in measured} == {size}
    captions = "\n".join(c.value for c in at.caption)
    assert captions.count(f"Trains about 123 photos/s on this computer (at {size} px)") == 6


def test_image_size_follows_the_photos_and_warns_when_they_shrink_a_lot(ws: Workspace) -> None:
    from tests.conftest import make_dataset

    make_dataset(ws.datasets_dir / "big", {"ok": 2, "scratch": 2}, size=2000, fmt="jpg")
    make_dataset(ws.datasets_dir / "small", {"ok": 3, "scratch": 3}, size=100, fmt="jpg")
    at = page(dataset="big")
    assert not at.exception
    assert choices(at)["image_size"] == 320  # large photos: above the native 224 px, at most 320 px by default
    assert any("shrunk 6× to 320 px" in w.value for w in at.warning)
    texts = "\n".join(c.value for c in [*at.caption, *at.markdown, *at.info])
    import re

    cost = re.search(r"320 px about ([^;.]+)", texts)  # the time of this size and larger ones
    expected = re.search(r"Expected training time: about (.+?) on ", texts)
    assert cost and expected and cost.group(1) == expected.group(1)  # both the whole run's plan
    at.session_state["dataset"] = "small"
    at.run()
    assert choices(at)["image_size"] == 224  # small photos train at the backbone's native size
    assert not any("shrunk" in w.value for w in at.warning)
    at.selectbox(key="model_image_size").set_value(64).run()
    at.session_state["dataset"] = "big"
    at.run()
    assert choices(at)["image_size"] == 64  # the user's own choice is kept


def test_an_empty_or_unknown_timm_name_is_refused_in_plain_words(ws: Workspace) -> None:
    at = page()
    at.button(key="model_other_use").click().run()
    assert not at.exception
    assert any("Type the name of a timm model first" in w.value for w in at.warning)
    at.text_input(key="model_other_name").input("resnet18x").run()
    at.button(key="model_other_use").click().run()
    error = at.error[0].value
    assert "no model called" in error and "Did you mean" in error and "`" not in error and "''" not in error


def test_quick_or_thorough_with_the_expected_time_before_start(ws: Workspace) -> None:
    ws.add_sample()
    at = page(dataset="sample")
    assert not at.exception
    folds = at.radio(key="model_folds")
    assert folds.value == 5  # 120 photos: thorough by default (core.folds.default_folds)
    assert folds.options == ["Quick (one split)", "Thorough (5 folds)"]
    assert any("Quick (one split): about" in c.value and "Thorough (5 folds): about" in c.value for c in at.caption)
    assert any(c.value.startswith("Expected training time: about") for c in at.caption)
    folds.set_value(1).run()
    assert choices(at)["folds"] == 1


def test_the_expected_time_counts_no_start_up_while_a_warm_training_process_waits(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import core
    from core.backbones import DEFAULT_BACKBONE
    from core.eta import STARTUP_S
    from ui.model_views import _warm_process_waits, training_estimate

    picked = {"backbone": DEFAULT_BACKBONE, "strategy": "fine-tune", "epochs": 8, "image_size": 128}
    cold = training_estimate(picked, 120, None)
    asked: list[Path] = []
    monkeypatch.setattr(core, "ready_standby", lambda root: asked.append(Path(root)) or Path(root) / ".standby" / "1")
    _warm_process_waits.clear()  # asked at most every 2 s: a page's several estimates share one answer
    warm = training_estimate(picked, 120, None)
    assert training_estimate(picked, 120, None) == warm
    assert asked == [ws.root]  # this workspace's standby, asked once
    assert cold is not None and warm == pytest.approx(cold - STARTUP_S)
