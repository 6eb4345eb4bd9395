"""Runs page (AppTest, real core, a tiny real model): the table, honest states, compare, delete, stop, build on."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.errors import GraftError
from core.numbers import fmt_pct
from tests.conftest import ROOT

PAGE = str(ROOT / "pages" / "6_runs.py")


def fake_run(ws: Path, name: str, state: str, pid: int, heartbeat: float, message: str = "") -> Path:
    """A copy of r1's config and curves with a given status (as the training process would leave it)."""
    run = ws / "runs" / name
    run.mkdir(parents=True)
    shutil.copy(ws / "runs" / "r1" / "config.json", run / "config.json")
    shutil.copy(ws / "runs" / "r1" / "events.jsonl", run / "events.jsonl")
    (run / "status.json").write_text(json.dumps({"state": state, "message": message, "pid": pid,
                                                 "heartbeat": heartbeat, "created": heartbeat - 60,
                                                 "started": heartbeat - 60}))
    return run


def page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest):
    return at.dataframe[0].value.set_index("Run")


def test_lists_the_run_with_its_name_verdict_and_numbers(ws: Path) -> None:
    at = page()
    m = json.loads((ws / "runs" / "r1" / "metrics.json").read_text())
    row = table(at).loc["r1"]
    assert row["Name"] == "From scratch · test_resnet · parts"  # strategy · backbone · dataset, in card words
    assert row["Verdict"] == {"not_usable": "Not usable", "promising": "Promising",
                              "ready": "Ready for a pilot"}[m["verdict"]["level"]]
    assert row["Status"] == "Finished" and row["Accuracy"] == fmt_pct(m["accuracy"])
    assert row["Catch rate"] == fmt_pct(m["catch_rate"]) and row["False alarms"] == fmt_pct(m["false_alarm_rate"])
    assert row["Dataset"] == "parts" and row["Photos"] == sum(m["splits"].values())
    assert "None" not in " ".join(map(str, row.values))


def test_the_useful_columns_come_first(ws: Path) -> None:
    from ui.runs_views import TABLE_COLUMNS

    assert TABLE_COLUMNS[:5] == ["Name", "Verdict", "Catch rate", "False alarms", "Accuracy"]
    at = page()
    assert at.dataframe[0].proto.column_order == TABLE_COLUMNS  # 8 short columns: they fit at 900 px


def test_a_cancelled_run_says_cancelled_not_none(ws: Path) -> None:
    run = fake_run(ws, "r4-cancelled", "stopped", pid=0, heartbeat=time.time())
    status = json.loads((run / "status.json").read_text())
    del status["started"]  # stopped while still waiting in line
    (run / "status.json").write_text(json.dumps(status))
    at = page()
    row = table(at).loc["r4-cancelled"]
    assert row["Status"] == "Cancelled" and row["Time"] == "–" and row["Verdict"] == "–"
    assert "None" not in " ".join(map(str, row.values))


def test_rename_a_run_and_the_name_is_used_everywhere(ws: Path) -> None:
    shutil.copytree(ws / "runs" / "r1", ws / "runs" / "r0")
    at = page()
    at.selectbox(key="runs_pick").set_value("r1").run()
    at.text_input(key="rename-r1").input("Line 3 · first try")
    at.button[[b.label for b in at.button].index("Rename")].click().run()
    assert not at.exception
    assert json.loads((ws / "runs" / "r1" / "name.json").read_text())["name"] == "Line 3 · first try"
    assert any("Renamed the run" in s.value for s in at.success)
    assert table(at).loc["r1", "Name"] == "Line 3 · first try"
    at.multiselect(key="compare_runs").set_value(["r1", "r0"]).run()
    side = at.dataframe[1].value
    assert list(side.columns) == ["", "Line 3 · first try", "From scratch · test_resnet · parts"]
    legend = [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"] if t.get("showlegend",
                                                                                                     True)]
    assert "Line 3 · first try" in legend


def test_a_name_too_long_is_refused_plainly(ws: Path) -> None:
    from core.runs_table import MAX_NAME, set_run_name

    with pytest.raises(GraftError, match=f"at most {MAX_NAME} characters"):
        set_run_name(ws / "runs" / "r1", "x" * (MAX_NAME + 1))


def test_dead_and_failed_runs_are_shown_honestly(ws: Path) -> None:
    fake_run(ws, "r2-dead", "running", pid=2 ** 22 + 12345, heartbeat=time.time() - 3600)
    fake_run(ws, "r3-failed", "failed", pid=0, heartbeat=time.time(), message="Out of memory while training.")
    at = page()
    t = table(at)
    assert t.loc["r2-dead", "Status"] == "Interrupted" and t.loc["r3-failed", "Status"] == "Failed"
    at.selectbox(key="runs_pick").set_value("r3-failed").run()
    assert any("Out of memory" in w.value for w in at.warning)
    assert [b for b in at.button if b.label == "Open in Evaluate"][0].disabled  # no model to open
    assert [b for b in at.button if b.label == "Download the Graft model"][0].disabled


def test_delete_a_finished_run(ws: Path) -> None:
    at = page(run=str(ws / "runs" / "r1"))
    at.checkbox(key="delete-sure-r1").check().run()
    at.button(key="delete-r1").click().run()
    assert not at.exception
    assert not (ws / "runs" / "r1").exists()
    assert any("Deleted r1" in s.value for s in at.success)
    assert "run" not in at.session_state  # it was the current run
    assert any("No runs yet" in i.value for i in at.info)


def test_an_active_run_can_be_stopped_not_deleted(ws: Path) -> None:
    run = fake_run(ws, "r9-live", "running", pid=os.getpid(), heartbeat=time.time())
    at = page()
    assert table(at).loc["r9-live", "Status"] == "Training"
    at.selectbox(key="runs_pick").set_value("r9-live").run()
    assert not [b for b in at.button if b.label == "Delete"]
    at.button(key="stop-run").click().run()
    assert (run / "stop").exists()


def test_compare_two_runs_side_by_side(ws: Path) -> None:
    shutil.copytree(ws / "runs" / "r1", ws / "runs" / "r0")
    at = page()
    at.multiselect(key="compare_runs").set_value(["r1", "r0"]).run()
    side = at.dataframe[1].value
    assert len(side.columns) == 3 and len(set(side.columns)) == 3  # two runs of one name are told apart
    acc = side.set_index("").loc["Accuracy"]
    assert acc.iloc[0] == acc.iloc[1] != "–" and acc.iloc[0].endswith("%")
    assert not [label for label in side[""] if label in ("F1 (macro)", "ROC AUC", "Macro F1")]  # plain words first
    assert len(at.get("plotly_chart")) == 1


def test_start_a_new_run_and_open_in_evaluate(ws: Path) -> None:
    path = str(ws / "runs" / "r1")
    at = page(choices={"backbone": "resnet18", "start": "scratch", "strategy": "scratch", "epochs": 30, "lr": 0.003,
                       "image_size": 160, "batch_size": 32, "seed": 0})
    [b for b in at.button if b.label == "New run from this model"][0].click().run()
    assert at.session_state["choices"]["start"] == f"run:{path}"
    assert at.session_state["choices"]["strategy"] == "fine-tune"  # scratch contradicts a start model
    assert at.session_state["start"] == f"run:{path}"
    [b for b in at.button if b.label == "Open in Evaluate"][0].click().run()
    assert at.session_state["run"] == path


def test_the_graft_model_download_shows_its_size(ws: Path) -> None:
    at = page()
    labels = [b.label for b in at.get("download_button")]
    assert any(label.startswith("Download the Graft model (") and label.endswith(("KB)", "MB)")) for label in labels)
