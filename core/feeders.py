"""Feeders turn cached arrays into model-ready batches for the trainer."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .augment import augment, to_model_input
from .ddp import world
from .device import Runtime
from .model import GraftModel

__all__ = ["ImageFeeder", "FeatureFeeder", "Targets"]

Targets = dict[str, np.ndarray]  # task name -> class index per sample, -1 where it doesn't apply


class _Feeder:
    def __init__(self, splits: dict[str, list[int]], targets: Targets, batch_size: int, runtime: Runtime,
                 seed: int) -> None:
        self.splits, self.targets, self.batch_size, self.runtime = splits, targets, batch_size, runtime
        self.generator = torch.Generator().manual_seed(seed)  # shuffles: the same order on every DDP rank
        w = world()
        self.rank, self.ranks = w.rank, w.size
        # augmentation draws differ per rank (one process keeps the single stream it always had)
        self.aug_generator = self.generator if w.size == 1 else torch.Generator().manual_seed(seed + 7919 * w.rank)

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def n_batches(self, split: str) -> int:
        return -(-self.size(split) // self.batch_size)

    def _order(self, split: str, shuffle: bool) -> np.ndarray:
        idx = np.asarray(self.splits[split], dtype=np.int64)
        if shuffle:
            idx = idx[torch.randperm(len(idx), generator=self.generator).numpy()]
        return idx

    def _y(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        dev = self.runtime.device
        return {t: torch.from_numpy(v[idx]).to(dev) for t, v in self.targets.items()}

    def batches(self, split: str, train: bool) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor], np.ndarray]]:
        """Batches of ``split`` (shuffled when ``train``).

        Under DDP a training batch is this rank's share of the global batch (every N-th photo of it,
        like torch's DistributedSampler), so N ranks see the same global batches as one process;
        scoring batches are whole on every rank.
        """
        idx = self._order(split, shuffle=train)
        for start in range(0, len(idx), self.batch_size):
            chunk = idx[start:start + self.batch_size]
            if train and len(chunk) < 2 * self.ranks and len(idx) > 1:
                continue  # a batch of one (per rank) breaks BatchNorm's statistics
            if train and self.ranks > 1:
                chunk = chunk[self.rank::self.ranks]
            yield self._x(chunk, train), self._y(chunk), chunk


class ImageFeeder(_Feeder):
    """Batches of decoded photos, augmented on tensors during training."""

    def __init__(self, images: np.ndarray, mean: list[float], std: list[float], **kw) -> None:
        super().__init__(**kw)
        self.images = images
        self.mean = torch.tensor(mean, device=self.runtime.device)
        self.std = torch.tensor(std, device=self.runtime.device)

    def _x(self, idx: np.ndarray, train: bool) -> torch.Tensor:
        # sorted fancy-indexing reads a memmap sequentially; then restore the shuffled order
        order = np.argsort(idx)
        u8 = np.empty((len(idx), *self.images.shape[1:]), dtype=np.uint8)
        u8[order] = self.images[idx[order]]
        x = to_model_input(torch.from_numpy(u8).to(self.runtime.device), self.mean, self.std)
        return augment(x, self.aug_generator) if train else x

    def forward(self, model: GraftModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return model(x)


class FeatureFeeder(_Feeder):
    """Batches of cached embeddings: only the heads run, so an epoch takes milliseconds."""

    def __init__(self, features: torch.Tensor, **kw) -> None:
        super().__init__(**kw)
        self.features = features.to(self.runtime.device)

    def _x(self, idx: np.ndarray, train: bool) -> torch.Tensor:
        return self.features[torch.from_numpy(idx).to(self.features.device)]

    def forward(self, model: GraftModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return model.forward_heads(x)
