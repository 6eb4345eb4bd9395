"""A sweep is many ordinary runs: one run folder per trial, grouped by the sweep, the best one marked."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main
from core.config import RunConfig
from core.errors import GraftError
from core.jsonio import read_json
from core.sweeps import SweepSpec, best_trial, list_sweeps, sweep_trials

pytest.importorskip("optuna")

TINY_ARGS = ["--backbone", "test_resnet", "--start", "scratch", "--image-size", "32", "--batch-size", "8",
             "--epochs", "1", "--seed", "0"]


def test_four_trial_sweep_gives_four_run_folders_and_a_best_one(easy_data: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    sweep_dir = tmp_path / "sweeps" / "overnight"
    code = main(["sweep", str(easy_data), "--out", str(sweep_dir), "--strategies", "scratch", "fine-tune",
                 "--lrs", "0.003", "0.01", *TINY_ARGS])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("Best: trial ")
    trials = sweep_trials(sweep_dir)
    assert len(trials) == 4 and all(t["state"] == "done" for t in trials), trials
    assert {(t["params"]["strategy"], t["params"]["lr"]) for t in trials} == {
        ("scratch", 0.003), ("scratch", 0.01), ("fine-tune", 0.003), ("fine-tune", 0.01)}
    runs = sorted((sweep_dir / "runs").iterdir())
    assert len(runs) == 4
    for run in runs:
        config = read_json(run / "config.json")
        assert config["extra"]["sweep"] == "overnight" and (run / "model" / "model.json").is_file()
        assert config["name"].startswith("overnight · ")
    best = best_trial(sweep_dir)
    assert [t["number"] for t in trials if t["best"]] == [best["number"]]
    assert best["value"] == max(t["value"] for t in trials)
    assert read_json(sweep_dir / "best.json") == best and (sweep_dir / "study.journal").is_file()
    [listed] = list_sweeps(tmp_path / "sweeps")
    assert listed["state"] == "done" and listed["trials_done"] == 4 and listed["best"] == best


def test_sweep_settings_are_checked_plainly(easy_data: Path, tmp_path: Path) -> None:
    base = RunConfig(data=str(easy_data), out="")
    with pytest.raises(GraftError, match="combinations"):
        SweepSpec(base, ("scratch",), (0.01, 0.02), trials=3)
    with pytest.raises(GraftError, match="Unknown strategy"):
        SweepSpec(base, ("guess",), (0.01,))
    (tmp_path / "sweep.json").write_text("{}")
    assert main(["sweep", str(easy_data), "--out", str(tmp_path), "--strategies", "scratch", "--lrs", "0.01"]) == 2
