"""K-fold cross-validation for small datasets: every photo scored by a model that never trained on it.

With 300 photos or fewer a single 70/15/15 split leaves a handful of photos to choose the threshold
and judge the model. Here the photos are split into K folds (stratified by class; exact copies and
near-copies stay in one fold, see :mod:`core.copies`). For each fold a fresh model trains on the other
folds with the strategy's fixed schedule (:mod:`core.recipes`) and scores the fold's photos: their
out-of-fold (OOF) scores. Then the model that ships trains on every photo with the same schedule, so
the folds measured exactly the recipe that produced it.

The threshold is *cross-fitted*: each fold's photos are decided with a threshold chosen on the other
folds' OOF scores, so the headline numbers never judge a threshold on the scores it was fitted to
(choosing one threshold on all OOF scores and scoring the same scores with it would flatter them).
The shipped model gets the threshold chosen on all OOF scores.

Finished folds are kept in ``RUN/crossval/`` so ``--resume`` redoes only the unfinished ones (and the
final fit). Events carry ``stage`` (``fold`` or ``final``), ``fold`` and ``folds``; the ETA counts the
remaining folds and the final fit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .callbacks import EventWriter, StopWatcher
from .config import RunConfig
from .ddp import world
from .errors import GraftError
from .folds import CV_MAX_PHOTOS, DEFAULT_FOLDS, default_folds, relative_cost  # torch-free, re-exported
from .jsonio import read_json, write_json_atomic
from .metrics import choose_threshold
from .runs import RunFolder
from .split import group_of, split_indices
from .tasks import label_probs

if TYPE_CHECKING:
    from .eta import RunClock
    from .fitting import Fitted, Fitter
    from .pipeline import Prepared

__all__ = ["CrossVal", "FoldResult", "default_folds", "relative_cost", "resolve_folds", "assign_folds",
           "fold_splits", "run_crossval", "oof_probs", "oof_task_probs", "cross_fit_thresholds",
           "has_progress", "CV_MAX_PHOTOS", "DEFAULT_FOLDS", "CROSSVAL_DIR"]

CROSSVAL_DIR = "crossval"
STATUS_EVERY_S = 1.0  # the live view polls once a second; a fold's many short epochs need not each fsync status.json
Splits = dict[str, list[int]]


def resolve_folds(requested: int | None, prep: "Prepared") -> int:
    """The fold count for this run: the one asked for, else by dataset size; 1 when a CSV fixes the splits.

    Raises:
        GraftError: folds asked for on a dataset whose CSV fixes the splits.
    """
    fixed = any(s.split for s in prep.ds.samples)
    if requested is None:
        return 1 if fixed else default_folds(len(prep.ds.samples))
    if requested >= 2 and fixed:
        raise GraftError("The CSV fixes which photos are for training and testing, so they can't be "
                         "cross-validated.", hint="Remove the CSV's split column, or train with --folds 1.")
    return int(requested)


def assign_folds(prep: "Prepared", folds: int, seed: int) -> list[int]:
    """Fold number (1..K) per photo: stratified by class, each copy group in one fold.

    Fewer folds are used when there are fewer copy groups (or photos in the largest class) than folds.

    Raises:
        GraftError: fewer than two groups of distinct photos.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    samples, groups_map = prep.ds.samples, prep.report.groups
    keys = [group_of(prep.ds, i, groups_map) for i in range(len(samples))]
    ids = {key: n for n, key in enumerate(dict.fromkeys(keys))}
    groups = np.array([ids[key] for key in keys])
    y = np.array([prep.ds.classes.index(s.label) for s in samples])
    k = min(folds, len(ids), int(np.bincount(y).max()))  # no more folds than the largest class has photos
    if k < 2:
        raise GraftError("There are too few different photos to cross-validate.", hint="Add photos to each class.")
    out = np.zeros(len(samples), dtype=int)
    with warnings.catch_warnings():  # "the least populated class has fewer members than folds": expected here
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for fold, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups), start=1):
            out[test] = fold
    used = sorted(set(out.tolist()))  # a fold left empty is dropped and the rest renumbered
    return [used.index(f) + 1 for f in out.tolist()]


@dataclass
class FoldResult:
    """One finished fold: its photos' out-of-fold probabilities and how its fit went."""

    fold: int
    test: list[int]
    probs: list[list[float]]  # label-level, per test photo
    task_probs: dict[str, list[list[float]]]
    best_epoch: int | None
    epochs_run: int
    seconds: float
    n_train: int
    n_val: int

    def to_json(self, key: str) -> dict[str, Any]:
        return {"key": key, **self.__dict__}


@dataclass
class CrossVal:
    """How a cross-validation went: finished folds, the final model, or where it stopped or diverged."""

    folds: int
    assignment: list[int]
    results: list[FoldResult] = field(default_factory=list)
    final: "Fitted | None" = None
    final_epochs: int = 0
    stopped_fold: int = 0  # the fold a stop request ended (0: none, or during the final fit)
    stopped_fitted: "Fitted | None" = None
    stopped_splits: Splits | None = None
    diverged: str = ""

    @property
    def complete(self) -> bool:
        return len(self.results) == self.folds and self.final is not None


def has_progress(run_dir: str | Path) -> bool:
    """Whether an interrupted cross-validation left finished folds to continue from."""
    return any((Path(run_dir) / CROSSVAL_DIR).glob("fold-*.json"))


# --- the fold loop -----------------------------------------------------------------------------


def run_crossval(config: RunConfig, prep: "Prepared", fitter: "Fitter", run: RunFolder, stopper: StopWatcher,
                 folds: int, resume: bool = False, feature_progress: Callable[..., None] | None = None) -> CrossVal:
    """Fit every fold (reusing folds finished before when resuming), then the final model on every photo.

    The Fitter keeps the decoded photos (and, for feature extraction, the features) between fits, so
    only the first fit pays for them; ``feature_progress`` reports that once.
    """
    assignment = assign_folds(prep, folds, config.seed)
    folds = max(assignment)
    key = _key(config, prep, assignment)
    store = Path(run.path) / CROSSVAL_DIR
    if not resume and store.exists() and world().is_main:  # only DDP rank 0 writes the run folder
        shutil.rmtree(store)  # a fresh run in an old folder starts over
    cv = CrossVal(folds, assignment)
    clock = _Clock(fitter.clock)
    clock.plan_folds([fold_splits(prep, assignment, k, config) for k in range(1, folds + 1)], len(assignment))
    for fold in range(1, folds + 1):
        done = _load_fold(store, fold, key) if resume else None
        if done is not None:
            cv.results.append(done)
            run.emit("fold", stage="fold", fold=fold, folds=folds, state="reused", best_epoch=done.best_epoch)
            continue
        if not _fit_fold(config, prep, fitter, run, stopper, cv, fold, clock, store, key, feature_progress):
            return cv
        feature_progress = None
    _fit_final(config, prep, fitter, run, stopper, cv, clock, feature_progress)
    return cv


def _fit_fold(config: RunConfig, prep: "Prepared", fitter: "Fitter", run: RunFolder, stopper: StopWatcher,
              cv: CrossVal, fold: int, clock: "_Clock", store: Path, key: str,
              feature_progress: Callable[..., None] | None) -> bool:
    """Fit one fold and keep its result; False when the cross-validation must end here (stop, divergence)."""
    splits = fold_splits(prep, cv.assignment, fold, config)
    clock.start(f"fold-{fold}")
    run.emit("fold", stage="fold", fold=fold, folds=cv.folds, state="start", n_train=len(splits["train"]),
             n_val=len(splits["val"]), n_test=len(splits["test"]), eta_s=clock.eta())
    stage = _StageRun(run, {"stage": "fold", "fold": fold, "folds": cv.folds},
                      f"Cross-validation, fold {fold} of {cv.folds}")
    fitted = fitter.fit(splits, callbacks=[stopper, EventWriter(stage, clock=fitter.clock)], checkpoint=False,
                        feature_progress=feature_progress)
    if fitted.diverged:
        cv.diverged = fitted.diverged
        return False
    if fitted.result.stopped == "stopped on request":
        cv.stopped_fold, cv.stopped_fitted, cv.stopped_splits = fold, fitted, splits
        return False
    clock.begin("score")
    result = _fold_result(fold, splits, fitted, prep, clock.seconds())
    if world().is_main:
        store.mkdir(parents=True, exist_ok=True)
        write_json_atomic(store / f"fold-{fold}.json", result.to_json(key))
    cv.results.append(result)
    run.emit("fold", stage="fold", fold=fold, folds=cv.folds, state="done", best_epoch=result.best_epoch,
             epochs_run=result.epochs_run, seconds=result.seconds, eta_s=clock.eta())
    return True


def fold_splits(prep: "Prepared", assignment: list[int], fold: int, config: RunConfig) -> Splits:
    """Train on the other folds minus a validation share of them, test on this fold."""
    others = [i for i, f in enumerate(assignment) if f != fold]
    inner = split_indices(prep.ds, others, prep.report.groups, val=config.val_fraction, test=0.0,
                          seed=config.seed + fold, fixed=False)
    return {"train": inner["train"], "val": inner["val"], "test": [i for i, f in enumerate(assignment) if f == fold]}


def _fold_result(fold: int, splits: Splits, fitted: "Fitted", prep: "Prepared", seconds: float) -> FoldResult:
    task_probs = fitted.predict("test")
    probs = label_probs(task_probs, prep.tasks, prep.ds.classes)
    fit = fitted.result
    best = fit.best_epoch if splits["val"] and fit.best_epoch else None
    return FoldResult(fold, list(splits["test"]), probs.tolist(), {k: v.tolist() for k, v in task_probs.items()},
                      best, len(fit.history), seconds, len(splits["train"]), len(splits["val"]))


def _fit_final(config: RunConfig, prep: "Prepared", fitter: "Fitter", run: RunFolder, stopper: StopWatcher,
               cv: CrossVal, clock: "_Clock", feature_progress: Callable[..., None] | None = None) -> None:
    cv.final_epochs = config.resolved_epochs  # the same fixed schedule every fold ran
    everything = list(range(len(prep.ds.samples)))
    clock.start("final")
    run.emit("fold", stage="final", folds=cv.folds, state="start", epochs=cv.final_epochs, n_train=len(everything),
             eta_s=clock.eta())
    stage = _StageRun(run, {"stage": "final", "folds": cv.folds},
                      f"Final model on every photo ({cv.final_epochs} epoch(s))")
    fitted = fitter.fit({"train": everything, "val": [], "test": []},
                        callbacks=[stopper, EventWriter(stage, clock=fitter.clock)], checkpoint=False,
                        feature_progress=feature_progress)
    if fitted.diverged and not fitted.usable:
        cv.diverged = fitted.diverged
        return
    cv.final, cv.diverged = fitted, fitted.diverged


# --- out-of-fold scores and their thresholds ------------------------------------------------------------


def oof_probs(cv: CrossVal, n: int, n_classes: int) -> np.ndarray:
    """(N, K) label probabilities, each photo's from the fold model that didn't train on it."""
    out = np.zeros((n, n_classes))
    for r in cv.results:
        out[r.test] = np.asarray(r.probs, dtype=float)
    return out


def oof_task_probs(cv: CrossVal, n: int, tasks: list) -> dict[str, np.ndarray]:
    out = {t.name: np.zeros((n, len(t.classes))) for t in tasks}
    for r in cv.results:
        for name, values in r.task_probs.items():
            out[name][r.test] = np.asarray(values, dtype=float)
    return out


def cross_fit_thresholds(y: np.ndarray, probs: np.ndarray, folds: np.ndarray, classes: list[str],
                         good_class: str) -> tuple[np.ndarray, dict[int, float], float]:
    """Each photo's threshold chosen on the *other* folds' out-of-fold scores, and the one for the shipped model.

    Returns:
        (threshold per photo, threshold per fold, threshold on all out-of-fold scores).
    """
    per_fold = {}
    for fold in sorted(set(folds.tolist())):
        others = folds != fold
        per_fold[int(fold)] = choose_threshold(y[others], probs[others], classes, good_class)
    per_photo = np.array([per_fold[int(f)] for f in folds])
    return per_photo, per_fold, choose_threshold(y, probs, classes, good_class)


# --- resuming ------------------------------------------------------------------------------------


_KEY_FIELDS = ("backbone", "start", "strategy", "good_class", "epochs", "image_size", "batch_size", "lr", "seed",
               "patience", "val_fraction", "folds", "resize")


def _key(config: RunConfig, prep: "Prepared", assignment: list[int]) -> str:
    """What a finished fold's result depends on: the photos, their folds and the training settings."""
    settings = {k: getattr(config, k) for k in _KEY_FIELDS}
    settings["strategy"] = config.strategy.value
    photos = [(s.rel, prep.report.hashes.get(s.rel, ""), s.label) for s in prep.ds.samples]
    return hashlib.sha256(json.dumps([settings, photos, assignment], default=str).encode()).hexdigest()[:24]


def _load_fold(store: Path, fold: int, key: str) -> FoldResult | None:
    data = read_json(store / f"fold-{fold}.json")
    if not isinstance(data, dict) or data.get("key") != key:
        return None  # another dataset or other settings: redo it
    data.pop("key")
    try:
        return FoldResult(**data)
    except TypeError:
        return None


# --- progress ------------------------------------------------------------------------------------


class _Clock:
    """The cross-validation's view of the whole run's clock (:class:`core.eta.RunClock`): which fit is under
    way, and how long the current one has taken. Without a run clock (a Fitter made outside
    :func:`core.pipeline.train_run`) it only times the folds."""

    def __init__(self, clock: "RunClock | None") -> None:
        self.clock, self.t0 = clock, time.monotonic()

    def plan_folds(self, splits: list[Splits], photos: int) -> None:
        """The exact fold sizes, once the folds are assigned, and each fit's photos new to training (the probe
        reads their extra views; the final fit trains on all ``photos``)."""
        if self.clock is not None and getattr(self.clock, "shape", None) is not None:
            sizes = tuple((len(s["train"]), len(s["val"]), len(s["test"])) for s in splits)
            seen: set[int] = set()
            new = []
            for s in splits:
                new.append(len(set(s["train"]) - seen))
                seen.update(s["train"])
            new.append(photos - len(seen))
            self.clock.replan(dataclasses.replace(self.clock.shape, folds=len(splits), fold_sizes=sizes,
                                                  fold_new=tuple(new)))

    def start(self, stage: str) -> None:
        self.t0 = time.monotonic()
        if self.clock is not None:
            self.clock.stage = stage
            self.clock.begin("features")

    def begin(self, task: str) -> None:
        if self.clock is not None:
            self.clock.begin(task)

    def seconds(self) -> float:
        return time.monotonic() - self.t0

    def eta(self) -> float | None:
        """Seconds left for the whole run (every remaining fold and the final fit)."""
        return self.clock.eta() if self.clock is not None else None


class _StageRun:
    """A run folder as one fit of a cross-validation sees it: its events and status say which fit it is.

    Their ``eta_s`` (the whole run) and ``fit_eta_s`` (this fit) come from the run's clock, through the
    fit's :class:`core.callbacks.EventWriter`.
    """

    def __init__(self, run: RunFolder, fields: dict[str, Any], label: str) -> None:
        self.run, self.path, self.fields, self.label = run, run.path, fields, label
        self._status_at = 0.0

    def emit(self, event: str, **data: Any) -> None:
        self.run.emit(event, **data, **self.fields)

    def set_status(self, state: str, message: str = "", **extra: Any) -> None:
        now = time.monotonic()
        if now - self._status_at < STATUS_EVERY_S:
            return  # the events still record every epoch
        self._status_at = now
        self.run.set_status(state, f"{self.label}. {message}".strip(), **extra, **self.fields)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self.run, name)  # anything else (heartbeat, stop file) is the run's own
