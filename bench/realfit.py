"""Graft and the plain baselines on one set of real photos, scored the same way."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from core.callbacks import StopWatcher
from core.check import check_dataset
from core.config import RunConfig, Strategy
from core.datasets import Dataset, Sample
from core.fitting import Fitter
from core.imagecache import decoded_images
from core.images import content_hash
from core.runs import RunFolder
from core.tasks import build_targets, build_tasks, label_probs

from .baselines import linear_probe, plain_finetune, pooled_features
from .realdata import Photos

__all__ = ["Score", "graft_fit", "probe_fit", "plain_fit", "score"]


@dataclass
class Score:
    """Test accuracy (and ROC AUC of defect vs good, for two-class ok/defect tasks) and the seconds it took."""

    accuracy: float
    auc: float | None
    seconds: float
    predicted_classes: int
    extra: dict


def score(probs: np.ndarray, labels: list[str], classes: list[str], seconds: float, good: str | None = None,
          **extra) -> Score:
    y = np.array([classes.index(c) for c in labels])
    pred = probs.argmax(1)
    auc = None
    if good is not None:
        defect = 1.0 - probs[:, classes.index(good)]
        auc = float(roc_auc_score(y != classes.index(good), defect))
    return Score(float((pred == y).mean()), auc, seconds, len(set(pred.tolist())), extra)


def _prepared(photos: Photos, labels: str, config: RunConfig):
    """A Prepared dataset of exactly these photos: train then test, no validation photos."""
    from core.pipeline import Prepared

    rows = photos.train + photos.test
    samples = [Sample(path, Path(path).name, label if labels == "label" else sub) for path, label, sub in rows]
    ds = Dataset(Path(rows[0][0]).parent.parent, samples, "folder", name="bench")
    report = check_dataset(ds)
    tasks = build_tasks(ds, config)
    n = len(photos.train)
    splits = {"train": list(range(n)), "val": [], "test": list(range(n, len(rows)))}
    return Prepared(ds, report, splits, tasks, build_targets(ds, tasks))


def graft_fit(photos: Photos, work: Path, *, strategy: str, start: str, backbone: str, image_size: int, seed: int,
              good: str | None = None, epochs: int | None = None, batch_size: int = 32) -> Score:
    """Fit Graft's recipe through :class:`core.fitting.Fitter` on all training photos (no validation split).

    Multi-task learns the sub-types (defect types) as its labels, with ``good`` as the good class.
    """
    multi = Strategy(strategy) == Strategy.MULTI_TASK
    config = RunConfig(data=str(work), out=str(work / "run"), backbone=backbone, start=start, strategy=strategy,
                       image_size=image_size, seed=seed, epochs=epochs, batch_size=batch_size,
                       good_class=good if multi else None)
    prep = _prepared(photos, "sub" if multi else "label", config)
    run = RunFolder(config.out)
    run.path.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fitter = Fitter(config, prep, run, StopWatcher(run))
    fitted = fitter.fit(prep.splits, callbacks=[], checkpoint=False)
    seconds = time.perf_counter() - t0
    classes = prep.ds.classes
    probs = label_probs(fitted.predict("test"), prep.tasks, classes)
    if classes != photos.classes:  # multi-task learnt defect types: back to good vs any defect
        p_good = probs[:, classes.index(good)]
        classes = photos.classes
        probs = np.stack([p_good if c == good else 1 - p_good for c in classes], 1)
    two_class = good is not None and len(photos.classes) == 2
    return score(probs, [label for _, label, _ in photos.test], classes, seconds, good if two_class else None,
                 diverged=fitted.diverged, epochs=len(fitted.result.history) if fitted.result else 0)


def _arrays(photos: Photos, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    def decode(rows):
        paths = [p for p, _, _ in rows]
        return np.asarray(decoded_images(paths, [content_hash(p) for p in paths], image_size))
    return decode(photos.train), decode(photos.test)


def probe_fit(photos: Photos, *, arch: str, weights: str, image_size: int, good: str | None = None) -> Score:
    """The linear probe baseline on these photos."""
    classes = photos.classes
    train_u8, test_u8 = _arrays(photos, image_size)
    t0 = time.perf_counter()
    feats = pooled_features(arch, weights, np.concatenate([train_u8, test_u8]))
    y = np.array([classes.index(label) for _, label, _ in photos.train])
    probs, c = linear_probe(feats[:len(train_u8)], y, feats[len(train_u8):])
    return score(probs, [label for _, label, _ in photos.test], classes, time.perf_counter() - t0, good, C=c)


def plain_fit(photos: Photos, *, arch: str, weights: str | None, image_size: int, seed: int, epochs: int = 15,
              good: str | None = None) -> Score:
    """The plain fine-tune script (``weights=None``: the same script from scratch)."""
    classes = photos.classes
    train_u8, test_u8 = _arrays(photos, image_size)
    y = np.array([classes.index(label) for _, label, _ in photos.train])
    probs, seconds = plain_finetune(arch, weights, train_u8, y, test_u8, len(classes), epochs=epochs, seed=seed)
    return score(probs, [label for _, label, _ in photos.test], classes, seconds, good)
