"""Fit a model on given splits: the trunk and the decoded photos are made once, a fit can run many times.

The pipeline hands a :class:`Fitter` the prepared dataset; each :meth:`Fitter.fit` trains a fresh
model (the start trunk's weights, new heads) with the strategy's recipe on the splits it is given,
so one run can fit a single split, every fold of a cross-validation, and a final model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .backbones import build, data_config, parse_start
from .callbacks import EventWriter, StopWatcher
from .checkpoint import Checkpointer, restore_checkpoint
from .config import RunConfig, Strategy
from .device import Runtime, select_runtime
from .features import extract_features
from .feeders import FeatureFeeder, ImageFeeder
from .imagecache import decoded_images
from .model import GraftModel, trunk_groups
from .package import ModelSpec, trunk_from_run
from .parallel import ProgressFn
from .recipes import make_schedule, param_groups
from .runs import RunFolder
from .trainer import Diverged, FitResult, Trainer

if TYPE_CHECKING:
    from .pipeline import Prepared

__all__ = ["Fitter", "Fitted", "make_trunk", "class_weights"]

Splits = dict[str, list[int]]


@dataclass
class Fitted:
    """One fitted model and how its fit went. ``diverged`` is set when the loss blew up."""

    model: GraftModel
    trainer: Trainer
    result: FitResult | None
    diverged: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """False when no epoch finished before the loss blew up (nothing worth keeping)."""
        return not self.diverged or self.trainer.best_state is not None

    def predict(self, split: str) -> dict[str, np.ndarray]:
        """Softmax probabilities per task for every photo of ``split`` (in split order)."""
        return self.trainer.predict_split(split)


def make_trunk(config: RunConfig) -> tuple[torch.nn.Module, str, ModelSpec | None]:
    """The trunk for this run's start point; returns (trunk, backbone name, earlier model spec)."""
    start = parse_start("scratch" if config.strategy == Strategy.SCRATCH else config.start)
    if start.kind == "run":
        trunk, spec = trunk_from_run(start.path)
        return trunk, spec.backbone, spec
    return build(config.backbone, start, image_size=config.image_size), config.backbone, None


def class_weights(targets: dict[str, np.ndarray], tasks: list, train: list[int]) -> dict[str, torch.Tensor]:
    """Inverse-frequency weights on the training photos, so rare defects count as much as 'ok'."""
    out = {}
    for task in tasks:
        y = targets[task.name][train]
        counts = np.bincount(y[y >= 0], minlength=len(task.classes)).astype(np.float64)
        w = np.where(counts > 0, counts.sum() / (len(task.classes) * np.maximum(counts, 1)), 0.0)
        out[task.name] = torch.tensor(np.clip(w, 0, 50), dtype=torch.float32)
    return out


def _fixed_size(trunk: torch.nn.Module) -> bool:
    return bool(getattr(trunk, "pretrained_cfg", {}).get("fixed_input_size"))


class Fitter:
    """The start trunk and the decoded photos of one run, ready to fit models on any splits."""

    def __init__(self, config: RunConfig, prep: "Prepared", run: RunFolder, stopper: StopWatcher,
                 decode_progress: ProgressFn | None = None, runtime: Runtime | None = None) -> None:
        self.config, self.prep, self.run, self.stopper = config, prep, run, stopper
        self.runtime = runtime or select_runtime()
        trunk, self.backbone, self.earlier = make_trunk(config)
        self.image_size = self.earlier.image_size if self.earlier and _fixed_size(trunk) else config.image_size
        self.dcfg = data_config(trunk)
        self._trunk = trunk  # pristine: every fit trains a copy
        samples = prep.ds.samples
        self.images = decoded_images([s.path for s in samples], [prep.report.hashes[s.rel] for s in samples],
                                     self.image_size, progress=decode_progress)
        self._features: torch.Tensor | None = None

    def new_model(self) -> GraftModel:
        """The start trunk's weights with fresh heads (seeded, so every fit starts alike)."""
        torch.manual_seed(self.config.seed)
        model = GraftModel(copy.deepcopy(self._trunk), self.prep.tasks)
        return model.to(self.runtime.device).to(memory_format=torch.channels_last)

    def features(self, progress: ProgressFn | None = None) -> torch.Tensor:
        """Frozen start-trunk embeddings of every photo, computed once per run (and cached on disk)."""
        if self._features is None:
            trunk = self._trunk.to(self.runtime.device).to(memory_format=torch.channels_last)
            self._features = extract_features(trunk, self.images, self.dcfg["mean"], self.dcfg["std"],
                                              self.runtime, progress=progress)
        return self._features

    def fit(self, splits: Splits, *, epochs: int | None = None, callbacks: list[Any] | None = None,
            checkpoint: bool = True, resume: bool = False, feature_progress: ProgressFn | None = None) -> Fitted:
        """Train a fresh model on ``splits['train']``, choosing the best epoch on ``splits['val']``.

        With an empty ``val`` split it trains exactly ``epochs`` epochs and keeps the last weights
        (e.g. the final model of a cross-validation, trained on every photo).

        Args:
            splits: sample indices per split (``train`` and ``val``; ``test`` is only predicted).
            epochs: override the config's epoch count.
            callbacks: trainer callbacks; default the stop watcher and the run's event writer.
            checkpoint: save per-epoch checkpoints (for ``--resume``) where a fit is costly.
            resume: continue from the run's last checkpoint.
        """
        model = self.new_model()
        feeder = self._feeder(splits, feature_progress)
        trainer = self._trainer(model, feeder, splits, callbacks, checkpoint, epochs)
        start_epoch = restore_checkpoint(self.run.path, trainer) if resume else 0
        if resume:
            self.run.emit("resumed", epoch=start_epoch)
        try:
            return Fitted(model, trainer, trainer.fit(start_epoch))
        except Diverged as exc:
            return Fitted(model, trainer, None, diverged=str(exc))

    def _feeder(self, splits: Splits, progress: ProgressFn | None) -> ImageFeeder | FeatureFeeder:
        config, prep = self.config, self.prep
        kw = dict(splits=splits, targets=prep.targets, batch_size=config.batch_size, runtime=self.runtime,
                  seed=config.seed)
        if config.strategy != Strategy.FEATURE_EXTRACTION:
            return ImageFeeder(self.images, self.dcfg["mean"], self.dcfg["std"], **kw)
        return FeatureFeeder(self.features(progress), **{**kw, "batch_size": max(config.batch_size, 64)})

    def _trainer(self, model: GraftModel, feeder: ImageFeeder | FeatureFeeder, splits: Splits,
                 callbacks: list[Any] | None, checkpoint: bool, epochs: int | None) -> Trainer:
        config = self.config
        schedule = make_schedule(config.strategy, epochs or config.resolved_epochs, len(trunk_groups(model.trunk)))
        groups = param_groups(model, config.resolved_lr, config.strategy)
        if config.strategy == Strategy.FEATURE_EXTRACTION:
            groups = groups[:1]  # the trunk never trains
        optimizer = torch.optim.AdamW(groups, weight_decay=1e-4)
        patience = config.patience * (3 if config.strategy == Strategy.FEATURE_EXTRACTION else 1)
        callbacks = list(callbacks) if callbacks is not None else [self.stopper, EventWriter(self.run)]
        if checkpoint and config.strategy != Strategy.FEATURE_EXTRACTION:  # head-only fits are cheap to redo
            callbacks.append(Checkpointer(self.run.path))
        weights = class_weights(self.prep.targets, self.prep.tasks, splits["train"])
        return Trainer(model, feeder, self.prep.tasks, schedule, optimizer, self.runtime, weights, callbacks, patience)
