"""The ``ray`` executor on a real (local) Ray head behaves like ``local``: run folder, live events,
stop, queueing, "interrupted" when the worker is killed, and resume; with and without a shared filesystem."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -r requirements-cluster.txt)")

from core.config import RunConfig  # noqa: E402
from core.executors import ExecutorSettings, where_label  # noqa: E402
from core.executors.ray_jobs import RayExecutor, job_client  # noqa: E402
from core.jsonio import read_json, read_jsonl, write_json_atomic  # noqa: E402
from core.runs import launch_run, read_status, request_stop  # noqa: E402
from tests.conftest import ROOT, TINY  # noqa: E402

pytestmark = pytest.mark.cluster

ARGS = ["--backbone", TINY, "--start", "scratch", "--image-size", "32", "--batch-size", "8", "--strategy", "scratch",
        "--patience", "100", "--folds", "1"]


def _cli(data: Path, out: Path, head, shared: bool, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "core", "train", str(data), "--out", str(out), *ARGS, "--executor", "ray",
           "--ray-address", head.address, "--shared-fs", "yes" if shared else "no", "--cluster-name", "test-head",
           *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kinds(run: Path) -> list[str]:
    return [e["event"] for e in read_jsonl(run / "events.jsonl")]


def _wait(predicate, timeout: float = 240, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("shared", [True, False], ids=["shared-fs", "copied-back"])
def test_cli_run_on_the_cluster_leaves_the_run_folder_here(easy_data: Path, tmp_path: Path, ray_head, shared: bool) -> None:
    run = tmp_path / "run"
    proc = _cli(easy_data, run, ray_head, shared, "--epochs", "6")
    _wait(lambda: "epoch" in _kinds(run) or proc.poll() is not None, what="a live epoch event")
    assert proc.poll() is None, "the first epoch event arrived only after the run ended: events are not live"
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, (out, err)
    assert out.strip().splitlines()[-1].startswith("done:")
    for name in ("config.json", "status.json", "events.jsonl", "metrics.json", "predictions.csv",
                 "model/model.safetensors", "model/model.json", "log.txt"):
        assert (run / name).is_file(), name
    kinds = _kinds(run)
    assert kinds[0] != "epoch" and kinds.count("epoch") == 6 and kinds[-1] == "run_end"
    status = read_status(run)
    assert status["state"] == "done" and status["executor"] == "ray" and status["ray"]["shared_fs"] is shared
    assert where_label(status) == "Ray cluster test-head (CPU)"
    start = next(e for e in read_jsonl(run / "events.jsonl") if e["event"] == "run_start")
    if shared:
        assert start["config"]["out"] == str(run.resolve())  # written in place
        return
    assert start["config"]["out"] != str(run.resolve()) and "graft-run-" in start["config"]["out"]
    # the cluster keeps the job log: a follower that lost track rebuilds the folder from it, without duplicates
    shutil.rmtree(run / "model")
    again = subprocess.run([sys.executable, "-m", "core", "train", "--config", str(run / "config.json"), "--executor",
                            "ray", "--ray-address", ray_head.address, "--follow"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert again.returncode == 0, again.stderr
    assert (run / "model" / "model.safetensors").is_file() and _kinds(run) == kinds


def test_exit_code_is_the_runs_own(tmp_path: Path, ray_head) -> None:
    missing = tmp_path / "no-such-photos"
    missing.mkdir()
    proc = _cli(missing, tmp_path / "run", ray_head, True, "--epochs", "1")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, (out, err)  # the training command's user error, as locally
    assert err.strip().startswith("error:") and read_status(tmp_path / "run")["state"] == "failed"


def _executor(head, shared: bool, **kw) -> RayExecutor:
    return RayExecutor(ExecutorSettings(name="ray", ray_address=head.address, shared_fs=shared, **kw))


def _config(data: Path, out: Path, epochs: int) -> RunConfig:
    return RunConfig(data=str(data), out=str(out), backbone=TINY, start="scratch", strategy="scratch", image_size=32,
                     batch_size=8, epochs=epochs, patience=100, folds=1)


def test_stop_keeps_the_best_model_so_far(easy_data: Path, tmp_path: Path, ray_head) -> None:
    run = tmp_path / "run"
    launch_run(_config(easy_data, run, 300), executor=_executor(ray_head, shared=False))  # the app's path
    _wait(lambda: "epoch" in _kinds(run), what="an epoch")
    assert read_status(run)["state"] == "running"
    request_stop(run)
    _wait(lambda: read_status(run)["state"] not in ("queued", "running"), what="the stop")
    status = read_status(run)
    assert status["state"] == "stopped" and "best model so far was kept" in status["message"], status
    assert (run / "model" / "model.safetensors").is_file()


def test_waiting_for_resources_reads_queued_and_stops_before_starting(easy_data: Path, tmp_path: Path,
                                                                       ray_head) -> None:
    run = tmp_path / "run"
    executor = _executor(ray_head, shared=True, resources={"graft_test_gpu_that_never_frees": 1})
    launch_run(_config(easy_data, run, 2), executor=executor)
    _wait(lambda: (read_json(run / "status.json", {}) or {}).get("ray", {}).get("job_id"), what="the submission")
    job_id = read_json(run / "status.json")["ray"]["job_id"]
    client = job_client(ray_head.address)
    _wait(lambda: _has_job(client, job_id), what="the job to reach the cluster")
    time.sleep(2)
    assert str(client.get_job_status(job_id).value) == "PENDING"  # Ray's own queue: no node has the resource
    status = read_status(run)
    assert status["state"] == "queued" and "Waiting for the cluster" in status["message"], status
    request_stop(run)
    _wait(lambda: read_status(run)["state"] != "queued", what="the stop")
    assert read_status(run)["state"] == "stopped" and read_status(run)["message"] == "Stopped before it started."


def _has_job(client, job_id: str) -> bool:
    try:
        client.get_job_status(job_id)
        return True
    except Exception:
        return False


def _kill_worker(run: Path, relay_too: bool) -> None:
    """What a lost node does to the run: its training process (and relay) die at once."""
    pid = int(read_json(run / "status.json")["pid"])
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(pid, signal.SIGKILL)
    if relay_too:
        os.kill(parent, signal.SIGKILL)


@pytest.mark.parametrize("shared", [True, False], ids=["shared-fs", "copied-back"])
def test_killed_worker_reads_interrupted_then_resumes(easy_data: Path, tmp_path: Path, ray_head, shared: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_RELAY_CHECKPOINT_S", "0")  # copy every checkpoint back (default: every 5 minutes)
    run = tmp_path / "run"
    executor = _executor(ray_head, shared=shared)
    launch_run(_config(easy_data, run, 400), executor=executor)
    _wait(lambda: int((read_json(run / "checkpoint" / "state.json", {}) or {}).get("epoch", 0)) >= 2,
          what="a checkpoint here")
    _kill_worker(run, relay_too=not shared)
    _wait(lambda: read_status(run)["state"] not in ("queued", "running"), what="the loss to be noticed")
    status = read_status(run)
    assert status["state"] == "interrupted" and "Resume" in status["message"], status
    done_before = int(read_json(run / "checkpoint" / "state.json")["epoch"])
    config = read_json(run / "config.json")
    write_json_atomic(run / "config.json", {**config, "epochs": done_before + 2})
    assert executor.run(_config(easy_data, run, done_before + 2), resume=True) == 0
    assert read_status(run)["state"] == "done"
    numbers = [e["epoch"] for e in read_jsonl(run / "events.jsonl") if e["event"] == "epoch"]
    assert numbers[-2:] == [done_before + 1, done_before + 2] and "resumed" in _kinds(run)
    assert (run / "model" / "model.safetensors").is_file()


def test_sweep_trials_launch_through_the_cluster_and_wait_for_room(easy_data: Path, tmp_path: Path, ray_head) -> None:
    from core.sweeps import SweepSpec, run_sweep

    spec = SweepSpec(_config(easy_data, tmp_path, 1), ("scratch",), (0.003, 0.01))
    record = run_sweep(spec, tmp_path / "sweep", executor=_executor(ray_head, shared=False, cpus=2), parallel=2,
                       poll_s=0.5)  # each trial reserves both CPUs of the head: the cluster runs one at a time
    assert record["state"] == "done" and record["best"] and len(record["trials"]) == 2
    spans = []
    for trial in record["trials"]:
        events = read_jsonl(Path(trial["run"]) / "events.jsonl")
        spans.append((events[0]["time"], events[-1]["time"]))
        assert read_status(trial["run"])["state"] == "done"
    (start_a, end_a), (start_b, end_b) = sorted(spans)
    assert start_b >= end_a - 1.0  # the second waited in Ray's queue until the first gave its CPUs back
