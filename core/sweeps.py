"""Sweeps: "try every strategy and three learning rates overnight" as many ordinary runs.

A sweep is a grid over run settings (strategy x learning rate) searched with Optuna's
``GridSampler``, its study kept in an Optuna journal file next to the sweep (no database server).
Each trial is an ordinary Graft run folder, launched through the executor seam like any other
run (this computer, one after the other; or a Ray cluster, several at once, queued by the
cluster). The best trial is the one with the highest validation score after its last epoch (a
cross-validated run: the mean over its folds); the test photos stay untouched for reporting.

Layout of a sweep folder::

    SWEEP_DIR/
      sweep.json      id, name, state, space, base config, executor, trials [{number, params, run,
                      state, value}], best {number, run, value, params}; what the app reads
      best.json       the best trial (also in sweep.json)
      study.journal   the Optuna study (JournalFileBackend)

Trial run folders live in ``runs_root`` (default ``SWEEP_DIR/runs``; the app uses the
workspace's ``runs/`` so trials show on the Runs page). Their config carries
``extra = {"sweep": SWEEP_ID, "trial": N}`` and a name "SWEEP · strategy · lr".
Reading sweeps (:func:`list_sweeps`, :func:`sweep_trials`, :func:`best_trial`) never imports Optuna.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import RunConfig, Strategy
from .errors import GraftError
from .jsonio import read_json, read_jsonl, write_json_atomic
from .runs import FINAL_STATES, new_run_dir, pid_alive, read_status, request_stop

__all__ = ["SweepSpec", "run_sweep", "list_sweeps", "sweep_trials", "best_trial", "trial_value", "SWEEP_FILE",
           "BEST_FILE", "STUDY_FILE", "OBJECTIVE_LABEL", "NO_ANOMALY"]

SWEEP_FILE, BEST_FILE, STUDY_FILE = "sweep.json", "best.json", "study.journal"
OBJECTIVE_LABEL = "validation score (mean F1 on the photos kept aside for checking)"
# Why good parts only is refused rather than scored: it has no learning rate (each of its trials would build the
# same memory), and no score of it means what the classifiers' validation F1 means: its ROC AUC is on another
# scale, its validation false-alarm rate is the target by construction (the threshold is set on those photos),
# and the test photos stay untouched for reporting.
NO_ANOMALY = ("Good-parts-only mode can't be part of a sweep: it has no learning rate to try (every trial would "
              "build the same memory of good parts), and its score can't be compared with the other strategies' "
              "validation score. Train it as its own run and compare it on the Runs page.")


@dataclass(frozen=True)
class SweepSpec:
    """What to try: every (strategy, learning rate) pair on top of one base run config.

    Args:
        base: data, backbone, start, epochs, image size ... shared by every trial (``out`` is ignored).
        strategies: strategy names (``Strategy`` values).
        lrs: learning rates.
        trials: how many grid points to try (default: all of them, in a seeded random order).
        name: shown on the Runs page (default: the sweep folder's name).
    """

    base: RunConfig
    strategies: tuple[str, ...]
    lrs: tuple[float, ...]
    trials: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategies", tuple(Strategy.parse(s).value for s in self.strategies))
        object.__setattr__(self, "lrs", tuple(float(x) for x in self.lrs))
        if not self.strategies or not self.lrs:
            raise GraftError("A sweep needs at least one strategy and one learning rate.")
        if Strategy.ANOMALY.value in self.strategies:
            raise GraftError(NO_ANOMALY, hint="Leave anomaly out of the strategies and train it as a run of its own.")
        if any(not 0 < lr < 1 for lr in self.lrs):
            raise GraftError("Learning rates must be between 0 and 1 (for example 0.002).")
        if self.trials is not None and not 1 <= self.trials <= self.grid_size:
            raise GraftError(f"This sweep has {self.grid_size} combinations: ask for 1 to {self.grid_size} trials.")

    @property
    def grid_size(self) -> int:
        return len(self.strategies) * len(self.lrs)


def trial_value(run_dir: str | Path) -> float | None:
    """The run's validation score after its last epoch (None when no epoch finished).

    A cross-validated run counts the mean over its folds (each fold's inner validation photos);
    the final fit on every photo has nothing to validate on and is left out. A good-parts-only run
    has no epochs, so None: sweeps refuse that strategy (``NO_ANOMALY``).
    """
    epochs = [e for e in read_jsonl(Path(run_dir) / "events.jsonl")
              if e.get("event") == "epoch" and e.get("stage") != "final"]
    by_fold: dict[Any, list[dict]] = {}
    for e in epochs:
        by_fold.setdefault(e.get("fold"), []).append(e)
    values = [v for records in by_fold.values() if (v := _best_value(records)) is not None]
    return sum(values) / len(values) if values else None


def _best_value(records: list[dict]) -> float | None:
    best = [e for e in records if e.get("best")] or records
    value = best[-1].get("val_score", best[-1].get("val_f1"))
    return None if value is None else float(value)


def _study(sweep_dir: Path, spec: SweepSpec, seed: int) -> Any:
    try:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    except ImportError:
        raise GraftError("Sweeps need Optuna.", hint="Install it: pip install -r requirements.txt") from None
    class AskTellGrid(optuna.samplers.GridSampler):
        """The grid, asked and told by hand: the sweep counts its own trials, so the sampler's
        end-of-grid ``study.stop()`` (which only works inside ``study.optimize``) is not wanted."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = str(sweep_dir / STUDY_FILE)
    storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    sampler = AskTellGrid({"strategy": list(spec.strategies), "lr": list(spec.lrs)}, seed=seed)
    return optuna.create_study(storage=storage, sampler=sampler, study_name=sweep_dir.name, direction="maximize")


class _Sweep:
    """One sweep in progress: its folder, study, executor and the trials in flight."""

    def __init__(self, spec: SweepSpec, sweep_dir: Path, runs_root: Path, executor: Any) -> None:
        self.spec, self.dir, self.runs_root, self.executor = spec, sweep_dir, runs_root, executor
        self.study = _study(sweep_dir, spec, spec.base.seed)
        self.record: dict[str, Any] = {
            "id": sweep_dir.name, "name": spec.name or sweep_dir.name, "state": "running", "created": time.time(),
            "objective": OBJECTIVE_LABEL, "space": {"strategy": list(spec.strategies), "lr": list(spec.lrs)},
            "trials_planned": spec.trials or spec.grid_size, "base_config": spec.base.to_dict(),
            "executor": getattr(executor, "name", "local"), "runs_root": str(runs_root), "pid": os.getpid(),
            "host": socket.gethostname(), "trials": [], "best": None}
        self.in_flight: dict[int, tuple[Any, Path]] = {}

    def save(self) -> None:
        write_json_atomic(self.dir / SWEEP_FILE, self.record)

    def start_trial(self) -> None:
        trial = self.study.ask()
        strategy = trial.suggest_categorical("strategy", list(self.spec.strategies))
        lr = trial.suggest_categorical("lr", list(self.spec.lrs))
        out = new_run_dir(self.runs_root, f"{self.dir.name}-t{trial.number:02d}")
        config = self.spec.base.replace(
            strategy=strategy, lr=lr, out=str(out), name=f"{self.record['name']} · {strategy} · lr {lr:g}",
            extra={**self.spec.base.extra, "sweep": self.dir.name, "trial": trial.number})
        trial.set_user_attr("run", str(out))
        self.executor.launch(config)
        self.in_flight[trial.number] = (trial, out)
        self.record["trials"].append({"number": trial.number, "params": {"strategy": strategy, "lr": lr},
                                      "run": str(out), "state": "queued", "value": None})
        self.save()

    def collect(self) -> None:
        """Tell the study about every trial whose run has ended."""
        for number, (trial, out) in list(self.in_flight.items()):
            state = read_status(out).get("state")
            if state not in FINAL_STATES:
                continue
            value = trial_value(out) if state in ("done", "stopped") else None
            if value is not None:
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=_failed())
            del self.in_flight[number]
            entry = next(t for t in self.record["trials"] if t["number"] == number)
            entry.update(state=state, value=value)
            self._mark_best()
            self.save()

    def _mark_best(self) -> None:
        scored = [t for t in self.record["trials"] if t["value"] is not None]
        if scored:
            best = max(scored, key=lambda t: (t["value"], -t["number"]))
            self.record["best"] = {k: best[k] for k in ("number", "run", "value", "params")}
            write_json_atomic(self.dir / BEST_FILE, self.record["best"])


def _failed() -> Any:
    from optuna.trial import TrialState

    return TrialState.FAIL


def run_sweep(spec: SweepSpec, sweep_dir: str | Path, *, runs_root: str | Path | None = None,
              executor: Any = None, parallel: int = 1, poll_s: float = 1.0,
              on_change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every trial of the sweep through ``executor`` (default: this computer) and mark the best.

    Args:
        spec: the grid and base config.
        sweep_dir: a new folder for the sweep (its name is the sweep's id).
        runs_root: where trial run folders go (default ``sweep_dir/runs``).
        executor: a ``core.executors`` executor; its ``launch`` starts each trial in the background.
        parallel: trials in flight at once (a cluster queues what it can't start yet).
        on_change: called with the sweep record after each trial starts or ends.

    Returns:
        The final sweep record (what ``sweep.json`` holds).

    Raises:
        GraftError: the folder already holds a sweep, or a trial couldn't be launched.
    """
    sweep_dir = Path(sweep_dir)
    if (sweep_dir / SWEEP_FILE).exists():
        raise GraftError(f"'{sweep_dir}' already holds a sweep.", hint="Choose a new folder for this sweep.")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if executor is None:
        from .executors.local import LocalExecutor

        executor = LocalExecutor()
    sweep = _Sweep(spec, sweep_dir, Path(runs_root) if runs_root else sweep_dir / "runs", executor)
    sweep.save()
    try:
        _drive(sweep, max(1, parallel), poll_s, on_change)
    except BaseException:
        for _, out in sweep.in_flight.values():
            request_stop(out)  # Ctrl-C or a failed launch: don't leave trials training unattended
        sweep.record["state"] = "stopped"
        sweep.save()
        raise
    sweep.record["state"] = "done" if sweep.record["best"] else "failed"
    sweep.save()
    return sweep.record


def _drive(sweep: _Sweep, parallel: int, poll_s: float, on_change: Callable | None) -> None:
    planned, started = sweep.record["trials_planned"], 0
    while started < planned or sweep.in_flight:
        while started < planned and len(sweep.in_flight) < parallel:
            sweep.start_trial()
            started += 1
            if on_change:
                on_change(sweep.record)
        ended = len(sweep.in_flight)
        sweep.collect()
        if on_change and len(sweep.in_flight) != ended:
            on_change(sweep.record)
        if sweep.in_flight:
            time.sleep(poll_s)


def _sweep_state(record: dict[str, Any]) -> str:
    """A sweep whose driving process is gone reads 'interrupted', like a run."""
    if record.get("state") == "running" and record.get("host") == socket.gethostname() \
            and not pid_alive(record.get("pid")):
        return "interrupted"
    return str(record.get("state", "unknown"))


def sweep_trials(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The sweep's trials in order: ``number``, ``params``, ``run``, ``state`` (live), ``value``, ``best``."""
    record = read_json(Path(sweep_dir) / SWEEP_FILE, {}) or {}
    best = (record.get("best") or {}).get("number")
    out = []
    for trial in record.get("trials", []):
        live = read_status(trial["run"]).get("state") if Path(trial["run"]).is_dir() else "deleted"
        value = trial.get("value")
        if value is None and live in ("done", "stopped"):
            value = trial_value(trial["run"])
        out.append({**trial, "state": live, "value": value, "best": trial["number"] == best})
    return out


def best_trial(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The best trial so far (``number``, ``run``, ``value``, ``params``), or None."""
    record = read_json(Path(sweep_dir) / SWEEP_FILE, {}) or {}
    return record.get("best")


def list_sweeps(root: str | Path) -> list[dict[str, Any]]:
    """Every sweep folder under ``root`` (e.g. the workspace's ``sweeps/``), newest first.

    Each: ``id``, ``name``, ``path``, ``state``, ``created``, ``space``, ``trials_planned``,
    ``trials_done``, ``best``.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for path in sorted((p for p in root.iterdir() if (p / SWEEP_FILE).is_file()), reverse=True):
        record = read_json(path / SWEEP_FILE, {}) or {}
        done = sum(1 for t in record.get("trials", []) if t.get("state") in FINAL_STATES)
        out.append({"id": record.get("id", path.name), "name": record.get("name", path.name), "path": str(path),
                    "state": _sweep_state(record), "created": record.get("created"), "space": record.get("space"),
                    "trials_planned": record.get("trials_planned"), "trials_done": done,
                    "best": record.get("best")})
    return sorted(out, key=lambda s: s.get("created") or 0, reverse=True)
