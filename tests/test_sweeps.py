"""A sweep is many ordinary runs: one run folder per trial, grouped by the sweep, the best one marked."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main
from core.config import RunConfig
from core.errors import GraftError
from core.jsonio import read_json
from core.sweeps import SweepSpec, best_trial, list_sweeps, sweep_trials, trial_value

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


def test_a_sweep_refuses_good_parts_only_in_plain_words(easy_data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """No learning rate to try and no score comparable with the classifiers' validation F1: refused, not guessed."""
    base = RunConfig(data=str(easy_data), out="", good_class="ok")
    with pytest.raises(GraftError, match="can't be part of a sweep") as refused:
        SweepSpec(base, ("fine-tune", "anomaly"), (0.01,))
    assert "--" not in str(refused.value) and "own run" in str(refused.value)
    out = tmp_path / "sweep"
    assert main(["sweep", str(easy_data), "--out", str(out), "--strategies", "anomaly", "--lrs", "0.01",
                 "--good-class", "ok", *TINY_ARGS]) == 2
    assert "can't be part of a sweep" in capsys.readouterr().err
    assert not (out / "sweep.json").exists()  # refused before anything was written


def test_trial_value_of_a_run_without_epochs_is_none(tmp_path: Path) -> None:
    """A good-parts-only run's log has no epochs (it builds a memory): nothing to score a trial with."""
    from core.jsonio import append_jsonl

    run = tmp_path / "run"
    run.mkdir()
    for event in ({"event": "run_start"}, {"event": "progress", "phase": "train", "done": 3, "total": 3},
                  {"event": "run_end", "state": "done"}):
        append_jsonl(run / "events.jsonl", event)
    assert trial_value(run) is None
