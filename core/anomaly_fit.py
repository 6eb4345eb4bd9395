"""Good-parts-only training inside a run (``--strategy anomaly``): what :func:`core.pipeline.train_run` calls.

The good training photos' patches become the memory bank (:mod:`core.anomaly`); the threshold is the
percentile of the held-out good photos' scores at the target false-alarm rate (default 1%), or, when
defect photos were held out for validation, the best trade-off on them, as for classifiers. Scores are
normalised so the threshold sits at 0.5; the model then reads as a two-class model (good class and
``defect``), so the metrics, ``predictions.csv``, ``decision.json`` and the Evaluate views work unchanged.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .anomaly import (DEFAULT_FALSE_ALARM_TARGET, DEFECT, Normaliser, PatchFeatures, coreset_size, greedy_coreset,
                      nearest_distance, patch_features, save_memory, threshold_for_false_alarms)
from .callbacks import StopWatcher
from .check import FEW_PER_CLASS
from .config import RunConfig
from .decision import Decision, Targets
from .errors import GraftError
from .finishing import model_info
from .jsonio import write_json_atomic
from .metrics import band_summary, choose_threshold, score
from .model import GraftModel, Task
from .numbers import fmt_pct, fmt_range
from .package import ModelSpec, save_package
from .parallel import ProgressFn
from .predictions_file import ScoredRows, write_predictions
from .preprocess import Preprocessing
from .runs import RunFolder
from .verdict import Verdict, judge

if TYPE_CHECKING:
    from .eta import RunClock
    from .fitting import Fitter
    from .pipeline import Prepared

__all__ = ["train_anomaly", "anomaly_splits", "require_good_class", "anomaly_verdict", "false_alarm_target",
           "binary_labels"]


def require_good_class(config: RunConfig) -> str:
    """The good class of a good-parts-only run, or a plain error naming the fix."""
    if not config.good_class:  # the app sets the workspace: its user marks the class on the Data page
        hint = ("Mark the good class on the Data page." if config.workspace
                else "Name the good class, e.g. --good-class ok.")
        raise GraftError("Good-parts-only mode learns from photos of good parts, so it needs to know which class "
                         "holds them.", hint=hint)
    return config.good_class


def false_alarm_target(config: RunConfig) -> float:
    """The share of good parts the threshold may flag (``config.extra['false_alarm_target']``, default 1%)."""
    target = float(config.extra.get("false_alarm_target", DEFAULT_FALSE_ALARM_TARGET))
    if not 0.0 < target < 0.5:
        raise GraftError("The target false-alarm rate must be between 0% and 50% (for example 1%).")
    return target


def anomaly_splits(prep: "Prepared", good: str) -> dict[str, list[int]]:
    """The run's split with the defect photos the split gave to training moved to validation (they don't train)."""
    samples = prep.ds.samples
    splits = {k: list(v) for k, v in prep.splits.items()}
    moved = [i for i in splits["train"] if samples[i].label != good]
    splits["train"] = [i for i in splits["train"] if samples[i].label == good]
    splits["val"] = sorted(splits["val"] + moved)
    return splits


def binary_labels(labels: list[str], good: str) -> np.ndarray:
    """0 for the good class, 1 (``defect``) for every other class."""
    return np.array([0 if label == good else 1 for label in labels], dtype=np.int64)


def _emitter(run: RunFolder, phase: str, label: str, clock: "RunClock | None" = None) -> ProgressFn:
    """Progress events and status for a phase that a stop request ends gracefully (no exception).

    With the run's clock, ``eta_s`` is the whole run's time left (the memory's own is ``phase_eta_s``).
    """
    def report(done: int, total: int, eta: float) -> None:
        whole = eta
        if clock is not None:  # the memory's picks as a share of its planned work
            clock.progress("memory", done, total, relative=True)
            whole = clock.eta()
        run.emit("progress", phase=phase, done=done, total=total, eta_s=whole, phase_eta_s=eta)
        run.set_status("running", f"{label}: {done} of {total}.", eta_s=whole)
    return report


def _photo_scores(patches: torch.Tensor, index: list[int], bank: torch.Tensor) -> np.ndarray:
    """Each photo's score: the largest nearest-neighbour distance of its patches."""
    if not index:
        return np.zeros(0)
    grid = patches.shape[1] * patches.shape[2]
    out = []
    for start in range(0, len(index), 16):
        chunk = patches[index[start:start + 16]]
        d = nearest_distance(chunk.reshape(-1, chunk.shape[-1]), bank)
        out.append(d.view(len(chunk), grid).max(1).values.numpy())
    return np.concatenate(out).astype(np.float64)


def _threshold(raw_val: np.ndarray, y_val: np.ndarray, target: float) -> tuple[Normaliser, str]:
    """The percentile of held-out good scores, or the best trade-off when defects were held out too."""
    good = raw_val[y_val == 0]
    norm = Normaliser.fit(good, threshold_for_false_alarms(good, target))
    if not (y_val == 1).any():
        return norm, "false-alarm target"
    scores = norm.score(raw_val)
    best = choose_threshold(y_val, np.stack([1 - scores, scores], 1), ["good", DEFECT], "good")
    return Normaliser(norm.raw(best), norm.scale), "best trade-off on validation defects"


def train_anomaly(config: RunConfig, run: RunFolder, stopper: StopWatcher, prep: "Prepared", fitter: "Fitter",
                  settings: Preprocessing, feature_progress: ProgressFn | None = None) -> tuple[str, str]:
    """Build the memory bank, set the threshold, write metrics, predictions and the package.

    Returns:
        ``(state, message)``: ``done``, or ``stopped`` when a stop request ended the memory early (the
        patches chosen so far are kept). A stop while features are computed raises
        :class:`core.callbacks.StopRequested` (nothing is kept).
    """
    good, target, t0 = require_good_class(config), false_alarm_target(config), time.monotonic()
    splits = anomaly_splits(prep, good)
    if not splits["val"] or not any(prep.ds.samples[i].label == good for i in splits["val"]):
        raise GraftError("There are too few photos of good parts to keep some aside for setting the threshold.",
                         hint="Add photos of good parts: at least 10.")
    trunk = fitter.new_model().trunk.eval()
    extractor = PatchFeatures(trunk)
    run.set_status("running", "Computing patch features…")
    patches = patch_features(extractor, fitter.images, fitter.dcfg["mean"], fitter.dcfg["std"], fitter.runtime,
                             progress=feature_progress)
    train = patches[splits["train"]].reshape(-1, patches.shape[-1])
    k = coreset_size(len(train))
    chosen = greedy_coreset(train, k, seed=config.seed, should_stop=stopper.requested,
                            progress=_emitter(run, "train", "Building the memory of good parts", fitter.clock))
    bank, stopped = train[chosen].float(), stopper.requested()
    run.set_status("running", "Scoring the held-out photos…")
    labels = [s.label for s in prep.ds.samples]
    y = binary_labels(labels, good)
    raw = {split: _photo_scores(patches, splits[split], bank) for split in ("val", "test")}
    norm, rule = _threshold(raw["val"], y[splits["val"]], target)
    memory = {"stages": extractor.stages, "grid": list(patches.shape[1:3]), "dims": int(patches.shape[-1]),
              "bank_size": int(len(bank)), "patches": int(len(train)), "photos": len(splits["train"]),
              "normaliser": norm.to_json(), "false_alarm_target": target, "threshold_rule": rule,
              "fit_seconds": time.monotonic() - t0, "stopped_early": stopped}
    metrics = _metrics(splits, y, raw, norm, good, memory)
    _write(config, run, fitter, prep, splits, raw, norm, metrics, bank, trunk, settings, memory)
    return ("stopped" if stopped else "done"), _message(metrics, memory) + _shaky(prep.report.counts.get(good, 0))


def _shaky(good_photos: int) -> str:
    """The check's warning about few good photos, repeated where the user reads the run's outcome."""
    if good_photos >= FEW_PER_CLASS:
        return ""
    return (f" Only {good_photos} photos of good parts: the threshold is set on a few of them and will be shaky "
            f"below {FEW_PER_CLASS}. Add good photos.")


def _probs(raw: np.ndarray, norm: Normaliser) -> np.ndarray:
    scores = norm.score(raw)
    return np.stack([1 - scores, scores], 1) if len(raw) else np.zeros((0, 2))


def _metrics(splits: dict[str, list[int]], y: np.ndarray, raw: dict[str, np.ndarray], norm: Normaliser, good: str,
             memory: dict[str, Any]) -> dict[str, Any]:
    """Held-out figures on test (else validation) at the normalised threshold 0.5, and the verdict."""
    split = "test" if splits["test"] else "val"
    held, probs, classes = y[splits[split]], _probs(raw[split], norm), [good, DEFECT]
    metrics = score(held, probs, classes, good, 0.5)
    metrics["threshold"] = 0.5
    metrics["uncertain"] = band_summary(probs, held, classes, good, 0.5, Decision().uncertain_band)
    metrics["targets"] = asdict(Targets())
    metrics.update(evaluated_on=split, best_epoch=None, epochs_run=1, stopped_early="",
                   splits={k: len(v) for k, v in splits.items()}, tasks={}, anomaly=memory)
    metrics["verdict"] = anomaly_verdict(metrics).to_dict()
    return metrics


def anomaly_verdict(metrics: dict[str, Any], targets: Targets | None = None) -> Verdict:
    """As for classifiers when defect photos were held out; without them, what the good photos show."""
    if metrics.get("defects"):
        return judge(metrics, targets)
    n, alarms = int(metrics.get("good_parts") or 0), metrics.get("false_alarm_rate")
    if not n or alarms is None:
        return Verdict("not_usable", "No photos were held out to check it on.")
    low, high = (metrics.get("ranges") or {}).get("false_alarm_rate") or (0.0, 1.0)
    return Verdict("promising", f"It raised false alarms on {fmt_pct(alarms)} of {n} good photos it did not learn "
                                f"from ({fmt_range(low, high)}), but there were no defect photos to check it on, so "
                                "nothing shows yet how many defects it catches. Try it on a few defective parts.")


def _rows(split: str, prep: "Prepared", idx: list[int], raw: np.ndarray, norm: Normaliser, good: str) -> ScoredRows:
    probs = _probs(raw, norm)
    samples = [prep.ds.samples[i] for i in idx]
    labels = [good if s.label == good else DEFECT for s in samples]
    predicted = [DEFECT if p >= 0.5 else good for p in probs[:, 1]]
    return ScoredRows(split, [s.rel for s in samples], labels, probs, predicted, 0.5)


def _write(config: RunConfig, run: RunFolder, fitter: "Fitter", prep: "Prepared", splits: dict[str, list[int]],
           raw: dict[str, np.ndarray], norm: Normaliser, metrics: dict[str, Any], bank: torch.Tensor,
           trunk: torch.nn.Module, settings: Preprocessing, memory: dict[str, Any]) -> None:
    """predictions.csv, metrics.json, and the package: weights, memory bank, decision, spec (last)."""
    good, classes = config.good_class, [config.good_class, DEFECT]
    parts = [_rows(s, prep, splits[s], raw[s], norm, good) for s in ("val", "test") if splits[s]]
    write_predictions(run.predictions_file, classes, parts)
    write_json_atomic(run.metrics_file, metrics)
    tasks = [Task("label", tuple(classes), good)]
    run.model_dir.mkdir(parents=True, exist_ok=True)
    save_memory(run.model_dir, bank, tuple(memory["grid"]))
    spec = ModelSpec(backbone=fitter.backbone, tasks=tasks, classes=classes, image_size=settings.size,
                     mean=list(settings.mean), std=list(settings.std), good_class=good, threshold=0.5,
                     info=model_info(config, run), resize=settings.resize, bit_depth=settings.bit_depth,
                     pad_colour=settings.pad_colour, anomaly={k: v for k, v in memory.items() if k != "fit_seconds"})
    decision = Decision(threshold=0.5, good_class=good, chosen_on="validation", threshold_from_training=0.5)
    tuned = splits["train"] + splits["val"]
    hashes = [prep.report.hashes[prep.ds.samples[i].rel] for i in tuned]
    save_package(GraftModel(trunk, tasks), spec, run.model_dir, decision=decision, training_hashes=hashes)


def _message(metrics: dict[str, Any], memory: dict[str, Any]) -> str:
    """The verdict first (as for every run), then what was built and the held-out numbers."""
    verdict = Verdict(**metrics["verdict"])
    text = (f"{verdict.text()} Memory of {memory['bank_size']} good patches from {memory['photos']} photos of good "
            f"parts; threshold set by the {memory['threshold_rule']} "
            f"(target: {fmt_pct(memory['false_alarm_target'])} false alarms).")
    if memory["stopped_early"]:
        text += " Stopped on request while building the memory; the patches chosen so far were kept."
    if metrics.get("catch_rate") is not None:
        text += f" Defects caught: {fmt_pct(metrics['catch_rate'])}."
    if metrics.get("false_alarm_rate") is not None:
        text += f" False alarms: {fmt_pct(metrics['false_alarm_rate'])} of {metrics['good_parts']} good photos."
    return text
