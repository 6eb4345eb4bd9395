"""How each strategy trains: optimizer parameter groups and the per-epoch unfreezing schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import Strategy
from .model import GraftModel, trunk_groups

__all__ = ["param_groups", "Schedule", "make_schedule", "ALL"]


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
