"""Stop requests, divergence, and the status a reader sees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.cli import main
from core.runs import read_status
from tests.conftest import ROOT


def test_stop_file_is_honoured_and_best_model_kept(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "stop").write_text("stop")  # present from the start: stops after the first batch
    assert main(["train", str(easy_data), "--out", str(out), *tiny_args, "--epochs", "5"]) == 0
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "stopped"
    assert (out / "model" / "model.json").is_file()


def test_sigterm_stops_within_a_batch(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "core", "train", str(easy_data), "--out", str(out), *tiny_args, "--epochs", "200"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and '"epoch"' not in _read(out / "events.jsonl"):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    status = read_status(out)
    assert status["state"] == "stopped", status
    assert (out / "model" / "model.safetensors").is_file()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_non_finite_loss_fails_plainly_and_keeps_weights(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    out = tmp_path / "run"
    # a learning rate this large blows the weights up to inf/NaN within a few steps
    code = main(["train", str(easy_data), "--out", str(out), *tiny_args, "--epochs", "30", "--lr", "0.99",
                 "--strategy", "scratch"])
    status = json.loads((out / "status.json").read_text())
    assert code == 1 and status["state"] == "failed", status
    assert "diverged" in status["message"] and "lower the learning rate" in status["message"]
    assert (out / "model" / "model.safetensors").is_file()


def test_dead_process_reads_as_interrupted(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text(json.dumps({"state": "running", "pid": 999999, "heartbeat": time.time()}))
    assert read_status(tmp_path)["state"] == "interrupted"
    (tmp_path / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "heartbeat": 0}))
    assert read_status(tmp_path)["state"] == "interrupted"
    (tmp_path / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "heartbeat": time.time()}))
    assert read_status(tmp_path)["state"] == "running"
