"""core.advice: what to try next never recommends what this computer can't do (ImageNet weights offline)."""

from __future__ import annotations

import pytest

from core.advice import WEIGHTS_COMMAND, advise, offline_ways

CLASSES = ["ok", "scratch", "stain"]
# a run that learned nothing from scratch: collapse, few photos, under-fitting, a scratch start
METRICS = {"n": 10, "classes": CLASSES, "predicted_classes": ["ok"], "good_class": "ok", "catch_rate": 0.0,
           "false_alarm_rate": 0.0}
CHECK = {"counts": {"ok": 60, "scratch": 20, "stain": 5}}
EVENTS = [{"event": "epoch", "train_acc": a, "val_acc": v, "val_loss": 1.0} for a, v in [(0.4, 0.4), (0.5, 0.4)]]
SCRATCH = {"start": "scratch", "good_class": "ok"}


def _words(advice) -> str:
    return " | ".join(f"{a.title}: {a.detail} {a.command}" for a in advice)


def test_offline_advice_never_recommends_imagenet_and_names_the_ways_that_work() -> None:
    advice = advise(METRICS, EVENTS, CHECK, SCRATCH, pretrained=False, has_models=True)
    words = _words(advice)
    assert "pretrained" not in words and "starts from ImageNet" not in words
    assert "can't download ImageNet weights" in words  # says why, once
    assert words.count("a weights file or an earlier model") >= 3  # collapse, few photos, under-fitting
    titles = [a.title for a in advice]
    assert "Bring a weights file" in titles and "Build on an earlier model of yours" in titles
    assert "Try “Good parts only (anomaly detection)”" in titles
    weights = next(a for a in advice if a.title == "Bring a weights file")
    assert weights.command == WEIGHTS_COMMAND and "python -m core weights download" in weights.command
    assert "USB stick" in weights.detail and "on the Model page" in weights.detail
    good_parts = next(a for a in advice if a.title.startswith("Try “Good parts only"))
    assert "'stain' (5)" in good_parts.detail  # why it suits these photos: few photos of a defect type


def test_online_advice_still_suggests_imagenet() -> None:
    words = _words(advise(METRICS, EVENTS, CHECK, SCRATCH, pretrained=True))
    assert "starts from ImageNet" in words and "a pretrained or earlier model" in words
    assert WEIGHTS_COMMAND not in words


def test_offline_is_asked_of_the_hub_when_not_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # core.hub.pretrained_available answers no at once
    assert WEIGHTS_COMMAND in _words(advise(METRICS, EVENTS, CHECK, SCRATCH))


def test_a_run_that_did_not_start_from_scratch_gets_no_start_advice_offline() -> None:
    advice = advise(METRICS, EVENTS, CHECK, {"start": "imagenet"}, pretrained=False)
    assert not any(a.title in ("Started from scratch", "Bring a weights file") for a in advice)
    assert "pretrained" not in _words(advice)


def test_offline_ways_without_models_or_good_class() -> None:
    ways = offline_ways(has_models=False, good_class=None, where="above")
    assert [a.title for a in ways] == ["Bring a weights file", "Build on an earlier model"]
    assert "choose “A weights file” above" in ways[0].detail
    assert "Once any model has been trained here" in ways[1].detail
    assert all(a.level == "tip" for a in ways)
