"""Good parts only (anomaly detection) in the app: the strategy card is suggested for few or no defect photos,
and the Evaluate page shows a run whose held-out photos are all good parts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.anomaly_choice import recommend_anomaly
from core.workspace import Workspace
from tests.conftest import ROOT, make_dataset

MODEL_PAGE, EVALUATE_PAGE = str(ROOT / "pages" / "2_model.py"), str(ROOT / "pages" / "4_evaluate.py")


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    monkeypatch.setenv("GRAFT_WORKSPACE", str(root))
    make_dataset(root / "datasets" / "goodonly", {"ok": 24}, size=64)
    Workspace(root).set_good_class("goodonly", "ok")
    return root


def test_recommend_anomaly_for_few_or_no_defect_photos() -> None:
    assert "only photos of good parts" in recommend_anomaly({"ok": 30}, "ok")
    assert "'dent' (3)" in recommend_anomaly({"ok": 30, "dent": 3, "scratch": 40}, "ok")
    assert recommend_anomaly({"ok": 30, "dent": 30}, "ok") is None
    assert recommend_anomaly({"ok": 30}, None) is None


def test_strategy_card_is_suggested_for_a_good_only_dataset(ws: Path) -> None:
    at = AppTest.from_file(MODEL_PAGE, default_timeout=90)
    at.session_state["dataset"] = "goodonly"
    at.run()  # offline: the default start is from scratch, which locks the strategy
    assert not any("Good parts only" in i.value for i in at.info)
    at.session_state["choices"] = {**at.session_state["choices"], "start": "file:/weights/resnet10t.safetensors",
                                   "strategy": "feature-extraction"}
    at.radio(key="model_start").set_value("file")
    at.run()
    assert not at.exception, at.exception
    infos = [i.value for i in at.info]
    assert any(i.startswith("Recommended: **Good parts only (anomaly detection)**") for i in infos), infos
    assert not any("Feature extraction" in i for i in infos)  # a classifier can't learn from one class
    texts = [m.value for m in at.markdown]
    assert "**Good parts only (anomaly detection)** :primary[:material/star:]" in texts  # starred by its name
    assert ":primary[Recommended]" in [c.value for c in at.caption]
    assert at.button(key="use_strategy_anomaly")


def test_evaluate_page_shows_a_run_without_defect_photos(ws: Path) -> None:
    run = ws / "runs" / "a1"
    cmd = [sys.executable, "-m", "core", "train", str(ws / "datasets" / "goodonly"), "--out", str(run),
           "--strategy", "anomaly", "--good-class", "ok", "--backbone", "resnet10t", "--start", "scratch",
           "--image-size", "64"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    at = AppTest.from_file(EVALUATE_PAGE, default_timeout=60)
    at.session_state["run"] = str(run)
    at.run()
    assert not at.exception, at.exception
    assert any(m.label == "False alarms" for m in at.metric), [m.label for m in at.metric]
