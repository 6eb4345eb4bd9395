"""One training run from config to model package: the only code path, for the CLI and the app.

``train_run`` checks and splits the dataset, decides what the config left open (folds from the
dataset's size, resize from the photos' shapes; both written back to ``config.json``), fits either
one train/val/test split or a K-fold cross-validation (:mod:`core.crossval`) on one
:class:`core.fitting.Fitter`, and leaves the run's files (:mod:`core.finishing`).
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import ddp
from .anomaly_fit import require_good_class, train_anomaly
from .callbacks import StopRequested, StopWatcher, progress_hook
from .check import CheckReport, check_dataset
from .checkpoint import has_checkpoint
from .config import RunConfig, Strategy
from .crossval import resolve_folds, run_crossval
from .datasets import Dataset, load_dataset
from .device import Runtime
from .errors import GraftError
from .eta import RunClock, RunShape, run_priors, shape_for
from .finishing import Outcome, finish_crossval, finish_split, summary
from .fitting import PROBE_VIEW_BUDGET, PROBE_VIEWS, Fitted, Fitter
from .imagecache import decoded_images
from .jsonio import write_json_atomic
from .model import Task
from .preprocess import Preprocessing, pad_colour_for
from .queue import wait_for_slot
from .runs import Heartbeat, RunFolder
from .split import split_indices
from .tasks import build_targets, build_tasks

__all__ = ["train_run", "prepare", "Prepared", "run_shape"]


@dataclass
class Prepared:
    """A dataset ready to train on: readable samples only, split, with targets.

    ``splits`` is the single train/val/test split (a cross-validation makes its own per fold).
    """

    ds: Dataset
    report: CheckReport
    splits: dict[str, list[int]]
    tasks: list[Task]
    targets: dict[str, np.ndarray]


def train_run(config: RunConfig, resume: bool = False) -> str:
    """Run training in ``config.out`` and return the final state (done, stopped or failed).

    Under ``torchrun`` every process calls this; rank 0 runs the run folder and the others only
    help train (:mod:`core.ddp`).

    Raises:
        GraftError: after recording it in ``status.json``, for the CLI to print.
    """
    if not ddp.setup().is_main:
        return _train_other_rank(config, resume)
    try:
        return _train_main(config, resume)
    finally:
        ddp.teardown()


def _train_other_rank(config: RunConfig, resume: bool) -> str:
    """A DDP rank other than 0: the same training as rank 0, which alone writes the run folder."""
    run = ddp.QuietRunFolder(config.out)
    if not ddp.wait_for_main(run.path):  # rank 0 ended while queued
        ddp.teardown()
        return "stopped"
    followed = ddp.follow_main(run.path)
    try:
        state, _ = _train(config, run, StopWatcher(run).install(), resume)
        return state
    except StopRequested:
        return "stopped"
    except Exception:  # e.g. the data's GraftError: rank 0 meets it too and records it before this rank ends
        ddp.linger(run.path)
        raise
    finally:
        followed.set()
        ddp.teardown()


def _train_main(config: RunConfig, resume: bool) -> str:
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
    run.emit("run_end", state=state, message=message, eta_s=0.0)
    run.set_status(state, message, ended=time.time(), eta_s=0.0)
    return state


def prepare(config: RunConfig, run: RunFolder, stopper: StopWatcher | None = None,
            clock: RunClock | None = None) -> Prepared:
    """Load, check and split the dataset; work out the tasks. ``clock`` learns the number of photos."""
    ds = load_dataset(config.data)
    if clock is not None:
        clock.replan(run_shape(config, len(ds.samples)))
        clock.begin("check")
    good_only = require_good_class(config) if config.strategy == Strategy.ANOMALY else None
    report = check_dataset(ds, progress=_progress(run, "check", "Checking photos", stopper, clock),
                           good_only=good_only)
    if ddp.world().is_main:  # only rank 0 writes the run folder
        write_json_atomic(run.path / "check.json", report.to_dict())
    if not report.ok:
        raise GraftError(report.problems[0])
    readable = [s for s in ds.samples if s.rel in report.hashes]
    ds = Dataset(ds.root, readable, ds.source, ds.extra_columns, ds.name)
    splits = split_indices(ds, list(range(len(readable))), report.groups, val=config.val_fraction,
                           test=config.test_fraction, seed=config.seed)
    tasks = build_tasks(ds, config)
    return Prepared(ds, report, splits, tasks, build_targets(ds, tasks))


def _progress(run: RunFolder, phase: str, label: str, stopper: StopWatcher | None = None,
              clock: RunClock | None = None):
    """A preparation phase's progress: events and status carry the whole run's time left (the clock's)."""
    return progress_hook(run, clock, phase, label, stopper)


def run_shape(config: RunConfig, photos: int, prep: Prepared | None = None) -> RunShape:
    """The plan's inputs from the config and what the data decided so far (exact splits once ``prep``)."""
    shape = shape_for(config, photos, views=len(PROBE_VIEWS), view_budget=PROBE_VIEW_BUDGET)
    if prep is None:
        return shape
    again = (config.resize or prep.report.resize) != "squash" or prep.report.bit_depth is not None
    splits = tuple(len(prep.splits[k]) for k in ("train", "val", "test")) if shape.folds < 2 else None
    return dataclasses.replace(shape, splits=splits, decode_passes=2 if again else 1)


def _new_clock(config: RunConfig) -> RunClock:
    """The whole run's clock, with priors from the backbone's speed here or known until this run measures its own."""
    return RunClock(run_shape(config, 0), run_priors(config))


def _resolve(config: RunConfig, prep: Prepared, run: RunFolder, resume: bool) -> RunConfig:
    """Fill in what the config left to the data (folds, resize) and record it in config.json.

    A run from before cross-validation existed (no folds recorded) resumes as the one split it was.
    """
    requested = 1 if config.strategy == Strategy.ANOMALY else config.folds  # one memory, no folds
    if requested is None and resume and has_checkpoint(run.path):
        requested = 1
    folds = resolve_folds(requested, prep)
    if folds == 1 and not prep.splits["val"]:
        raise GraftError("There are too few photos to keep some aside for checking.", hint="Add photos to each class.")
    resolved = config.replace(folds=folds, resize=config.resize or prep.report.resize)
    if resolved != config:
        run.write_config(resolved)
    return resolved


def _preprocessing(config: RunConfig, prep: Prepared, fitter: Fitter, run: RunFolder,
                   stopper: StopWatcher, clock: RunClock | None = None) -> Preprocessing:
    """This run's preprocessing; photos are decoded again when it isn't Graft's default squash.

    (The Fitter decodes with the default; passing ``prep=`` to its ``decoded_images`` call would save
    that first decode.)
    """
    mean, std = fitter.dcfg["mean"], fitter.dcfg["std"]
    settings = Preprocessing(size=fitter.image_size, resize=config.resize or "squash",
                             bit_depth=prep.report.bit_depth, pad_colour=pad_colour_for(mean),
                             mean=tuple(mean), std=tuple(std))
    if settings.cache_tag():
        samples = prep.ds.samples
        fitter.images = decoded_images([s.path for s in samples], [prep.report.hashes[s.rel] for s in samples],
                                       fitter.image_size, _progress(run, "decode", "Preparing photos", stopper, clock),
                                       prep=settings)
    return settings


def _train(config: RunConfig, run: RunFolder, stopper: StopWatcher, resume: bool = False) -> tuple[str, str]:
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    clock = _new_clock(config)
    prep = prepare(config, run, stopper, clock)
    config = _resolve(config, prep, run, resume)
    clock.replan(run_shape(config, len(prep.ds.samples), prep))
    clock.begin("build")
    fitter = Fitter(config, prep, run, stopper, clock=clock,
                    decode_progress=_progress(run, "decode", "Preparing photos", stopper, clock))
    clock.set_prior(run_priors(config, fitter.backbone, fitter.image_size))
    clock.replan(dataclasses.replace(clock.shape, shares=fitter.trunk_shares()))
    settings = _preprocessing(config, prep, fitter, run, stopper, clock)
    _emit_start(run, config, prep, fitter.runtime, fitter.backbone, fitter.image_size)
    features = _progress(run, "features", "Computing features", stopper, clock)
    if config.strategy == Strategy.ANOMALY:
        return train_anomaly(config, run, stopper, prep, fitter, settings, features)
    if config.folds and config.folds >= 2:
        return _train_crossval(config, run, stopper, prep, fitter, settings, resume)
    fitted = fitter.fit(prep.splits, resume=resume, feature_progress=features)
    if not ddp.world().is_main:  # rank 0 scores and packages the model
        return _rank_state(fitted)
    clock.begin("score")
    return _end_split(config, run, fitter, fitted, prep, prep.splits, settings)


def _end_split(config: RunConfig, run: RunFolder, fitter: Fitter, fitted: Fitted, prep: Prepared,
               splits: dict[str, list[int]], settings: Preprocessing, info: dict | None = None,
               stopped_words: str = "") -> tuple[str, str]:
    """Finish a one-split fit (or the fold a stop ended): files, state and message."""
    if fitted.diverged:
        advice = f"Training diverged ({fitted.diverged}): lower the learning rate and try again."
        if not fitted.usable:
            return "failed", advice + " No epoch finished, so there is no model to keep."
        outcome = finish_split(config, run, fitter, fitted, prep, splits, settings, info)
        return "failed", _message(outcome, advice + " The last good weights were kept.")
    outcome = finish_split(config, run, fitter, fitted, prep, splits, settings, info)
    fit = fitted.result
    if fit.stopped == "stopped on request":
        words = stopped_words or (f"Stopped on request after {len(fit.history)} epoch(s); the best model so far "
                                  "was kept.")
        return "stopped", _message(outcome, words)
    return "done", _message(outcome)


def _train_crossval(config: RunConfig, run: RunFolder, stopper: StopWatcher, prep: Prepared, fitter: Fitter,
                    settings: Preprocessing, resume: bool) -> tuple[str, str]:
    """K folds, then the final model; a stop keeps the fold in progress as a one-split result."""
    cv = run_crossval(config, prep, fitter, run, stopper, config.folds, resume=resume,
                      feature_progress=_progress(run, "features", "Computing features", stopper, fitter.clock))
    if not ddp.world().is_main:  # rank 0 scores and packages the model
        return _rank_state(cv.stopped_fitted or cv.final)
    if cv.stopped_fold:
        fitted, k = cv.stopped_fitted, cv.stopped_fold
        words = (f"Stopped on request during fold {k} of {cv.folds} after {len(fitted.result.history)} epoch(s); "
                 f"the best model so far was kept, scored on that fold's {len(cv.stopped_splits['test'])} photos. "
                 f"Resume to finish the cross-validation ({len(cv.results)} fold(s) are done).")
        info = {"crossval": {"folds": cv.folds, "completed": False, "stopped_in_fold": k}}
        return _end_split(config, run, fitter, fitted, prep, cv.stopped_splits, settings, info, words)
    if cv.final is None:
        return "failed", (f"Training diverged ({cv.diverged}): lower the learning rate and try again. "
                          "The cross-validation could not finish, so there is no model to keep.")
    if fitter.clock is not None:
        fitter.clock.begin("finish")
    outcome = finish_crossval(config, run, fitter, cv, prep, settings)
    if cv.diverged:
        return "failed", _message(outcome, f"Training diverged in the final fit ({cv.diverged}): lower the learning "
                                           "rate and try again. The last good weights were kept.")
    fit = cv.final.result
    if fit and fit.stopped == "stopped on request":
        return "stopped", _message(outcome, f"Stopped on request during the final fit after {len(fit.history)} of "
                                            f"{cv.final_epochs} epoch(s); that model was kept, but the numbers "
                                            f"describe models trained {cv.final_epochs} epochs. Resume to finish.")
    return "done", _message(outcome)


def _rank_state(fitted: Fitted | None) -> tuple[str, str]:
    """How a DDP rank other than 0 ended its fit (it leaves the files and the message to rank 0)."""
    if fitted is None or fitted.diverged:
        return "failed", ""
    return ("stopped" if fitted.result and fitted.result.stopped else "done"), ""


def _message(outcome: Outcome, note: str = "") -> str:
    """The verdict first (the interface other checks rely on), then what happened, then the numbers."""
    text = summary(outcome.metrics, outcome.verdict)
    if not note:
        return text
    head, _, rest = text.partition(" Accuracy ")
    return f"{head} {note} Accuracy {rest}" if rest else f"{text} {note}"


def _emit_start(run: RunFolder, config: RunConfig, prep: Prepared, runtime: Runtime, backbone: str,
                image_size: int) -> None:
    folds = config.folds or 1
    splits = {k: len(v) for k, v in prep.splits.items()} if folds < 2 else {"folds": folds, "photos": len(prep.ds.samples)}
    run.emit("run_start", config=config.to_dict(), backbone=backbone, image_size=image_size,
             classes=prep.ds.classes, tasks=[{"name": t.name, "classes": list(t.classes)} for t in prep.tasks],
             splits=splits, folds=folds, **runtime.describe())
    run.set_status("running", "Training started.", **runtime.describe())
