"""One training run from config to model package: the only code path, for the CLI and the app."""

from __future__ import annotations

import csv
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .callbacks import StopRequested, StopWatcher
from .check import CheckReport, check_dataset
from .config import RunConfig
from .datasets import Dataset, load_dataset
from .device import Runtime
from .errors import GraftError
from .fitting import Fitted, Fitter
from .jsonio import write_json_atomic
from .metrics import choose_threshold, decide, score
from .model import Task
from .package import ModelSpec, save_package
from .queue import wait_for_slot
from .runs import Heartbeat, RunFolder
from .split import split_indices
from .tasks import build_targets, build_tasks, label_probs

__all__ = ["train_run", "Prepared"]


@dataclass
class Prepared:
    """A dataset ready to train on: readable samples only, split, with targets."""

    ds: Dataset
    report: CheckReport
    splits: dict[str, list[int]]
    tasks: list[Task]
    targets: dict[str, np.ndarray]


def train_run(config: RunConfig, resume: bool = False) -> str:
    """Run training in ``config.out`` and return the final state (done, stopped or failed).

    Raises:
        GraftError: after recording it in ``status.json``, for the CLI to print.
    """
    run = RunFolder(config.out)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(config)
    if resume:
        run.stop_file.unlink(missing_ok=True)  # an old stop request must not end the resumed run
    stopper = StopWatcher(run).install()
    with Heartbeat(run):
        slot = _take_slot(config, run, stopper)
        if slot is None:
            run.set_status("stopped", "Stopped before it started.")
            return "stopped"
        try:
            return _guarded(config, run, stopper, resume)
        finally:
            slot.close()


def _take_slot(config: RunConfig, run: RunFolder, stopper: StopWatcher):
    if not config.workspace:
        return _Free()
    run.set_status("queued", "Waiting for another run to finish.")
    return wait_for_slot(Path(config.workspace), run.path, stopper.requested, run.heartbeat)


class _Free:
    def close(self) -> None:
        pass


def _guarded(config: RunConfig, run: RunFolder, stopper: StopWatcher, resume: bool) -> str:
    run.set_status("running", "Preparing the photos…", started=time.time())
    try:
        state, message = _train(config, run, stopper, resume)
    except StopRequested:
        state, message = "stopped", "Stopped on request before training began; no model was saved."
    except GraftError as exc:
        run.emit("run_end", state="failed", message=str(exc))
        run.set_status("failed", str(exc))
        raise
    except Exception as exc:
        (run.path / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        message = f"Graft hit an internal problem ({type(exc).__name__}). Details are in error.txt of this run."
        run.emit("run_end", state="failed", message=message)
        run.set_status("failed", message)
        raise
    run.emit("run_end", state=state, message=message)
    run.set_status(state, message, ended=time.time())
    return state


def prepare(config: RunConfig, run: RunFolder, stopper: StopWatcher | None = None) -> Prepared:
    """Load, check and split the dataset; work out the tasks."""
    ds = load_dataset(config.data)
    report = check_dataset(ds, progress=_progress(run, "check", "Checking photos", stopper))
    write_json_atomic(run.path / "check.json", report.to_dict())
    if not report.ok:
        raise GraftError(report.problems[0])
    readable = [s for s in ds.samples if s.rel in report.hashes]
    ds = Dataset(ds.root, readable, ds.source, ds.extra_columns, ds.name)
    splits = split_indices(ds, list(range(len(readable))), report.hashes, val=config.val_fraction,
                           test=config.test_fraction, seed=config.seed)
    if not splits["val"]:
        raise GraftError("There are too few photos to keep some aside for checking.", hint="Add photos to each class.")
    tasks = build_tasks(ds, config)
    return Prepared(ds, report, splits, tasks, build_targets(ds, tasks))


def _progress(run: RunFolder, phase: str, label: str, stopper: StopWatcher | None = None):
    def report(done: int, total: int, eta: float) -> None:
        if stopper is not None and stopper.requested():
            raise StopRequested(phase)
        run.emit("progress", phase=phase, done=done, total=total, eta_s=eta)
        run.set_status("running", f"{label}: {done} of {total}.")
    return report


def _train(config: RunConfig, run: RunFolder, stopper: StopWatcher, resume: bool = False) -> tuple[str, str]:
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    prep = prepare(config, run, stopper)
    fitter = Fitter(config, prep, run, stopper, decode_progress=_progress(run, "decode", "Preparing photos", stopper))
    _emit_start(run, config, prep, fitter.runtime, fitter.backbone, fitter.image_size)
    fitted = fitter.fit(prep.splits, resume=resume,
                        feature_progress=_progress(run, "features", "Computing features", stopper))
    if fitted.diverged:
        advice = f"Training diverged ({fitted.diverged}): lower the learning rate and try again."
        if not fitted.usable:
            return "failed", advice + " No epoch finished, so there is no model to keep."
        _finish(config, run, fitter, fitted, prep)
        return "failed", advice + " The last good weights were kept."
    message = _finish(config, run, fitter, fitted, prep)
    fit = fitted.result
    if fit.stopped == "stopped on request":
        return "stopped", f"Stopped on request after {len(fit.history)} epoch(s); the best model so far was kept. " + message
    return "done", message


def _emit_start(run: RunFolder, config: RunConfig, prep: Prepared, runtime: Runtime, backbone: str,
                image_size: int) -> None:
    run.emit("run_start", config=config.to_dict(), backbone=backbone, image_size=image_size,
             classes=prep.ds.classes, tasks=[{"name": t.name, "classes": list(t.classes)} for t in prep.tasks],
             splits={k: len(v) for k, v in prep.splits.items()}, **runtime.describe())
    run.set_status("running", "Training started.", **runtime.describe())


def _finish(config: RunConfig, run: RunFolder, fitter: Fitter, fitted: Fitted, prep: Prepared) -> str:
    """Score the test split, write metrics and predictions, and save the model package."""
    run.set_status("running", "Scoring the test photos…")
    trainer, fit, dcfg = fitted.trainer, fitted.result, fitter.dcfg
    classes, good = prep.ds.classes, config.good_class
    y = np.array([classes.index(s.label) for s in prep.ds.samples])
    val_p = label_probs(trainer.predict_split("val"), prep.tasks, classes)
    threshold = choose_threshold(y[prep.splits["val"]], val_p, classes, good) if good else 0.5
    split = "test" if prep.splits["test"] else "val"
    task_probs = trainer.predict_split(split)
    probs = label_probs(task_probs, prep.tasks, classes)
    metrics = score(y[prep.splits[split]], probs, classes, good, threshold)
    metrics.update(evaluated_on=split, best_epoch=fit.best_epoch if fit else None,
                   epochs_run=len(fit.history) if fit else None, stopped_early=fit.stopped if fit else "",
                   splits={k: len(v) for k, v in prep.splits.items()}, tasks=_task_metrics(task_probs, prep, split))
    write_json_atomic(run.metrics_file, metrics)
    _write_predictions(run.predictions_file, prep, split, probs, classes, good, threshold)
    spec = ModelSpec(backbone=fitter.backbone, tasks=prep.tasks, classes=classes, image_size=fitter.image_size,
                     mean=dcfg["mean"], std=dcfg["std"], interpolation=dcfg["interpolation"], good_class=good,
                     threshold=threshold,
                     info={"strategy": config.strategy.value, "start": config.start, "dataset": str(config.data),
                           "run": run.path.name})
    save_package(fitted.model, spec, run.model_dir)
    return _summary(metrics)


def _task_metrics(probs: dict[str, np.ndarray], prep: Prepared, split: str) -> dict[str, dict]:
    if len(prep.tasks) < 2:
        return {}
    out = {}
    for task in prep.tasks:
        y = prep.targets[task.name][prep.splits[split]]
        keep = y >= 0
        out[task.name] = score(y[keep], probs[task.name][keep], list(task.classes))
    return out


def _write_predictions(path: Path, prep: Prepared, split: str, probs: np.ndarray, classes: list[str],
                       good: str | None, threshold: float) -> None:
    pred = decide(probs, classes, good, threshold)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "split", "label", "predicted", "correct"] + [f"p_{c}" for c in classes])
        for row, i in enumerate(prep.splits[split]):
            s = prep.ds.samples[i]
            w.writerow([s.rel, split, s.label, classes[pred[row]], s.label == classes[pred[row]]]
                       + [f"{p:.5f}" for p in probs[row]])


def _summary(metrics: dict) -> str:
    text = f"Accuracy {metrics['accuracy']:.0%} on {metrics['n']} {metrics['evaluated_on']} photos."
    if metrics.get("catch_rate") is not None:
        text += f" Defects caught: {metrics['catch_rate']:.0%}."
    if metrics.get("false_alarm_rate") is not None:
        text += f" False alarms: {metrics['false_alarm_rate']:.0%}."
    if len(metrics["predicted_classes"]) == 1 and len(metrics["classes"]) > 1:
        text += (f" Warning: the model predicts only '{metrics['predicted_classes'][0]}' for every photo; "
                 "it has not learned to tell the classes apart. Add photos, train longer or try another strategy.")
    return text
