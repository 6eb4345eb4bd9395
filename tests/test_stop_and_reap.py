"""Stop within one batch on the real training path (then save and score), and no <defunct> training processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import RunConfig
from core.runs import read_status, reap_when_done
from tests.conftest import TINY


def test_a_stop_file_ends_the_epoch_at_the_next_batch_then_saves_and_scores(
        easy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.callbacks
    import core.trainer
    from core.pipeline import train_run

    out = tmp_path / "run"
    config = RunConfig(data=str(easy_data), out=str(out), backbone=TINY, start="scratch", strategy="scratch",
                       image_size=48, batch_size=2, epochs=50, patience=50, folds=1)
    original = core.callbacks.StopWatcher.on_batch_end
    recalibrated: list[int] = []

    def press_stop_in_epoch_two(self, t, info) -> None:  # the app's Stop button leaves exactly this file
        if t.epoch == 1 and info["batch"] == 3:
            (out / "stop").write_text("stop requested\n")
        original(self, t, info)

    real_recalibrate = core.trainer.recalibrate_batchnorm
    monkeypatch.setattr(core.callbacks.StopWatcher, "on_batch_end", press_stop_in_epoch_two)
    monkeypatch.setattr(core.trainer, "recalibrate_batchnorm",
                        lambda *a, **k: (recalibrated.append(1), real_recalibrate(*a, **k))[1])
    assert train_run(config) == "stopped"
    epochs = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()
              if json.loads(line).get("event") == "epoch"]
    assert len(epochs) == 2
    assert epochs[-1]["stopped_after_batch"] == 3 and epochs[-1]["batches"] > 3  # not the whole epoch
    assert len(recalibrated) == 1  # only after the full first epoch: no extra pass after the stop
    assert "best model so far was kept" in read_status(out)["message"]
    assert (out / "model" / "model.safetensors").is_file() and (out / "metrics.json").is_file()  # saved, scored


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None  # gone: reaped


def test_a_finished_launched_process_is_reaped_not_left_defunct() -> None:
    proc = reap_when_done(subprocess.Popen([sys.executable, "-c", "pass"]))
    deadline = time.monotonic() + 20
    while _state(proc.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(proc.pid) is None  # without the reaper it would sit in state Z until the app exits
    assert proc.returncode == 0
