"""Every page still loads for a cross-validated run (out-of-fold scores, a final model, no test split)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, TINY, make_dataset


@pytest.fixture(scope="module")
def cv_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("cv-ws")
    data = make_dataset(ws / "datasets" / "parts", {"ok": 12, "scratch": 9, "stain": 9}, size=40)
    cmd = [sys.executable, "-m", "core", "train", str(data), "--out", str(ws / "runs" / "cv1"), "--backbone", TINY,
           "--start", "scratch", "--image-size", "32", "--epochs", "2", "--batch-size", "8", "--good-class", "ok",
           "--folds", "3"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return ws


@pytest.fixture
def ws(cv_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dest = tmp_path / "ws"
    shutil.copytree(cv_workspace, dest)
    monkeypatch.setenv("GRAFT_WORKSPACE", str(dest))
    return dest


@pytest.mark.parametrize("page", ["3_train.py", "4_evaluate.py", "5_test.py", "6_runs.py"])
def test_pages_load_for_a_cross_validated_run(ws: Path, page: str) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=90)
    at.session_state["run"] = str(ws / "runs" / "cv1")
    at.session_state["dataset"] = "parts"
    at.run()
    assert not at.exception, at.exception
    if page == "4_evaluate.py":
        m = json.loads((ws / "runs" / "cv1" / "metrics.json").read_text())
        accuracy = next(x for x in at.metric if x.label == "Accuracy")
        assert accuracy.delta.startswith(f"{round(m['accuracy'] * m['n'])} of {m['n']} out-of-fold photos right")
        # the slider moves over the out-of-fold scores, the very photos of the headline: said so
        assert "out-of-fold scores" in at.select_slider[0].label
        assert any("tuned on these photos: optimistic" in md.value for md in at.markdown)
        assert any("cross-validation" in c.value.replace("\\", "") for c in at.caption)  # md-escaped
        assert not any("never saw" in c.value for c in at.caption)
    if page == "3_train.py":
        assert any("3-fold cross-validation" in c.value for c in at.caption)
