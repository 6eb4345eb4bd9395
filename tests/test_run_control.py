"""Stop requests, divergence, and the status a reader sees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.cli import main
from core.runs import read_status, request_stop
from tests.conftest import ROOT


def test_stop_file_is_honoured_and_best_model_kept(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "core", "train", str(easy_data), "--out", str(out), *tiny_args, "--epochs", "300",
           "--patience", "300"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_epoch(out)
    request_stop(out)
    assert proc.wait(timeout=60) == 0
    status = read_status(out)
    assert status["state"] == "stopped" and "best model so far was kept" in status["message"]
    assert (out / "model" / "model.json").is_file()


def test_stop_before_training_saves_nothing(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    request_stop(out)  # e.g. pressed while photos were still being prepared
    assert main(["train", str(easy_data), "--out", str(out), *tiny_args, "--epochs", "5"]) == 0
    status = read_status(out)
    assert status["state"] == "stopped" and "before training began" in status["message"]
    assert not (out / "model").exists()


def _wait_for_epoch(out: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and '"epoch"' not in _read(out / "events.jsonl"):
        time.sleep(0.1)


def test_sigterm_stops_within_a_batch(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "core", "train", str(easy_data), "--out", str(out), *tiny_args, "--epochs", "200"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_epoch(out)
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


def test_non_finite_loss_fails_plainly_and_keeps_weights(easy_data: Path, tmp_path: Path, tiny_args: list[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import core.fitting

    class PoisonAfterSecondEpoch(core.fitting.EventWriter):
        """Corrupts one weight after epoch 2, as an exploding update would."""

        def on_epoch_end(self, t, record) -> None:
            super().on_epoch_end(t, record)
            if record["epoch"] == 2:
                with torch.no_grad():
                    next(t.model.heads.parameters()).fill_(float("nan"))

    monkeypatch.setattr(core.fitting, "EventWriter", PoisonAfterSecondEpoch)
    out = tmp_path / "run"
    code = main(["train", str(easy_data), "--out", str(out), *tiny_args, "--epochs", "6", "--strategy", "scratch"])
    status = json.loads((out / "status.json").read_text())
    assert code == 1 and status["state"] == "failed", status
    assert "diverged" in status["message"] and "lower the learning rate" in status["message"]
    weights = load_file(str(out / "model" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_non_finite_from_the_start_keeps_nothing(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    from core.backbones import build

    trunk = build("test_resnet", "scratch")
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in trunk.state_dict().items()}
    save_file(state, str(tmp_path / "nan.safetensors"))
    out = tmp_path / "run"
    args = [a for a in tiny_args if a not in ("--start", "scratch")]
    code = main(["train", str(easy_data), "--out", str(out), *args, "--start", f"file:{tmp_path / 'nan.safetensors'}",
                 "--epochs", "2"])
    status = json.loads((out / "status.json").read_text())
    assert code == 1 and status["state"] == "failed" and "no model to keep" in status["message"]
    assert not (out / "model").exists()


def test_dead_process_reads_as_interrupted(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text(json.dumps({"state": "running", "pid": 999999, "heartbeat": time.time()}))
    assert read_status(tmp_path)["state"] == "interrupted"
    (tmp_path / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "heartbeat": 0}))
    assert read_status(tmp_path)["state"] == "interrupted"
    (tmp_path / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "heartbeat": time.time()}))
    assert read_status(tmp_path)["state"] == "running"


def test_event_log_is_read_incrementally_and_never_torn(tmp_path: Path) -> None:
    from core.runs import RunFolder

    run = RunFolder(tmp_path)
    assert run.events() == []
    run.emit("epoch", epoch=1)
    with open(run.events_file, "a") as fh:
        fh.write('{"event": "epoch", "epoch": 2')  # the writer is mid-line
    assert [e.get("epoch") for e in run.events()] == [1]
    with open(run.events_file, "a") as fh:
        fh.write("}\n")
    assert [e.get("epoch") for e in run.events()] == [1, 2]
    run.events_file.unlink()  # a restarted run writes a new log
    run.emit("run_start")
    assert [e["event"] for e in RunFolder(tmp_path).events()] == ["run_start"]
