"""Batch preprocessing and augmentation on tensors: no JPEG is decoded again after the cache."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .config import VIEW_COUNTS

__all__ = ["to_model_input", "augment", "dihedral", "view_of", "mean_over_views", "VIEWS", "VIEW_COUNTS",
           "views_words"]

VIEWS = ("", "h", "v", "hv", "t", "th", "tv", "thv")
TURNS = True  # the 8 mirror / quarter-turn views of a square photo


def dihedral(batch_u8: np.ndarray, view: str) -> np.ndarray:
    """One view of uint8 NHWC photos: ``t`` swaps rows and columns, then ``h`` / ``v`` mirror them."""
    out = batch_u8.transpose(0, 2, 1, 3) if "t" in view else batch_u8
    if "h" in view:
        out = out[:, :, ::-1]
    if "v" in view:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def view_of(x: torch.Tensor, view: str) -> torch.Tensor:
    """The same view as :func:`dihedral`, of a normalised NCHW batch (tensor ops, so ONNX export keeps them)."""
    if "t" in view:
        x = x.transpose(2, 3)
    if "h" in view:
        x = x.flip(3)
    if "v" in view:
        x = x.flip(2)
    return x


def mean_over_views(forward: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor,
                    views: int) -> dict[str, torch.Tensor]:
    """Test-time views: the softmax of ``forward`` averaged over the first ``views`` of :data:`VIEWS`.

    Returned as log-probabilities, so a softmax of the result gives the averaged probabilities and
    every caller that turns logits into probabilities works unchanged. One forward per view keeps
    the memory of one batch. Quarter turns need a square input; a non-square one gets the mirrorings.
    """
    names = VIEWS[:views] if x.shape[2] == x.shape[3] else VIEWS[:min(views, 4)]
    outs = [forward(view_of(x, view).contiguous(memory_format=torch.channels_last)) for view in names]
    return {name: torch.logsumexp(torch.stack([torch.log_softmax(o[name].float(), 1) for o in outs]), 0)
            - math.log(len(outs)) for name in outs[0]}


def views_words(views: int) -> str:
    """What a view count means for the user, in plain words."""
    if views <= 1:
        return "checks each photo once, as it is"
    how = "mirrored and turned" if views == 8 else "mirrored"
    return (f"checks each photo {views} ways ({how}) and averages the answers: steadier, "
            f"about {views}× slower to predict")


def to_model_input(batch_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW in channels_last memory (faster CPU convolutions)."""
    x = batch_u8.permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    return x.contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, generator: torch.Generator, max_degrees: float = 10.0,
            jitter: float = 0.15) -> torch.Tensor:
    """Random flips, small rotations and brightness/contrast, independently per image.

    Parts on a line can appear mirrored or slightly rotated; lighting drifts. Works on the
    normalised batch, so it runs on whichever device the model uses.
    """
    n = x.shape[0]
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(x.device)  # noqa: E731
    if TURNS and x.shape[2] == x.shape[3]:  # quarter turns (with the flips below: all 8 views of a square)
        x = torch.where(rand(n, 1, 1, 1) < 0.5, x.transpose(2, 3), x)
    x = torch.where(rand(n, 1, 1, 1) < 0.5, x.flip(3), x)
    x = torch.where(rand(n, 1, 1, 1) < 0.5, x.flip(2), x)
    angle = (rand(n) * 2 - 1) * math.radians(max_degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                         torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + (rand(n, 1, 1, 1) * 2 - 1) * jitter
    brightness = (rand(n, 1, 1, 1) * 2 - 1) * jitter * 2
    return ((x - mean) * contrast + mean + brightness).contiguous(memory_format=torch.channels_last)
