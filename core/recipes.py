"""How each strategy trains, one short function per strategy (in the spirit of fastai's ``fine_tune``).

A :class:`Recipe` says which trunk groups train in each epoch (stages), at what rates, with which
warm-up, weight decay and BatchNorm policy, and whether the heads start from a logistic regression
fitted on cached features (a linear probe). The trainer only follows it. Every recipe runs a fixed
schedule and keeps the last weights: choosing an epoch on a handful of validation photos proved
fragile (docs/benchmarks.md, "Transfer on real photos").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import Strategy
from .model import GraftModel, trunk_groups

__all__ = ["Stage", "Recipe", "feature_extraction", "fine_tune", "progressive", "scratch", "recipe_for",
           "param_groups", "make_optimizer", "ALL", "WARMUP_STEPS"]

ALL = 10_000  # "every trunk group"
WARMUP_STEPS = 20  # linear warm-up at the start of each stage, at most a quarter of the stage
GROUP_DECAY = 0.7  # each trunk group below the top trains at 0.7 times the rate of the one above
WEIGHT_DECAY = 0.05  # on weights of 2 or more dimensions; norms and biases get none
HEAD_RATE = 5.0  # the heads train at this multiple of the top trunk group's rate


@dataclass(frozen=True)
class Stage:
    """A stretch of epochs with the same trainable trunk groups (0 = heads only, ALL = everything)."""

    epochs: int
    groups: int


@dataclass(frozen=True)
class Recipe:
    """Everything the trainer needs to know about one strategy's training.

    ``lr`` is the top trunk group's peak rate (the heads get ``head_rate`` times it); every stage
    warms up over a few steps, then decays along a cosine to zero.
    """

    stages: tuple[Stage, ...]
    lr: float
    head_rate: float = HEAD_RATE
    group_decay: float = GROUP_DECAY
    weight_decay: float = WEIGHT_DECAY
    probe: bool = True  # start the heads from a logistic regression on the frozen trunk's features
    freeze_bn: bool = True  # BatchNorm keeps the pretrained statistics even where its weights train
    recalibrate_bn: bool = False  # after training, recompute BatchNorm statistics on the training photos
    reprobe: bool = False  # after training, refit the heads by logistic regression on the trained trunk

    @property
    def epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def groups_at(self, epoch: int) -> int:
        """Trainable top trunk groups in ``epoch`` (0-based)."""
        for stage in self.stages:
            if epoch < stage.epochs:
                return stage.groups
            epoch -= stage.epochs
        return 0

    def lr_factor(self, step: int, steps_per_epoch: int) -> float:
        """Per-step multiplier of every group's rate: warm-up, then cosine to zero, in each stage."""
        for stage in self.stages:
            steps = stage.epochs * steps_per_epoch
            if step < steps:
                warm = min(WARMUP_STEPS, max(1, steps // 4))
                if step < warm:
                    return (step + 1) / warm
                return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))
            step -= steps
        return 0.0


def feature_extraction() -> Recipe:
    """The trunk never trains: the heads are the logistic regression fitted on its cached features."""
    return Recipe(stages=(), lr=0.0)


def fine_tune(epochs: int, lr: float) -> Recipe:
    """LP-FT: a linear probe first, then every layer (the top trunk group at ``lr``, lower ones slower),
    then the heads refitted by logistic regression on the adapted trunk."""
    return Recipe(stages=(Stage(epochs, ALL),), lr=lr, reprobe=True)


def progressive(epochs: int, lr: float, n_groups: int, steps: int = 3) -> Recipe:
    """A linear probe, then unfreeze from the top in ``steps`` stages (a third of the trunk each, for 3).

    Every stage restarts the warm-up and cosine, so each newly unfrozen group trains at its full
    rate for a while (not at the tail of one long decay); the heads are refitted at the end.
    """
    steps = max(1, min(steps, n_groups, epochs))
    sizes = [epochs // steps + (1 if k < epochs % steps else 0) for k in range(steps)]
    groups = [ALL if k == steps - 1 else math.ceil(n_groups * (k + 1) / steps) for k in range(steps)]
    return Recipe(stages=tuple(Stage(e, g) for e, g in zip(sizes, groups)), lr=lr, reprobe=True)


def scratch(epochs: int, lr: float) -> Recipe:
    """Random weights: everything at one rate, live BatchNorm statistics recomputed at the end."""
    return Recipe(stages=(Stage(epochs, ALL),), lr=lr, head_rate=1.0, group_decay=1.0, probe=False,
                  freeze_bn=False, recalibrate_bn=True)


def recipe_for(strategy: Strategy, epochs: int, lr: float, n_groups: int) -> Recipe:
    """The recipe of ``strategy`` (multi-task trains like fine-tune, with one head per task)."""
    if strategy == Strategy.FEATURE_EXTRACTION:
        return feature_extraction()
    if strategy == Strategy.SCRATCH:
        return scratch(epochs, lr)
    if strategy == Strategy.PROGRESSIVE:
        return progressive(epochs, lr, n_groups)
    return fine_tune(epochs, lr)


def param_groups(model: GraftModel, recipe: Recipe) -> list[dict]:
    """Optimizer groups: the heads, then trunk groups from the top down, each split by weight decay.

    The top trunk group trains at ``recipe.lr``, each group below at ``group_decay`` times the one
    above; 1-D parameters (norms, biases) get no weight decay.
    """
    out = _split_decay(list(model.heads.parameters()), recipe.lr * recipe.head_rate, recipe.weight_decay, "head")
    groups = trunk_groups(model.trunk)
    for depth, params in enumerate(reversed(groups)):  # depth 0 = next to the heads
        rate = recipe.lr * recipe.group_decay ** depth
        out += _split_decay(params, rate, recipe.weight_decay, f"trunk-{len(groups) - 1 - depth}")
    return out


def make_optimizer(model: GraftModel, recipe: Recipe) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay) over :func:`param_groups`."""
    return torch.optim.AdamW(param_groups(model, recipe))


def _split_decay(params: list, lr: float, weight_decay: float, name: str) -> list[dict]:
    decay = [p for p in params if p.ndim > 1]
    flat = [p for p in params if p.ndim <= 1]
    return [g for g in ({"params": decay, "lr": lr, "weight_decay": weight_decay, "name": name},
                        {"params": flat, "lr": lr, "weight_decay": 0.0, "name": f"{name}-no-decay"}) if g["params"]]
