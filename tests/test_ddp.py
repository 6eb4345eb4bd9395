"""One run on two DDP processes (gloo on CPU) learns what one process learns, and only rank 0 writes.

Two ranks are spawned with torch.multiprocessing, each running the same ``train_run`` calls that
``torchrun -m core train`` would make (RANK/WORLD_SIZE/... set as torchrun sets them). One spawn runs
three runs in a row, to pay the start-up of two torch processes once: fine-tune, progressive
(frozen trunk groups, the DDP wrapper re-made at each unfreezing step, a probe on rank 0) and a long
scratch run that the test stops through its ``stop`` file.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp

from core import ddp
from core.config import RunConfig
from core.pipeline import train_run

BASE = dict(backbone="test_resnet", start="scratch", image_size=32, batch_size=8, seed=0, folds=1)
RUNS = {"fine-tune": dict(strategy="fine-tune", epochs=3), "progressive": dict(strategy="progressive", epochs=3),
        "stopped": dict(strategy="scratch", epochs=200)}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHANGES = {"os.rename": 1, "os.remove": 0, "os.mkdir": 0, "shutil.rmtree": 0, "os.truncate": 0}  # event: path arg


def _writes_under(root: str, found: list[str]):
    """An audit hook recording every file opened for writing, renamed into, removed or made under ``root``."""
    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = bool((mode and any(c in str(mode) for c in "wax+")) or (flags and flags & WRITE_FLAGS))
        elif event in CHANGES and args:
            path, writing = args[CHANGES[event]], True
        else:
            return
        if writing and isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(root):
            found.append(f"{event} {os.fspath(path)}")
    return hook


def _rank(rank: int, world: int, ports: list[int], configs: list[dict], cache: str, root: str, report: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", GRAFT_CACHE_DIR=cache, HF_HUB_OFFLINE="1")
    writes: list[str] = []
    if rank:
        sys.addaudithook(_writes_under(root, writes))
    states = []
    for port, config in zip(ports, configs):
        os.environ["MASTER_PORT"] = str(port)
        states.append(train_run(RunConfig.from_dict(config)))
    Path(report, f"rank{rank}.json").write_text(json.dumps({"states": states, "writes": writes}))


def _config(data: Path, out: Path, **kw) -> RunConfig:
    return RunConfig(data=str(data), out=str(out), **BASE, **kw)


@pytest.fixture(scope="module")
def two_ranks(easy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The three runs on two ranks; the last one is stopped once its first epoch is in."""
    root = tmp_path_factory.mktemp("ddp")
    runs, report, cache = root / "runs", root / "report", root / "cache"  # a fresh cache: the ranks compute
    report.mkdir()
    configs = [_config(easy_data, runs / name, **kw).to_dict() for name, kw in RUNS.items()]
    ports = [_free_port() for _ in configs]
    ctx = mp.start_processes(_rank, args=(2, ports, configs, str(cache), str(runs), str(report)), nprocs=2,
                             join=False, start_method="spawn")
    events, stopped_at = runs / "stopped" / "events.jsonl", None
    deadline = time.monotonic() + 300
    while not ctx.join(timeout=0.5):
        if stopped_at is None and events.exists() and '"event": "epoch"' in events.read_text():
            (runs / "stopped" / "stop").write_text("stop requested\n")
            stopped_at = time.monotonic()
        assert time.monotonic() < deadline, "the two ranks did not finish"
    ranks = [json.loads((report / f"rank{r}.json").read_text()) for r in range(2)]
    return {"runs": runs, "ranks": ranks, "stop_to_end_s": time.monotonic() - (stopped_at or 0)}


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _probs(run: Path) -> np.ndarray:
    with open(run / "predictions.csv", newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["image"])
    return np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows])


@pytest.mark.parametrize("name", ["fine-tune", "progressive"])
def test_two_ranks_learn_what_one_process_learns(name: str, two_ranks: dict, easy_data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.device.physical_cores", lambda: 1)  # one thread, as each rank has: faster when shared
    one = tmp_path / "one"
    assert train_run(_config(easy_data, one, **RUNS[name])) == "done"
    two = two_ranks["runs"] / name
    assert json.loads((two / "status.json").read_text())["state"] == "done"
    m1, m2 = _metrics(one), _metrics(two)
    assert m1["n"] == m2["n"] > 0 and m1["evaluated_on"] == m2["evaluated_on"] == "test"
    # 9 test photos: one photo is 11 points. Two ranks see the same global batches, but each BatchNorm
    # batch is half as big and the augmentation draws differ, so the weights differ a little.
    assert m2["accuracy"] >= 0.6 and abs(m1["accuracy"] - m2["accuracy"]) <= 0.23, (m1["accuracy"], m2["accuracy"])
    if name == "progressive":  # heads refitted by the same probe on nearly the same trunk: nearly the same scores
        assert np.abs(_probs(one) - _probs(two)).max() < 0.05


def test_only_rank_0_writes_the_run_folder(two_ranks: dict) -> None:
    rank0, rank1 = two_ranks["ranks"]
    assert rank1["writes"] == [], rank1["writes"][:5]
    assert rank0["states"][:2] == ["done", "done"]
    for name in ("fine-tune", "progressive"):
        events = [json.loads(line) for line in (two_ranks["runs"] / name / "events.jsonl").read_text().splitlines()]
        kinds = [e["event"] for e in events]
        assert kinds.count("run_start") == 1 and kinds.count("run_end") == 1
        epochs = [e["epoch"] for e in events if e["event"] == "epoch"]
        assert epochs == list(range(1, RUNS[name]["epochs"] + 1))  # each epoch once: one writer
        assert (two_ranks["runs"] / name / "model" / "model.safetensors").is_file()


def test_a_stop_request_stops_every_rank(two_ranks: dict) -> None:
    run = two_ranks["runs"] / "stopped"
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped", status
    assert [r["states"][2] for r in two_ranks["ranks"]] == ["stopped", "stopped"]
    epochs = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()
              if '"event": "epoch"' in line]
    assert 1 <= len(epochs) < RUNS["stopped"]["epochs"]
    assert (run / "model" / "model.safetensors").is_file()  # the model so far is kept


def test_one_process_is_a_world_of_one() -> None:
    w = ddp.world()
    assert (w.rank, w.size, w.is_main, w.active) == (0, 1, True, False)
    assert ddp.any_rank(True) and not ddp.any_rank(False)
    assert ddp.sum_all(2, 3.5) == [2.0, 3.5]
    assert ddp.shard_bounds(5, ddp.World(1, 2)) == [(0, 3), (3, 5)]


def test_quiet_run_folder_writes_nothing(tmp_path: Path) -> None:
    run = ddp.QuietRunFolder(tmp_path / "run")
    run.set_status("running", "x")
    run.emit("epoch", epoch=1)
    run.heartbeat()
    run.write_config(RunConfig(data="d", out=str(tmp_path / "run")))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stop").write_text("stop")
    assert not run.stop_requested()  # rank 0 watches the stop file for every rank
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["stop"]
