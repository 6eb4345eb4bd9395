"""The grafted model: one trunk, one small head per task, and which trunk parts are trainable."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
from timm.models import group_parameters
from torch import nn

from .augment import mean_over_views

__all__ = ["Task", "GraftModel", "feature_width", "trunk_groups", "freeze_trunk", "unfreeze_top", "set_train_mode",
           "recalibrate_batchnorm", "single_view"]


@dataclass(frozen=True)
class Task:
    """One thing the model predicts: a name and its classes (order = output index)."""

    name: str
    classes: tuple[str, ...]
    good_class: str | None = None  # the "no defect" class of this task, if any


class GraftModel(nn.Module):
    """A pretrained trunk with one small head per task.

    ``views`` > 1 turns on test-time views: in eval mode, :meth:`forward` averages the answer over
    that many mirrored / quarter-turned copies of each photo (:func:`core.augment.mean_over_views`)
    and returns log-probabilities. Training is unchanged. Everything that scores photos (the run's
    own scoring, prediction, evaluation, the ONNX export) goes through this forward.
    """

    def __init__(self, trunk: nn.Module, tasks: list[Task], dropout: float = 0.2, views: int = 1) -> None:
        super().__init__()
        self.trunk, self.views = trunk, views
        self.task_names = [t.name for t in tasks]
        width = feature_width(trunk)
        self.heads = nn.ModuleDict({t.name: _head(width, len(t.classes), dropout) for t in tasks})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward_heads(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(feats) for name, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training or self.views <= 1:
            return self.forward_heads(self.features(x))
        return mean_over_views(lambda v: self.forward_heads(self.features(v)), x, self.views)


@contextmanager
def single_view(model: GraftModel) -> Iterator[GraftModel]:
    """Within the block the model scores each photo once, as it is (e.g. for a heatmap of that photo)."""
    saved, model.views = model.views, 1
    try:
        yield model
    finally:
        model.views = saved


def feature_width(trunk: nn.Module) -> int:
    """Width of the pooled output; some trunks (MobileNet-V3) add a projection after ``num_features``."""
    return int(getattr(trunk, "head_hidden_size", None) or trunk.num_features)


def _head(in_features: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_classes))


def trunk_groups(trunk: nn.Module) -> list[list[nn.Parameter]]:
    """The trunk's parameters in groups from input (stem) to output, via timm's ``group_matcher``."""
    named = dict(trunk.named_parameters())
    try:
        grouped = group_parameters(trunk, trunk.group_matcher(coarse=True))
    except (AttributeError, NotImplementedError, TypeError):
        return [list(named.values())]
    return [[named[n] for n in names] for _, names in sorted(grouped.items()) if names]


def freeze_trunk(model: GraftModel) -> None:
    """Freeze every trunk weight; frozen BatchNorm keeps its ImageNet statistics (eval mode)."""
    for p in model.trunk.parameters():
        p.requires_grad_(False)


def unfreeze_top(model: GraftModel, n_groups: int) -> None:
    """Unfreeze the ``n_groups`` trunk groups nearest the head (all of them for a large n)."""
    groups = trunk_groups(model.trunk)
    for params in groups[max(0, len(groups) - n_groups):]:
        for p in params:
            p.requires_grad_(True)


def set_train_mode(model: GraftModel, freeze_bn: bool = False) -> None:
    """Train mode for the heads and any module with trainable weights; frozen parts stay in eval.

    With ``freeze_bn`` every BatchNorm also stays in eval: it keeps its pretrained statistics while
    its scale and shift still train (small batches of a few photos estimate statistics badly).
    """
    model.train()
    for module in model.trunk.modules():
        own = list(module.parameters(recurse=False))
        frozen = own and not any(p.requires_grad for p in own)
        if frozen or (freeze_bn and isinstance(module, nn.modules.batchnorm._BatchNorm)):
            module.eval()


@torch.no_grad()
def recalibrate_batchnorm(model: GraftModel, batches: Iterable[torch.Tensor], runtime: Any) -> None:
    """Recompute every BatchNorm's statistics as the plain average over ``batches`` (precise BN).

    Running averages lag behind weights that changed fast (training from scratch), so a model can
    look fine in training and answer one class for everything in evaluation; this removes the lag.
    """
    norms = [m for m in model.trunk.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch seen
    model.trunk.train()
    for x in batches:
        with runtime.autocast():
            model.trunk(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()
