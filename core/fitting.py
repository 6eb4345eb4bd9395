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

from . import ddp
from .augment import VIEWS, to_model_input
from .backbones import build, data_config, native_size, parse_start
from .batchnorm_fold import folded_copy
from .callbacks import EventWriter, PhaseProgress, StopWatcher, progress_hook
from .checkpoint import Checkpointer, restore_checkpoint
from .config import RunConfig, Strategy
from .device import Runtime, select_runtime
from .eta import RunClock
from .features import extract_features
from .feeders import FeatureFeeder, ImageFeeder
from .imagecache import decoded_images
from .imagesize import choose_image_size
from .model import GraftModel, trunk_groups
from .jsonio import read_json
from .package import SPEC_FILE, ModelSpec, resolve_model_dir, trunk_from_run
from .parallel import ProgressFn
from .probe import probe_heads
from .recipes import Recipe, make_optimizer, recipe_for
from .runs import RunFolder
from .trainer import Diverged, FitResult, Trainer

if TYPE_CHECKING:
    from .pipeline import Prepared

__all__ = ["Fitter", "Fitted", "make_trunk", "class_weights", "resolve_image_size"]

Splits = dict[str, list[int]]
PROBE_VIEWS: tuple[str, ...] = VIEWS[1:]  # mirrored and quarter-turned copies of each photo for the probe
PROBE_VIEW_BUDGET = 2000  # at most this many extra photo-views for the probe (all 7 copies up to 285 photos)


def _offset(progress: ProgressFn | None, k: int, n: int, key: str = "") -> ProgressFn | None:
    """Progress of the ``k``-th of ``n`` equal passes, reported as one pass over all of them.

    The time passed on is this pass's own; the whole run's time left comes from the run's clock
    (:class:`core.eta.RunClock`), which counts every pass of the plan. ``key``: the kind of work the
    clock times it as (``"frozen"``: the folded copy's passes), for a hook of :func:`progress_hook`.
    """
    if progress is None:
        return None
    if key and isinstance(progress, PhaseProgress):
        progress = progress.keyed(key)

    def report(done: int, total: int, eta: float) -> None:
        progress(k * total + done, n * total, eta)
    return report


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
    size = config.image_size or native_size(config.backbone)
    return build(config.backbone, start, image_size=size), config.backbone, None


def resolve_image_size(config: RunConfig, sizes: dict[str, float] | None) -> RunConfig:
    """``config`` with its image size chosen from the photos when it was left open (``None``)."""
    if config.image_size is not None:
        return config
    start = parse_start(config.start)
    if start.kind == "run" and config.strategy != Strategy.SCRATCH:  # continue at the earlier model's size
        spec = ModelSpec.from_json(read_json(resolve_model_dir(start.path) / SPEC_FILE, {}) or {})
        return config.replace(image_size=spec.image_size)
    return config.replace(image_size=choose_image_size(sizes, native_size(config.backbone)))


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
                 decode_progress: ProgressFn | None = None, runtime: Runtime | None = None,
                 clock: RunClock | None = None) -> None:
        if config.image_size is None:  # chosen from the photos: recorded, so a resume or a reader sees it
            config = resolve_image_size(config, prep.report.sizes)
            run.write_config(config)
        self.config, self.prep, self.run, self.stopper = config, prep, run, stopper
        self.clock = clock  # the whole run's clock (None: each fit's events time that fit alone)
        self.runtime = runtime or select_runtime()
        trunk, self.backbone, self.earlier = make_trunk(config)
        self.image_size = self.earlier.image_size if self.earlier and _fixed_size(trunk) else config.image_size
        self.dcfg = data_config(trunk)
        self._trunk = trunk  # pristine: every fit trains a copy
        samples = prep.ds.samples
        if clock is not None:
            clock.begin("decode")
        self.images = decoded_images([s.path for s in samples], [prep.report.hashes[s.rel] for s in samples],
                                     self.image_size, progress=decode_progress)
        self._features: torch.Tensor | None = None
        self._views_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # per view: features, which are done
        self._folded: torch.nn.Module | None = None

    def new_model(self) -> GraftModel:
        """The start trunk's weights with fresh heads (seeded, so every fit starts alike)."""
        torch.manual_seed(self.config.seed)
        model = GraftModel(copy.deepcopy(self._trunk), self.prep.tasks)
        return model.to(self.runtime.device).to(memory_format=torch.channels_last)

    def features(self, progress: ProgressFn | None = None) -> torch.Tensor:
        """Frozen start-trunk embeddings of every photo, computed once per run (and cached on disk)."""
        if self._features is None:
            self._features = self._extract(progress=progress)
        return self._features

    def _extract(self, trunk: torch.nn.Module | None = None, **kw: Any) -> torch.Tensor:
        return extract_features(self._on_device(trunk or self._trunk), self.images, self.dcfg["mean"], self.dcfg["std"],
                                self.runtime, **kw)

    def probe_data(self, train: list[int], progress: ProgressFn | None = None,
                   trunk: torch.nn.Module | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Features of the training photos and of their mirrored and turned copies, and the photo of each row.

        The copies are capped at :data:`PROBE_VIEW_BUDGET` photo-views in all: they matter most
        with few photos, and would cost minutes with thousands. From the start trunk, each view of a
        photo is computed once per run, so the folds of a cross-validation share them.
        """
        index = np.asarray(train, dtype=np.int64)
        views = PROBE_VIEWS[:max(0, min(len(PROBE_VIEWS), PROBE_VIEW_BUDGET // max(1, len(index))))]
        if trunk is None:
            rows = [self.features(progress).numpy()[index]]
            rows += [self._view_features(view, index, _offset(progress, k, len(views), "frozen"))
                     for k, view in enumerate(views)]
        else:
            rows = [self._extract(trunk, index=index, progress=_offset(progress, 0, 1 + len(views))).numpy()]
            rows += [self._extract(trunk, index=index, view=view, progress=_offset(progress, k + 1, 1 + len(views)))
                     .numpy() for k, view in enumerate(views)]
        return np.concatenate(rows), np.tile(index, len(rows))

    def _view_features(self, view: str, index: np.ndarray, progress: ProgressFn | None) -> np.ndarray:
        """Start-trunk features of one view of these photos, each photo computed once per run."""
        feats, done = self._views_cache.get(view, (None, None))
        missing = index if done is None else index[~done[index]]
        if len(missing):
            new = self._extract(self._folded_trunk(), index=missing, view=view, progress=progress).numpy()
            if feats is None:
                feats, done = np.zeros((len(self.images), new.shape[1]), np.float32), np.zeros(len(self.images), bool)
            feats[missing], done[missing] = new, True
            self._views_cache[view] = (feats, done)
        return feats[index]

    def _folded_trunk(self) -> torch.nn.Module:
        """The start trunk with its BatchNorms folded (:mod:`core.batchnorm_fold`), for the probe's extra
        views: the plain photos keep the trunk's own pass, the one the saved model predicts with."""
        if self._folded is None:
            m, s = (torch.tensor(self.dcfg[k], device=self.runtime.device) for k in ("mean", "std"))
            example = to_model_input(torch.from_numpy(np.asarray(self.images[:2])).to(self.runtime.device), m, s)
            self._folded = folded_copy(self._on_device(self._trunk), example)
        return self._folded

    def _on_device(self, trunk: torch.nn.Module) -> torch.nn.Module:
        return trunk.to(self.runtime.device).to(memory_format=torch.channels_last)

    def _probe(self, model: GraftModel, train: list[int], progress: ProgressFn | None,
               trunk: torch.nn.Module | None = None) -> dict[str, float]:
        """Start every head from the logistic regression on the frozen trunk's features (LP of LP-FT)."""
        x, photos = self.probe_data(train, progress, trunk)
        if self.clock is not None and trunk is None:
            self.clock.begin("probe")
        if not np.isfinite(x).all():
            raise Diverged("the start weights give non-finite features")
        targets = {name: y[photos] for name, y in self.prep.targets.items()}
        chosen = probe_heads(model, self.prep.tasks, x, targets, photos, seed=self.config.seed) \
            if ddp.world().is_main else {}
        ddp.broadcast_module(model.heads)  # under DDP the regression runs once, on rank 0
        return chosen

    def fit(self, splits: Splits, *, epochs: int | None = None, callbacks: list[Any] | None = None,
            checkpoint: bool = True, resume: bool = False, feature_progress: ProgressFn | None = None) -> Fitted:
        """Train a fresh model on ``splits['train']`` with the strategy's recipe; keep the last weights.

        The recipe's schedule is fixed: ``splits['val']`` is only scored after every epoch (for the
        curves), never used to pick an epoch, so an empty ``val`` split (e.g. the final model of a
        cross-validation, trained on every photo) trains exactly the same way.

        Args:
            splits: sample indices per split (``train`` and ``val``; ``test`` is only predicted).
            epochs: override the config's epoch count.
            callbacks: trainer callbacks; default the stop watcher and the run's event writer.
            checkpoint: save per-epoch checkpoints (for ``--resume``) where a fit is costly.
            resume: continue from the run's last checkpoint.
        """
        if self.clock is not None:
            self.clock.begin("features")
        model = self.new_model()
        recipe = self.recipe(epochs)
        feeder = self._feeder(splits, feature_progress)
        trainer = self._trainer(model, feeder, splits, callbacks, checkpoint and recipe.epochs > 0, recipe)
        start_epoch = restore_checkpoint(self.run.path, trainer) if resume else 0
        if resume:
            self.run.emit("resumed", epoch=start_epoch)
        try:
            if recipe.probe and not resume:
                self._probe(model, splits["train"], feature_progress)
            result = trainer.fit(start_epoch)
            if recipe.reprobe and recipe.epochs and not result.stopped:
                refit = progress_hook(self.run, self.clock, "refit", "Refitting the heads on the trained network",
                                      task="reprobe")  # no stop here: training is done, the refit is short
                self._probe(model, splits["train"], refit, trunk=model.trunk)
                trainer.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            self._score_with_views(model, trainer, splits)
            return Fitted(model, trainer, result)
        except Diverged as exc:
            return Fitted(model, trainer, None, diverged=str(exc))

    def _score_with_views(self, model: GraftModel, trainer: Trainer, splits: Splits) -> None:
        """From here on the model scores photos with the run's test-time views (its eval forward).

        Feature extraction trained on cached features; with views it scores the photos themselves.
        """
        model.views = self.config.views
        if model.views > 1 and isinstance(trainer.feeder, FeatureFeeder):
            trainer.feeder = self._feeder(splits, None, images=True)

    def _feeder(self, splits: Splits, progress: ProgressFn | None,
                images: bool = False) -> ImageFeeder | FeatureFeeder:
        config, prep = self.config, self.prep
        kw = dict(splits=splits, targets=prep.targets, batch_size=config.batch_size, runtime=self.runtime,
                  seed=config.seed)
        if images or config.strategy != Strategy.FEATURE_EXTRACTION:
            return ImageFeeder(self.images, self.dcfg["mean"], self.dcfg["std"], **kw)
        return FeatureFeeder(self.features(progress), **{**kw, "batch_size": max(config.batch_size, 64)})

    def trunk_shares(self) -> tuple[float, ...]:
        """Per epoch of this run's recipe, the share of the trunk's groups that train (the run's clock
        weighs a step by it: a step that trains the top third costs less than a whole-trunk one)."""
        recipe, n = self.recipe(), max(1, len(trunk_groups(self._trunk)))
        return tuple(min(recipe.groups_at(e), n) / n for e in range(recipe.epochs))

    def recipe(self, epochs: int | None = None) -> Recipe:
        """This run's training recipe (``epochs`` overrides the config's)."""
        config = self.config
        return recipe_for(config.strategy, epochs or config.resolved_epochs, config.resolved_lr,
                          len(trunk_groups(self._trunk)))

    def _trainer(self, model: GraftModel, feeder: ImageFeeder | FeatureFeeder, splits: Splits,
                 callbacks: list[Any] | None, checkpoint: bool, recipe: Recipe) -> Trainer:
        optimizer = make_optimizer(model, recipe)
        callbacks = list(callbacks) if callbacks is not None else [self.stopper, EventWriter(self.run, clock=self.clock)]
        if checkpoint and ddp.world().is_main:  # only rank 0 writes the run folder
            callbacks.append(Checkpointer(self.run.path))
        weights = class_weights(self.prep.targets, self.prep.tasks, splits["train"])
        return Trainer(model, feeder, self.prep.tasks, recipe, optimizer, self.runtime, weights, callbacks)
