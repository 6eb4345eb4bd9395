"""Several users at once: unique run folders, and the training queue holds its limit."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.config import RunConfig
from core.runs import launch_run, new_run_dir, read_status


def test_run_ids_are_unique_under_concurrency(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: new_run_dir(tmp_path, "same name"), range(40)))
    assert len(set(dirs)) == 40


def test_queue_runs_one_at_a_time(easy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_MAX_CONCURRENT_RUNS", "1")
    runs_root = tmp_path / "runs"
    configs = [RunConfig(data=str(easy_data), out=str(new_run_dir(runs_root, f"user{k}")), backbone="test_resnet",
                         start="scratch", strategy="scratch", image_size=32, batch_size=8, epochs=3,
                         workspace=str(tmp_path)) for k in range(2)]
    runs = [launch_run(c) for c in configs]
    seen_states, deadline = set(), time.time() + 240
    while time.time() < deadline:
        states = tuple(read_status(r.path)["state"] for r in runs)
        seen_states.add(states)
        assert states.count("running") <= 1, states
        if all(s in ("done", "failed", "stopped", "interrupted") for s in states):
            break
        time.sleep(0.05)
    assert states == ("done", "done"), [read_status(r.path) for r in runs]
    assert ("running", "queued") in seen_states  # the second really waited for the first
