"""A killed training process is reported honestly and can resume from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.jsonio import read_json, read_jsonl, write_json_atomic
from core.runs import read_status
from tests.conftest import ROOT

ARGS = ["--backbone", "test_resnet", "--start", "scratch", "--image-size", "32", "--batch-size", "8",
        "--strategy", "scratch", "--patience", "100", "--folds", "1"]  # one split: it resumes from checkpoints


def _epochs(run: Path) -> list[dict]:
    return [e for e in read_jsonl(run / "events.jsonl") if e["event"] == "epoch"]


def _checkpointed_epoch(run: Path) -> int:
    state = read_json(run / "checkpoint" / "state.json", {}) or {}
    return int(state.get("epoch", 0))


def _start(data: Path, run: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "core", "train", str(data), "--out", str(run), *ARGS, *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_9_reads_interrupted_then_resumes(easy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _start(easy_data, run, "--epochs", "400")
    deadline = time.time() + 120
    while time.time() < deadline and _checkpointed_epoch(run) < 2:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    status = read_status(run)
    assert status["state"] == "interrupted" and "resume" in status["message"]
    done_before = _checkpointed_epoch(run)
    assert done_before >= 2
    # resume with fewer total epochs so the test ends quickly
    config = json.loads((run / "config.json").read_text())
    write_json_atomic(run / "config.json", {**config, "epochs": done_before + 2})
    result = subprocess.run([sys.executable, "-m", "core", "train", "--config", str(run / "config.json"), "--resume"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert read_status(run)["state"] == "done"
    numbers = [e["epoch"] for e in _epochs(run)]
    assert numbers[-2:] == [done_before + 1, done_before + 2]
    assert (run / "model" / "model.safetensors").is_file()


def test_status_file_is_never_half_written(tmp_path: Path) -> None:
    """Atomic replace: a reader sees the old or the new JSON, never a torn one."""
    path = tmp_path / "status.json"
    write_json_atomic(path, {"state": "running", "n": 0})
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[1]); from core.jsonio import write_json_atomic\n"
        "i = 0\nwhile True:\n    i += 1; write_json_atomic(sys.argv[2], {'state': 'running', 'n': i, 'pad': 'x' * 5000})"),
        str(ROOT), str(path)])
    try:
        time.sleep(0.3)
        for _ in range(300):
            json.loads(path.read_text())  # raises if a reader ever saw a partial file
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert json.loads(path.read_text())["state"] == "running"
