"""The raw model step: Graft's model and optimizer on random tensors, with no Graft loop around it."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from core.backbones import build
from core.device import Runtime, select_runtime
from core.model import GraftModel, Task

__all__ = ["runtime_for", "make_model", "random_batch", "train_step", "infer_step"]

CLASSES = ("ok", "scratch", "dent", "stain")


def runtime_for(precision: str) -> Runtime:
    """The CPU runtime Graft would pick (threads = physical cores), with this precision."""
    base = select_runtime(prefer="cpu")
    return Runtime(device=base.device, precision=precision, threads=base.threads)


def make_model(backbone: str, size: int, classes: tuple[str, ...] = CLASSES) -> GraftModel:
    """Graft's model (trunk + one head) from random weights, in channels_last like the trainer uses."""
    trunk = build(backbone, "scratch", image_size=size)
    return GraftModel(trunk, [Task("label", classes)]).to(memory_format=torch.channels_last)


def random_batch(batch: int, size: int, n_classes: int = len(CLASSES)) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, n_classes, (batch,))


def train_step(model: GraftModel, runtime: Runtime, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One AdamW step on the whole model (what Graft's fine-tune epochs do, minus the feeder)."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)

    def step() -> None:
        with runtime.autocast():
            logits = model(x)["label"]
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def infer_step(model: GraftModel, runtime: Runtime, x: torch.Tensor) -> Callable[[], None]:
    """One forward pass in eval mode under inference_mode (what prediction does)."""
    model.eval()

    def step() -> None:
        with torch.inference_mode(), runtime.autocast():
            model(x)

    return step
