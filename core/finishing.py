"""What a run leaves behind when it ends: held-out figures with ranges and a verdict (``metrics.json``),
every scored photo (``predictions.csv``), and the model package with its decision file.

Two shapes of result share this code. A *split* result (one train/val/test split, or the fold a stop
request ended a cross-validation in): the threshold is chosen on the validation photos and the test
photos (validation when there are none) give the held-out figures. A *cross-validation* result:
out-of-fold scores for every photo, decided with cross-fitted thresholds (:mod:`core.crossval`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import RunConfig
from .crossval import CrossVal, cross_fit_thresholds, oof_probs, oof_task_probs
from .decision import Decision, Targets
from .jsonio import write_json_atomic
from .metrics import band_summary, choose_threshold, decide, score
from .numbers import fmt_pct
from .package import ModelSpec, save_package
from .predictions_file import ScoredRows, write_predictions
from .preprocess import Preprocessing
from .runs import RunFolder
from .tasks import label_probs
from .verdict import Verdict, judge

if TYPE_CHECKING:
    from .fitting import Fitted, Fitter
    from .pipeline import Prepared

__all__ = ["Outcome", "finish_split", "finish_crossval", "summary", "model_info"]


@dataclass
class Outcome:
    """What was written: the held-out metrics and their verdict."""

    metrics: dict[str, Any]
    verdict: Verdict
    extra: dict[str, Any] = field(default_factory=dict)


def _labels(prep: "Prepared") -> np.ndarray:
    classes = prep.ds.classes
    return np.array([classes.index(s.label) for s in prep.ds.samples])


def finish_split(config: RunConfig, run: RunFolder, fitter: "Fitter", fitted: "Fitted", prep: "Prepared",
                 splits: dict[str, list[int]], preprocessing: Preprocessing,
                 info: dict[str, Any] | None = None) -> Outcome:
    """Threshold on validation, held-out figures on test (else validation), files and the package."""
    run.set_status("running", "Scoring the held-out photos…")
    classes, good, y = prep.ds.classes, config.good_class, _labels(prep)
    val_tasks = fitted.predict("val")
    val_p = label_probs(val_tasks, prep.tasks, classes)
    threshold = choose_threshold(y[splits["val"]], val_p, classes, good) if good else 0.5
    split = "test" if splits["test"] else "val"
    task_probs = fitted.predict(split) if split == "test" else val_tasks
    probs = label_probs(task_probs, prep.tasks, classes) if split == "test" else val_p
    held = splits[split]
    fit = fitted.result
    metrics = _held_out(y[held], probs, classes, good, threshold, threshold)
    metrics.update(evaluated_on=split, best_epoch=fit.best_epoch if fit else None,
                   epochs_run=len(fit.history) if fit else None, stopped_early=fit.stopped if fit else "",
                   splits={k: len(v) for k, v in splits.items()},
                   tasks=_task_metrics(task_probs, prep, held), **(info or {}))
    parts = [_rows("val", prep, splits["val"], val_p, threshold, good)]
    if split == "test":
        parts.append(_rows("test", prep, held, probs, threshold, good))
    tuned = splits["train"] + splits["val"]  # the photos that shaped the model: epochs and threshold too
    return _write(config, run, fitter, fitted, prep, metrics, parts, threshold, tuned, preprocessing,
                  "validation")


def finish_crossval(config: RunConfig, run: RunFolder, fitter: "Fitter", cv: CrossVal, prep: "Prepared",
                    preprocessing: Preprocessing) -> Outcome:
    """Out-of-fold figures with cross-fitted thresholds, files, and the final model's package."""
    run.set_status("running", "Scoring the out-of-fold photos…")
    classes, good, y = prep.ds.classes, config.good_class, _labels(prep)
    n = len(prep.ds.samples)
    probs, folds = oof_probs(cv, n, len(classes)), np.asarray(cv.assignment)
    if good:
        per_photo, per_fold, final = cross_fit_thresholds(y, probs, folds, classes, good)
    else:
        per_photo, per_fold, final = np.full(n, 0.5), {f: 0.5 for f in range(1, cv.folds + 1)}, 0.5
    final, rule = _threshold_for_final(cv, prep, y, probs, per_photo, final, good) if good else (final, "cross-fit")
    metrics = _held_out(y, probs, classes, good, per_photo, final)
    fit = cv.final.result
    metrics.update(evaluated_on="oof", best_epoch=None, epochs_run=len(fit.history) if fit else None,
                   stopped_early=fit.stopped if fit else "", splits={"oof": n, "train": n},
                   tasks=_task_metrics(oof_task_probs(cv, n, prep.tasks), prep, list(range(n))),
                   crossval={"folds": cv.folds, "completed": True, "threshold_rule": rule,
                             "fold_thresholds": [per_fold[f] for f in sorted(per_fold)],
                             "fold_sizes": [int((folds == f).sum()) for f in sorted(per_fold)],
                             "best_epochs": [r.best_epoch for r in cv.results], "final_epochs": cv.final_epochs})
    parts = [_rows("oof", prep, list(range(n)), probs, per_photo, good, folds)]
    return _write(config, run, fitter, cv.final, prep, metrics, parts, final, list(range(n)), preprocessing,
                  "out-of-fold")


def _threshold_for_final(cv: CrossVal, prep: "Prepared", y: np.ndarray, oof: np.ndarray, per_photo: np.ndarray,
                         threshold: float, good: str) -> tuple[float, str]:
    """The shipped model's threshold: the one chosen on all out-of-fold scores, unless the final model's
    scores sit elsewhere, so that it would give one answer for every photo it trained on.

    Then (a barely trained model's scores drift between fits) the threshold is chosen on the final
    model's own training photos, and the rule says so: the held-out figures describe the fold models.
    """
    classes = prep.ds.classes
    g = classes.index(good)
    own = label_probs(cv.final.predict("train"), prep.tasks, classes)
    flagged = decide(own, classes, good, threshold) != g
    folds_flag = decide(oof, classes, good, per_photo) != g
    if flagged.any() != flagged.all() or folds_flag.any() == folds_flag.all():
        return threshold, "cross-fit"
    return choose_threshold(y, own, classes, good), "final model's training photos (the out-of-fold threshold " \
        "gave it one answer for every photo)"


def _held_out(y: np.ndarray, probs: np.ndarray, classes: list[str], good: str | None,
              thresholds: float | np.ndarray, threshold: float) -> dict[str, Any]:
    """score() of the held-out photos plus the uncertain band's cost and the user's default targets."""
    metrics = score(y, probs, classes, good, thresholds)
    if good:
        metrics["threshold"] = float(threshold)  # the shipped model's (cross-validation: chosen on all folds)
    metrics["uncertain"] = band_summary(probs, y, classes, good, thresholds, Decision().uncertain_band)
    metrics["targets"] = asdict(Targets())
    return metrics


def _task_metrics(probs: dict[str, np.ndarray], prep: "Prepared", held: list[int]) -> dict[str, dict]:
    if len(prep.tasks) < 2:
        return {}
    out = {}
    for task in prep.tasks:
        y = prep.targets[task.name][held]
        keep = y >= 0
        out[task.name] = score(y[keep], probs[task.name][keep], list(task.classes))
    return out


def _rows(split: str, prep: "Prepared", idx: list[int], probs: np.ndarray, thresholds: float | np.ndarray,
          good: str | None, folds: np.ndarray | None = None) -> ScoredRows:
    classes = prep.ds.classes
    pred = decide(probs, classes, good, thresholds) if len(idx) else np.zeros(0, dtype=int)
    samples = [prep.ds.samples[i] for i in idx]
    return ScoredRows(split, [s.rel for s in samples], [s.label for s in samples], probs,
                      [classes[k] for k in pred], thresholds, None if folds is None else folds[idx])


def _write(config: RunConfig, run: RunFolder, fitter: "Fitter", fitted: "Fitted", prep: "Prepared",
           metrics: dict[str, Any], parts: list[ScoredRows], threshold: float, tuned: list[int],
           preprocessing: Preprocessing, chosen_on: str) -> Outcome:
    verdict = judge(metrics)
    metrics["verdict"] = verdict.to_dict()
    write_predictions(run.predictions_file, prep.ds.classes, parts)
    write_json_atomic(run.metrics_file, metrics)
    good = config.good_class
    decision = Decision(threshold=threshold, good_class=good, chosen_on=chosen_on if good else "",
                        threshold_from_training=threshold)
    spec = ModelSpec(backbone=fitter.backbone, tasks=prep.tasks, classes=prep.ds.classes,
                     image_size=preprocessing.size, mean=list(preprocessing.mean), std=list(preprocessing.std),
                     good_class=good, threshold=threshold, info=model_info(config, run),
                     resize=preprocessing.resize, bit_depth=preprocessing.bit_depth,
                     pad_colour=preprocessing.pad_colour, views=fitted.model.views)
    hashes = [prep.report.hashes[prep.ds.samples[i].rel] for i in tuned]
    save_package(fitted.model, spec, run.model_dir, decision=decision, training_hashes=hashes)
    return Outcome(metrics, verdict)


def model_info(config: RunConfig, run: RunFolder) -> dict[str, Any]:
    """Where the model came from, without the training machine's paths (names only)."""
    kind, _, where = config.start.partition(":")
    start = f"{kind}:{Path(where).name}" if where else config.start
    return {"strategy": config.strategy.value, "start": start, "dataset": Path(str(config.data)).name,
            "run": run.path.name, "folds": config.folds}


def summary(metrics: dict[str, Any], verdict: Verdict) -> str:
    """The status message: the verdict first, then the headline numbers in words."""
    from .verdict import held_out_words

    text = f"{verdict.text()} Accuracy {fmt_pct(metrics['accuracy'])} on {held_out_words(metrics)}."
    if metrics.get("catch_rate") is not None:
        text += f" Defects caught: {fmt_pct(metrics['catch_rate'])}."
    if metrics.get("false_alarm_rate") is not None:
        text += f" False alarms: {fmt_pct(metrics['false_alarm_rate'])}."
    if len(metrics["predicted_classes"]) == 1 and len(metrics["classes"]) > 1:
        text += (f" Warning: the model predicts only '{metrics['predicted_classes'][0]}' for every photo; "
                 "it has not learned to tell the classes apart. Add photos, train longer or try another strategy.")
    return text
