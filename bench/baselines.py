"""Plain baselines outside Graft: a linear probe and a plain timm fine-tune script (also from scratch).

They read the same decoded pixels as Graft (``core.imagecache``), so only the recipe differs.
"""

from __future__ import annotations

import math
import time

import numpy as np
import timm
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from core.weights import load_state_dict_file

__all__ = ["linear_probe", "plain_finetune", "pooled_features", "normalise"]

PROBE_CS = np.logspace(-4, 2, 13)


def normalise(u8: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW."""
    x = torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _model(arch: str, weights: str | None, num_classes: int) -> torch.nn.Module:
    model = timm.create_model(arch, num_classes=num_classes)
    if weights:
        state = {k: v for k, v in load_state_dict_file(weights).items() if not k.startswith("classifier.")}
        missing = model.load_state_dict(state, strict=False).missing_keys
        assert all(k.startswith("classifier.") for k in missing), missing
    return model


@torch.inference_mode()
def pooled_features(arch: str, weights: str, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Frozen global-average-pooled features (fp32, eval mode)."""
    model = _model(arch, weights, 0).eval()
    cfg = model.pretrained_cfg
    return torch.cat([model(normalise(images[i:i + batch], cfg["mean"], cfg["std"]))
                      for i in range(0, len(images), batch)]).numpy()


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, float]:
    """scikit-learn logistic regression on frozen features, C chosen by 5-fold CV; (test probs, C)."""
    folds = StratifiedKFold(min(5, int(np.bincount(train_y).min())), shuffle=True, random_state=0)
    search = GridSearchCV(LogisticRegression(max_iter=5000), {"C": PROBE_CS}, cv=folds, n_jobs=1)
    search.fit(train_x, train_y)
    return search.predict_proba(test_x), float(search.best_params_["C"])


def plain_finetune(arch: str, weights: str | None, train_u8: np.ndarray, train_y: np.ndarray, test_u8: np.ndarray,
                   n_classes: int, *, epochs: int = 15, lr: float = 3e-4, batch: int = 32,
                   seed: int = 0) -> tuple[np.ndarray, float]:
    """The plain script: timm model, AdamW at ``lr``, cosine per step, random flips, nothing else.

    Returns (test probabilities, training seconds).
    """
    torch.manual_seed(seed)
    model = _model(arch, weights, n_classes).to(memory_format=torch.channels_last)
    cfg = model.pretrained_cfg
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(train_u8) / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    x_all, y_all = normalise(train_u8, cfg["mean"], cfg["std"]), torch.from_numpy(train_y)
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_all))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            if len(idx) < 2:
                continue
            x = x_all[idx]
            x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(3), x)
            x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(2), x)
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.inference_mode():
        probs = torch.cat([torch.softmax(model(normalise(test_u8[i:i + 64], cfg["mean"], cfg["std"])
                                               .contiguous(memory_format=torch.channels_last)), 1)
                           for i in range(0, len(test_u8), 64)])
    return probs.numpy(), seconds
