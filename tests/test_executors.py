"""The executor seam without a cluster: settings, the local default, the copy-back channel
(relay -> job log -> mirror) run for real on this computer, and how remote runs read when lost."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from core.cli import main
from core.config import RunConfig
from core.executors import (ExecutorSettings, executor_settings, get_executor, save_executor_settings,
                            where_label)
from core.executors.bundle import build_bundle, code_members, input_members
from core.executors.frames import PREFIX, encode, file_frames, pack_folder
from core.executors.mirror import Mirror
from core.jsonio import read_json, read_jsonl, write_json_atomic
from core.runs import launch_run, read_status
from tests.conftest import TINY


def _config(data: Path, out: Path, epochs: int = 2, **kw) -> RunConfig:
    return RunConfig(data=str(data), out=str(out), backbone=TINY, start="scratch", strategy="scratch", image_size=32,
                     batch_size=8, epochs=epochs, patience=100, folds=1, **kw)


def test_settings_come_from_options_then_environment_then_workspace(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GRAFT_EXECUTOR", "GRAFT_RAY_ADDRESS", "GRAFT_RAY_GPUS", "GRAFT_RAY_SHARED_FS"):
        monkeypatch.delenv(var, raising=False)
    assert executor_settings(tmp_path) == ExecutorSettings()  # nothing set: this computer
    save_executor_settings(tmp_path, ExecutorSettings(name="ray", ray_address="head:8265", gpus=1, shared_fs=True,
                                                      cluster_name="plant"))
    assert read_json(tmp_path / "settings.json")["executor"] == "ray"
    stored = executor_settings(tmp_path)
    assert (stored.name, stored.ray_address, stored.gpus, stored.shared_fs) == ("ray", "head:8265", 1.0, True)
    monkeypatch.setenv("GRAFT_RAY_ADDRESS", "other:8265")
    monkeypatch.setenv("GRAFT_RAY_SHARED_FS", "no")
    assert executor_settings(tmp_path).ray_address == "other:8265" and not executor_settings(tmp_path).shared_fs
    assert executor_settings(tmp_path, name="local").name == "local"
    assert get_executor(executor_settings(tmp_path, name="local")).name == "local"


def test_unknown_executor_is_refused_plainly(easy_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(Exception, match="Unknown executor"):
        ExecutorSettings(name="slurm")
    code = main(["train", str(easy_data), "--out", str(tmp_path / "run"), "--executor", "ray", "--ray-address", ""])
    assert code == 2 and "No Ray cluster address is set" in capsys.readouterr().err


def test_launch_run_goes_through_the_local_executor_by_default(easy_data: Path, tmp_path: Path) -> None:
    run = launch_run(_config(easy_data, tmp_path / "run", epochs=1, workspace=str(tmp_path)))
    status = read_status(run.path)
    assert status["executor"] == "local" and where_label(status).startswith("this computer")
    deadline = time.time() + 180
    while time.time() < deadline and read_status(run.path)["state"] in ("queued", "running"):
        time.sleep(0.2)
    status = read_status(run.path)
    assert status["state"] == "done" and where_label(status) == "this computer (CPU)", status


def _unpacked_bundle(config: RunConfig, dest: Path, resume: bool = False) -> dict:
    members, remote = input_members(config, resume)
    with zipfile.ZipFile(build_bundle(code_members() + members)) as zf:
        zf.extractall(dest)
    return remote


def _relay(workdir: Path, remote: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core.executors.relay", json.dumps(remote), *extra], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": "", "GRAFT_RELAY_CHECKPOINT_S": "0"})


def test_copy_back_channel_rebuilds_the_run_folder_here(easy_data: Path, tmp_path: Path) -> None:
    """What a cluster without a shared disk does, minus Ray: the job runs from its unpacked bundle,
    in a folder of its own, and its log (fed in odd-sized pieces) becomes the run folder here."""
    run = tmp_path / "here" / "run"
    workdir = tmp_path / "node" / "working_dir"
    remote = _unpacked_bundle(_config(easy_data, run, epochs=3), workdir)
    assert remote["data"].startswith("inputs/data/") and (workdir / remote["data"]).is_dir()
    log = _relay(workdir, remote).communicate(timeout=300)[0]
    mirror = Mirror(run, {"executor": "ray", "where": "Ray cluster test"})
    for i in range(0, len(log), 7001):  # lines arrive split across chunks
        mirror.feed(log[i:i + 7001])
    final = mirror.close()
    assert mirror.exit_code == 0 and final and final["state"] == "done"
    for name in ("status.json", "events.jsonl", "metrics.json", "predictions.csv", "check.json",
                 "model/model.safetensors", "model/model.json", "checkpoint/state.json", "log.txt"):
        assert (run / name).is_file(), name
    events = read_jsonl(run / "events.jsonl")
    assert [e["event"] for e in events].count("epoch") == 3 and events[-1]["event"] == "run_end"
    assert "graft-run-" in next(e for e in events if e["event"] == "run_start")["config"]["out"]
    assert read_status(run)["where"] == "Ray cluster test"


def test_a_final_status_waits_for_the_finished_files(tmp_path: Path) -> None:
    src = tmp_path / "node"
    (src / "model").mkdir(parents=True)
    (src / "model" / "model.json").write_text("{}")
    (src / "metrics.json").write_text('{"accuracy": 1}')
    mirror = Mirror(tmp_path / "run", {"executor": "ray"})
    mirror.feed(encode("status", status={"state": "running", "message": "Training"}) + "\n")
    mirror.feed(encode("status", status={"state": "done", "message": "Accuracy 100%"}) + "\n")
    assert read_json(tmp_path / "run" / "status.json")["state"] == "running"  # no model here yet
    frames = list(file_frames("result", pack_folder(src, [src / "model", src / "metrics.json"])))
    damaged = {k: v for k, v in json.loads(frames[-1][len(PREFIX):]).items() if k != "kind"}
    mirror.feed(encode("file", **{**damaged, "sha256": "0" * 64}) + "\n")
    assert not (tmp_path / "run" / "metrics.json").exists()  # a damaged archive is never unpacked
    mirror.feed("\n".join(frames) + "\n" + encode("exit", code=0))
    assert (tmp_path / "run" / "model" / "model.json").is_file()
    assert mirror.close()["state"] == "done" and read_json(tmp_path / "run" / "status.json")["state"] == "done"


def _remote_status(run: Path, **fields) -> None:
    run.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run / "status.json", {"state": "running", "message": "Training", "executor": "ray",
                                            "where": "Ray cluster plant", "client_pid": 999999,
                                            "client_host": "elsewhere", "pid": 1, "updated": time.time(),
                                            "ray": {"address": "http://127.0.0.1:9", "job_id": "graft-x"},
                                            **fields})


def test_a_remote_run_nobody_follows_reads_interrupted_once_the_cluster_is_silent(tmp_path: Path) -> None:
    _remote_status(tmp_path / "a")
    assert read_status(tmp_path / "a")["state"] == "running"  # the cluster didn't answer just now: not lost yet
    _remote_status(tmp_path / "b", updated=time.time() - 3600, heartbeat=time.time() - 3600)
    status = read_status(tmp_path / "b")
    assert status["state"] == "interrupted" and "Resume it from its last checkpoint" in status["message"]


def test_only_an_unfollowed_active_cluster_run_gets_a_new_follower(tmp_path: Path) -> None:
    from core.executors import follow_again

    _remote_status(tmp_path / "followed", client_pid=os.getpid(), client_host=socket.gethostname())
    _remote_status(tmp_path / "ended", state="done")
    assert not follow_again(tmp_path / "followed") and not follow_again(tmp_path / "ended")
    assert not follow_again(tmp_path)  # no status at all


def test_the_local_queue_ignores_runs_waiting_on_a_cluster(tmp_path: Path) -> None:
    from core.queue import _is_my_turn

    (tmp_path / "runs").mkdir()
    _remote_status(tmp_path / "runs" / "a-cluster-run", state="queued", created=0)
    mine = tmp_path / "runs" / "b-local-run"
    mine.mkdir()
    write_json_atomic(mine / "status.json", {"state": "queued", "created": time.time(), "pid": os.getpid(),
                                             "heartbeat": time.time()})
    assert _is_my_turn(tmp_path / "runs", mine)


def test_connection_test_answers_in_plain_words_when_nothing_listens() -> None:
    from core.executors.connection import check_connection

    report = check_connection(ExecutorSettings(name="ray", ray_address="127.0.0.1:9"), timeout_s=5)
    assert not report.ok
    assert report.message in ("No Ray cluster answers at http://127.0.0.1:9.",
                              "Training on a Ray cluster needs Ray on this computer.")
    assert report.details and "Traceback" not in report.message


def test_bundles_are_deterministic_and_carry_a_resume_checkpoint(easy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "state.json").write_text('{"epoch": 2}')
    members, remote = input_members(_config(easy_data, run), resume=True)
    first = build_bundle(code_members() + members)
    data = first.read_bytes()
    first.unlink()
    assert build_bundle(code_members() + members).read_bytes() == data  # same files, same bytes: uploaded once
    names = zipfile.ZipFile(first).namelist()
    assert "core/cli.py" in names and "inputs/checkpoint/state.json" in names
    assert not any("__pycache__" in n for n in names) and remote["out"] == "" and remote["workspace"] is None
