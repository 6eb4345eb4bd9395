"""The grafted model (one trunk, one head per task) and how each strategy trains its parts."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from timm.models import group_parameters
from torch import nn

from .config import Strategy

__all__ = ["Task", "GraftModel", "feature_width", "trunk_groups", "param_groups", "Schedule", "make_schedule",
           "freeze_trunk", "unfreeze_top"]


@dataclass(frozen=True)
class Task:
    """One thing the model predicts: a name and its classes (order = output index)."""

    name: str
    classes: tuple[str, ...]
    good_class: str | None = None  # the "no defect" class of this task, if any


class GraftModel(nn.Module):
    """A pretrained trunk with one small head per task."""

    def __init__(self, trunk: nn.Module, tasks: list[Task], dropout: float = 0.2) -> None:
        super().__init__()
        self.trunk = trunk
        self.task_names = [t.name for t in tasks]
        width = feature_width(trunk)
        self.heads = nn.ModuleDict({t.name: _head(width, len(t.classes), dropout) for t in tasks})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward_heads(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(feats) for name, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_heads(self.features(x))


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


def param_groups(model: GraftModel, lr: float, strategy: Strategy) -> list[dict]:
    """Optimizer groups: the head at ``lr``; trunk groups spread from ``lr/100`` (stem) upwards.

    Scratch and feature extraction use one rate: nothing pretrained is worth protecting, or
    nothing in the trunk trains at all.
    """
    head = {"params": list(model.heads.parameters()), "lr": lr, "name": "head"}
    groups = trunk_groups(model.trunk)
    if strategy in (Strategy.SCRATCH, Strategy.FEATURE_EXTRACTION):
        return [head, {"params": [p for g in groups for p in g], "lr": lr, "name": "trunk"}]
    n = len(groups)
    out = [head]
    for depth, params in enumerate(reversed(groups), start=1):  # depth 1 = closest to the head
        out.append({"params": params, "lr": lr * 10 ** (-2 * depth / n), "name": f"trunk-{n - depth}"})
    return out


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


def set_train_mode(model: GraftModel) -> None:
    """Train mode for the heads and any module with trainable weights; frozen parts stay in eval."""
    model.train()
    for module in model.trunk.modules():
        own = list(module.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            module.eval()


@dataclass(frozen=True)
class Schedule:
    """What trains in each epoch: ``trunk_groups[e]`` = how many top trunk groups train in epoch e."""

    trunk_groups: tuple[int, ...]
    warmup_epochs: int

    def lr_factor(self, step: int, steps_per_epoch: int) -> float:
        """Linear warm-up, then cosine decay to 1% over the whole run."""
        total = max(1, len(self.trunk_groups) * steps_per_epoch)
        warm = self.warmup_epochs * steps_per_epoch
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


ALL = 10_000  # "every trunk group"


def make_schedule(strategy: Strategy, epochs: int, n_groups: int) -> Schedule:
    """Per-epoch unfreezing plan for each strategy (fastai's fine_tune; Lightning's BackboneFinetuning)."""
    if strategy == Strategy.FEATURE_EXTRACTION:
        return Schedule(tuple([0] * epochs), warmup_epochs=0)
    if strategy == Strategy.SCRATCH:
        return Schedule(tuple([ALL] * epochs), warmup_epochs=1)
    head_epochs = 1 if epochs > 1 else 0
    if strategy == Strategy.PROGRESSIVE:
        plan = [0] * head_epochs + [min(i, n_groups) for i in range(1, epochs - head_epochs + 1)]
        return Schedule(tuple(plan), warmup_epochs=0)
    # fine-tune and multi-task: head warm-up on a frozen trunk, then everything.
    return Schedule(tuple([0] * head_epochs + [ALL] * (epochs - head_epochs)), warmup_epochs=head_epochs + 1)
