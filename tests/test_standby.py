"""The warm training process (core/standby.py): Start hands the run to a process that loaded PyTorch already."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from core import standby
from core.jsonio import read_json, write_json_atomic
from core.runs import launch_run, pid_alive, read_status
from core.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("GRAFT_STANDBY", "1")
    workspace = Workspace(tmp_path / "ws")
    yield workspace
    standby.stop_standbys(workspace.root)  # never leave a waiting process behind


def _fake_standby(ws: Workspace, ready: bool = True) -> Path:
    """A standby folder as a live standby leaves it (this test process stands in for its pid)."""
    folder = standby.standby_root(ws.root) / "fake"
    folder.mkdir(parents=True)
    write_json_atomic(folder / standby.SPAWNED, {"pid": os.getpid(), "fingerprint": standby.fingerprint()})
    if ready:
        write_json_atomic(folder / standby.READY, {"pid": os.getpid()})
    return folder


def _wait(predicate, timeout: float = 120.0, what: str = "") -> None:
    end = time.time() + timeout
    while not predicate():
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_run_handed_to_the_standby_trains_in_it_and_logs_to_the_run(ws: Workspace) -> None:
    info = ws.add_sample("sample")
    assert standby.ensure_standby(ws.root)
    assert standby.ensure_standby(ws.root)  # one is on its way: no second one
    assert len(standby._folders(ws.root)) == 1
    _wait(lambda: standby.ready_standby(ws.root) is not None, what="the standby to load PyTorch")
    pid = read_json(standby._folders(ws.root)[0] / standby.SPAWNED)["pid"]

    config = ws.new_run_config(info.name, backbone="resnet10t", start="scratch", strategy="scratch", epochs=1,
                               image_size=32, folds=1)
    run = launch_run(config)
    assert read_status(run.path)["pid"] == pid  # the warm process, not a new one
    _wait(lambda: read_status(run.path).get("state") not in ("queued", "running"), what="the run to end")

    assert read_status(run.path)["state"] == "done"
    first = run.events()[0]
    assert first["phase"] == "start" and first["eta_s"] < 60
    assert "done:" in run.log_file.read_text()  # the CLI's last line went to the run's log
    _wait(lambda: not standby._tidy(ws.root), timeout=30, what="the used standby to end")
    assert standby.ready_standby(ws.root) is None


def test_stopping_the_standbys_ends_a_waiting_one(ws: Workspace) -> None:
    standby.ensure_standby(ws.root)
    pid = read_json(standby._folders(ws.root)[0] / standby.SPAWNED)["pid"]
    standby.stop_standbys(ws.root)
    _wait(lambda: not pid_alive(pid), timeout=60, what="the standby to end")


def test_a_claimed_standby_is_handed_one_run_only(ws: Workspace) -> None:
    folder = _fake_standby(ws)
    log = ws.root / "run.log"
    assert standby.hand_over(ws.root, ["--config", "c.json"], log) == os.getpid()
    assert read_json(folder / standby.GO) == {"args": ["--config", "c.json"], "log": str(log)}
    assert standby.hand_over(ws.root, ["--config", "d.json"], log) is None  # a second tab starts its own process


def test_a_standby_of_another_environment_or_code_is_not_used(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_standby(ws)
    monkeypatch.setenv("GRAFT_SOMETHING_NEW", "1")  # e.g. the app restarted with other settings
    assert standby.ready_standby(ws.root) is None
    assert standby.hand_over(ws.root, ["--config", "c.json"], ws.root / "run.log") is None


def test_a_standby_of_older_code_is_ended_and_one_being_started_is_left_alone(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _fake_standby(ws)
    write_json_atomic(old / standby.SPAWNED, {"pid": os.getpid(), "fingerprint": "older code"})
    starting = standby.standby_root(ws.root) / "starting"
    starting.mkdir()  # its pid isn't written yet
    assert standby._waiting_and_current(ws.root) is True  # the one being started counts
    assert not old.exists() and starting.exists()  # the old one was told to end (its folder went)


def test_what_loading_torch_sets_in_the_environment_does_not_count(ws: Workspace,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_standby(ws)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/tmp/elsewhere")  # the app's warm-up imported torch since
    assert standby.ready_standby(ws.root) is not None


def test_no_standby_while_a_run_trains_here_or_when_turned_off(ws: Workspace,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    run = ws.runs_dir / "20260101-000000-run-abcd"
    run.mkdir(parents=True)
    write_json_atomic(run / "status.json", {"state": "running", "pid": os.getpid(), "heartbeat": time.time()})
    assert standby.ensure_standby(ws.root) is False  # it would take the run's CPU
    assert standby._folders(ws.root) == []
    monkeypatch.setenv("GRAFT_STANDBY", "0")
    (run / "status.json").unlink()
    assert standby.ensure_standby(ws.root) is False and standby._folders(ws.root) == []


def test_an_unclaimed_standby_retires_and_a_dead_one_is_tidied(ws: Workspace,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _fake_standby(ws)
    monkeypatch.setattr(standby, "IDLE_S", 0.0)
    assert standby._wait_for_go(folder) is None
    assert (folder / standby.RETIRED).exists() and not (folder / standby.READY).exists()
    assert standby.hand_over(ws.root, ["--config", "c.json"], ws.root / "run.log") is None
    write_json_atomic(folder / standby.SPAWNED, {"pid": 2**22 + 12345, "fingerprint": standby.fingerprint()})
    assert standby._tidy(ws.root) == [] and not folder.exists()


def test_a_standby_claimed_as_it_retires_waits_for_its_run(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _fake_standby(ws, ready=False)  # the app renamed ready.json a moment ago
    write_json_atomic(folder / standby.CLAIMED, {"pid": os.getpid()})
    monkeypatch.setattr(standby, "IDLE_S", 0.0)
    go = {"args": ["--config", "c.json"], "log": "x"}
    later = threading.Timer(0.3, write_json_atomic, (folder / standby.GO, go))
    later.start()
    try:
        assert standby._wait_for_go(folder) == go  # it doesn't retire: its run is on the way
    finally:
        later.cancel()
