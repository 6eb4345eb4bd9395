"""Train page (AppTest, real core, tiny model): start a real run, watch it, reattach, stop, start again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import FINAL_STATES, read_status
from core.jsonio import write_json_atomic
from core.numbers import fmt_pct
from core.workspace import Workspace
from tests.conftest import ROOT, TINY
from tests.pages.tiny_run import copy_workspace, trained_workspace

PAGE = str(ROOT / "pages" / "3_train.py")
TINY_CHOICES = {"backbone": TINY, "start": "scratch", "strategy": "scratch", "epochs": 2, "image_size": 32,
                "batch_size": 16, "lr": 0.003, "seed": 0}


@pytest.fixture
def trained(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """Dataset 'parts' (40 photos) and run 'r1', trained beforehand with ``python -m core train``."""
    root = copy_workspace(trained_workspace(tmp_path_factory), tmp_path / "ws")
    monkeypatch.setenv("GRAFT_WORKSPACE", str(root))
    return Workspace(root)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("GRAFT_WORKSPACE", str(tmp_path / "ws"))
    return Workspace(tmp_path / "ws")


def page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def wait_until_final(run: str | Path, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(run)
        if status["state"] in FINAL_STATES:
            return status
        time.sleep(0.5)
    raise AssertionError(f"run did not finish: {read_status(run)}")


def fake_run(ws: Workspace, run_id: str, state: str, *, events: list[dict] = (), pid: int | None = None,
             created: float | None = None, message: str = "") -> Path:
    """A run folder as the training process would leave it (no process needed)."""
    path = ws.runs_dir / run_id
    path.mkdir(parents=True)
    write_json_atomic(path / "config.json", {"data": str(ws.datasets_dir / "parts"), "out": str(path),
                                             **TINY_CHOICES, "workspace": str(ws.root)})
    now = time.time()
    write_json_atomic(path / "status.json", {"state": state, "message": message, "pid": pid or os.getpid(),
                                             "heartbeat": now, "created": created or now, "started": now})
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption]
                     + [e.value for e in [*at.error, *at.warning, *at.info, *at.success]])


def test_without_a_dataset_it_points_to_the_data_page(ws: Workspace) -> None:
    at = page()
    assert not at.exception
    assert "Choose or add a dataset on the Data page first." in at.info[0].value
    assert at.button(key="train_to_data")


def test_a_finished_run_shows_curves_and_headline_numbers(trained: Workspace) -> None:
    at = page(run=str(trained.runs_dir / "r1"), dataset="parts")
    assert not at.exception
    assert at.get("plotly_chart")[0].key == "curves"
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) == {"Accuracy", "Defects caught (catch rate)", "False alarms", "Balanced score"}
    assert all(v.endswith("%") for k, v in metrics.items() if k != "Balanced score")
    stored = json.loads((trained.runs_dir / "r1" / "metrics.json").read_text())
    assert metrics["Accuracy"] == fmt_pct(stored["accuracy"])  # the one percentage format, as on Evaluate
    assert "Out of 100 defective parts the model would catch about" in texts(at)
    assert "Training finished in" in texts(at)
    from core.verdict import judge_run

    verdict = judge_run(trained.runs_dir / "r1")
    banner = [*at.error, *at.warning, *at.success]
    assert any(verdict.title in b.value for b in banner)  # the verdict, not a plain "finished"
    if verdict.level != "ready":
        assert not [b for b in at.success if verdict.title in b.value]  # never green unless ready
    assert "trains on this computer" in texts(at)
    assert at.button(key="train_to_evaluate").label == "Evaluate in detail"
    assert at.button(key="train_to_test").label == "Test on new photos"
    assert not [b for b in at.button if b.key == "train_stop"]
    assert "Start a new run" in [e.label for e in at.expander]


def test_start_launches_a_run_that_finishes(trained: Workspace) -> None:
    at = page(dataset="parts", choices=dict(TINY_CHOICES))
    assert "test\\_resnet · From scratch · 2 epochs at 32 px" in texts(at)  # card names, no "scratch · scratch"
    at.button(key="train_start").click().run()
    assert not at.exception
    run = Path(at.session_state["run"])
    try:
        assert run.parent == trained.runs_dir
        config = json.loads((run / "config.json").read_text())
        assert (config["backbone"], config["image_size"], config["epochs"]) == (TINY, 32, 2)
        assert config["workspace"] == str(trained.root) and config["good_class"] is None
        assert "Training started in the background" in texts(at)
        assert [b for b in at.button if b.key == "train_stop"]  # Stop is there while it is active
        status = wait_until_final(run)
    finally:
        if read_status(run)["state"] not in FINAL_STATES:
            (run / "stop").write_text("stop")
    assert status["state"] == "done", status
    at.run()
    assert not at.exception
    assert at.get("plotly_chart")[0].key == "curves"
    assert {m.label for m in at.metric} >= {"Accuracy", "Balanced score"}
    assert not [b for b in at.button if b.key == "train_stop"]


RUNNING_EVENTS = [
    {"event": "progress", "phase": "check", "done": 40, "total": 40, "eta_s": 0},
    {"event": "run_start", "classes": ["ok", "scratch", "stain"]},
    {"event": "epoch", "epoch": 1, "epochs": 5, "train_loss": 1.1, "val_loss": 1.0, "train_acc": 0.4, "val_acc": 0.5,
     "images_per_s": 120.0, "best": True},
    {"event": "progress", "phase": "train", "epoch": 2, "epochs": 5, "batch": 1, "batches": 2, "loss": 0.9,
     "images_per_s": 150.0, "eta_s": 42},
]


def test_after_a_refresh_the_page_reattaches_to_the_active_run(trained: Workspace) -> None:
    run = fake_run(trained, "20990101-000000-live", "running", events=RUNNING_EVENTS)
    at = page()  # a fresh session: no "run" in session state
    assert not at.exception
    assert at.session_state["run"] == str(run)
    bar = at.get("progress")[0]
    assert bar.value == 30 and bar.text == "Epoch 2 of 5 · 150 photos/s · about 42 s left"
    assert at.get("plotly_chart")[0].key == "curves"
    at.button(key="train_stop").click().run()
    assert not at.exception
    assert (run / "stop").is_file()
    stop = at.button(key="train_stop")
    assert stop.label == "Stopping after the current step…" and stop.disabled


def test_after_a_refresh_a_run_that_just_ended_is_still_shown(trained: Workspace) -> None:
    at = page()  # fresh session; r1 ended minutes ago (the template was trained in this test session)
    assert at.session_state["run"] == str(trained.runs_dir / "r1")
    assert at.get("plotly_chart")[0].key == "curves"


def test_nothing_is_attached_when_no_run_is_recent(ws: Workspace) -> None:
    ws.add_sample()
    old = fake_run(ws, "r-old", "done")
    write_json_atomic(old / "status.json", {"state": "done", "updated": time.time() - 3600})
    at = page(dataset="sample")
    assert "run" not in at.session_state
    assert at.button(key="train_start").label == "Start training"


def test_a_second_run_waits_in_the_queue(trained: Workspace) -> None:
    first = fake_run(trained, "20990101-000000-a", "running", events=RUNNING_EVENTS, created=1.0)
    second = fake_run(trained, "20990101-000001-b", "queued", created=2.0)
    at = page(run=str(second))
    assert not at.exception
    assert "Queued: 1 run(s) ahead of this one." in at.info[0].value
    assert at.button(key="train_stop").label == "Cancel"
    assert "Other runs in progress" in texts(at)
    at.button(key=f"show_{first.name}").click().run()
    assert at.session_state["run"] == str(first)


def test_a_failed_run_says_what_to_do_next(trained: Workspace) -> None:
    run = fake_run(trained, "r-failed", "failed", message="The dataset has only one class.")
    at = page(run=str(run))
    assert not at.exception
    assert at.error[0].value == "The dataset has only one class\\."
    assert "What to do next" in texts(at)
    assert not [b for b in at.button if b.key == "train_again"]  # the same settings would fail again
    assert at.button(key="failed_to_model").label == "Change the model settings"


def test_an_interrupted_run_can_be_started_again(trained: Workspace) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = fake_run(trained, "r-dead", "running", pid=dead.pid, events=RUNNING_EVENTS)
    at = page(run=str(run), dataset="parts")
    assert not at.exception
    assert "ended unexpectedly" in at.warning[0].value
    at.button(key="train_again").click().run()
    assert not at.exception
    again = Path(at.session_state["run"])
    (again / "stop").write_text("stop")  # only the relaunch is under test; end it at once
    assert again != run and again.parent == trained.runs_dir
    assert json.loads((again / "config.json").read_text())["epochs"] == 2
    assert wait_until_final(again)["state"] in ("stopped", "done")


def test_an_interrupted_run_with_a_checkpoint_continues_in_its_folder(trained: Workspace) -> None:
    run = trained.runs_dir / "r1"  # trained for 2 epochs, with a checkpoint; now pretend its process died
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    status = json.loads((run / "status.json").read_text())
    write_json_atomic(run / "status.json", {**status, "state": "running", "pid": dead.pid, "heartbeat": time.time()})
    at = page(run=str(run))
    assert "ended unexpectedly" in at.warning[0].value
    at.button(key="train_resume").click().run()
    assert not at.exception
    assert at.session_state["run"] == str(run)
    final = wait_until_final(run)
    assert final["state"] == "done", final
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "resumed" for e in events)


def test_a_not_usable_run_is_never_green(trained: Workspace) -> None:
    run = trained.runs_dir / "r1"
    metrics = json.loads((run / "metrics.json").read_text())
    write_json_atomic(run / "metrics.json", {**metrics, "catch_rate": 0.0, "defects_caught": 0,
                                              "verdict": {"level": "not_usable", "reason": "x"}})
    at = page(run=str(run), dataset="parts")
    assert not at.exception
    from core.verdict import judge_run

    assert judge_run(run).level == "not_usable"
    assert not at.success and any("Not usable" in e.value for e in at.error)


def test_a_cancelled_queued_run_says_cancelled(trained: Workspace) -> None:
    run = fake_run(trained, "r-cancelled", "stopped", message="Stopped before it started.")
    at = page(run=str(run))
    assert not at.exception
    assert "Cancelled before it started" in texts(at)
    assert "Stopping" not in texts(at) and "Stopped" not in texts(at)


def test_a_queued_run_being_cancelled_says_cancelling(trained: Workspace) -> None:
    fake_run(trained, "20990101-000000-a", "running", events=RUNNING_EVENTS, created=1.0)
    second = fake_run(trained, "20990101-000001-b", "queued", created=2.0)
    (second / "stop").write_text("stop")
    at = page(run=str(second))
    assert at.button(key="train_stop").label == "Cancelling…"


def test_arriving_from_model_shows_the_new_runs_settings_and_start_first(trained: Workspace) -> None:
    at = page(run=str(trained.runs_dir / "r1"), dataset="parts", train_fresh=True, choices=dict(TINY_CHOICES))
    assert not at.exception
    assert at.markdown[0].value == "#### New run" or "#### New run" in [m.value for m in at.markdown][:3]
    assert at.button[0].key == "train_start"  # Start is the first button on the page
    assert "The previous run" in at.expander[0].label
    assert "2 epochs at 32 px" in texts(at)
