"""The user's place (dataset, run, model settings) restored from the URL or last_used.json (AppTest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.workspace import Workspace
from tests.conftest import ROOT
from ui.place import place_params

APP = str(ROOT / "app.py")


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("GRAFT_WORKSPACE", str(tmp_path / "ws"))
    ws = Workspace(tmp_path / "ws")
    ws.add_sample()
    return ws


def sidebar(at: AppTest) -> str:
    return "\n".join(c.value for c in at.sidebar.caption)


def test_last_used_json_is_written_atomically_and_merged(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    assert ws.last_used() == {}
    ws.remember(dataset="a", choices={"epochs": 8})
    ws.remember(run="r1")
    assert ws.last_used() == {"dataset": "a", "choices": {"epochs": 8}, "run": "r1"}
    ws.remember(dataset=None)
    assert "dataset" not in json.loads(ws.last_used_file.read_text())
    ws.last_used_file.write_text("{broken")
    assert ws.last_used() == {}


def test_a_new_session_continues_from_last_used(ws: Workspace) -> None:
    ws.remember(dataset="sample", choices={"epochs": 8, "image_size": 96, "backbone": "resnet18.a1_in1k", "views": 1})
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.session_state["dataset"] == "sample"
    assert "sample" in sidebar(at) and "none yet" not in sidebar(at).split("Run")[0]
    at.switch_page("pages/2_model.py").run()
    c = at.session_state["choices"]
    assert (c["epochs"], c["image_size"], c["views"]) == (8, 96, 1)  # not silently back to the defaults
    assert at.query_params["dataset"] in ("sample", ["sample"]) and at.query_params["epochs"] in ("8", ["8"])


def test_the_url_wins_over_last_used_and_bad_values_are_dropped(ws: Workspace) -> None:
    ws.remember(dataset="gone", choices={"epochs": 30})
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"dataset": "sample", "epochs": "12", "size": "12345", "strategy": "nonsense",
                            "start": "run:../../etc", "run": "../x"})
    at.run()
    assert not at.exception
    assert at.session_state["dataset"] == "sample"
    at.switch_page("pages/2_model.py").run()
    c = at.session_state["choices"]
    assert c["epochs"] == 12 and c["image_size"] != 12345 and c["strategy"] != "nonsense"
    assert not str(c["start"]).startswith("run:")
    assert "run" not in at.session_state


def test_the_sidebar_says_none_chosen_when_datasets_exist(ws: Workspace) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "none chosen: open one of the 1 saved on the Data page" in sidebar(at)


def test_place_params_use_run_ids_and_file_names_not_paths() -> None:
    params = place_params("sample", "/ws/runs/r1", {"start": "run:/ws/runs/r0", "lr": 0.0005, "image_size": 96})
    assert params == {"dataset": "sample", "run": "r1", "start": "run:r0", "lr": "0.0005", "size": "96"}
