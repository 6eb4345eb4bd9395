"""The linear probe: a logistic regression on cached trunk features, folded into a head's Linear layer.

Feature extraction *is* this probe; fine-tune, progressive and multi-task start their heads from it
(LP-FT), so the trunk's first updates follow a sensible head instead of a random one. The regression
runs on standardised features with its strength ``C`` chosen by cross-validation (copies of one photo,
e.g. its flips, stay in one fold), then the scaling is folded into the weights so the model package
keeps its plain ``Linear`` head.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from .model import GraftModel, Task

__all__ = ["fit_logistic", "probe_heads", "CS", "ABSENT_BIAS"]

CS = np.logspace(-3, 2, 11)  # regularisation strengths tried, half a decade apart (on standardised features)
ABSENT_BIAS = -20.0  # a class with no training photo is never predicted
MAX_FOLDS = 5


def _folds(y: np.ndarray, groups: np.ndarray, seed: int) -> list | None:
    """Stratified group folds (every class in every fold), or None when a class has too few photos."""
    per_class = [len(np.unique(groups[y == k])) for k in np.unique(y)]
    n = min(MAX_FOLDS, min(per_class))
    if n < 2:
        return None
    return list(StratifiedGroupKFold(n, shuffle=True, random_state=seed).split(y, y, groups))


def _row_space(z: np.ndarray) -> np.ndarray:
    """An orthonormal basis (d x r) of the rows' span, or the identity when it saves nothing.

    An L2-penalised logistic regression's weights lie in the span of its training rows, so solving
    it there gives the same model; with fewer photos than feature dimensions it is much faster.
    """
    n, d = z.shape
    if n >= 0.8 * d:
        return np.eye(d, dtype=z.dtype)
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    return vt[s > max(s[0] * 1e-6, 1e-9)].T


def _prior_bias(y: np.ndarray, n_classes: int) -> np.ndarray:
    bias = np.full(n_classes, ABSENT_BIAS)
    bias[np.unique(y)] = 0.0  # class-balanced: every present class equally likely
    return bias


def fit_logistic(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """A class-balanced multinomial logistic regression on raw features, as Linear weights.

    Args:
        x: features (n x d); y: class index per row; groups: the photo of each row (copies share one).
        n_classes: outputs of the head (classes absent from ``y`` get weight 0 and a very low bias).

    Returns:
        ``(weight (n_classes x d), bias (n_classes,), chosen C)`` that act on unscaled features.
    """
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    basis = _row_space(z)
    if basis.shape[1] == 0:  # no feature varies (e.g. a tiny image size): only the class balance is left
        return np.zeros((n_classes, x.shape[1])), _prior_bias(y, n_classes), 0.0
    folds = _folds(y, groups, seed)
    # One thread: on these small problems the thread pools of PyTorch and scikit-learn spin against each
    # other on a 2-core CPU (measured 2.5x slower with 2 threads, the same weights to 1e-8).
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.9 announces new defaults; ours are explicit
        if folds is None:
            model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=500, tol=1e-3).fit(z @ basis, y)
            c = 1.0
        else:
            model = LogisticRegressionCV(Cs=CS, cv=folds, class_weight="balanced", scoring="neg_log_loss",
                                         max_iter=500, tol=1e-3).fit(z @ basis, y)
            c = float(np.ravel(model.C_)[0])  # an array before scikit-learn 1.10, a float after
    coef, intercept = model.coef_ @ basis.T, model.intercept_
    if coef.shape[0] == 1:  # two classes: sklearn keeps one logit; softmax of (-l/2, l/2) is the same sigmoid
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, ABSENT_BIAS)
    weight[model.classes_], bias[model.classes_] = coef / std, intercept - (coef / std) @ mean
    return weight, bias, c


@torch.no_grad()
def probe_heads(model: GraftModel, tasks: list[Task], features: np.ndarray, targets: dict[str, np.ndarray],
                groups: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Set every head's Linear layer to its task's logistic regression; returns the C chosen per task.

    Rows whose target is -1 (the task doesn't apply) are left out of that task's regression.
    """
    chosen = {}
    for task in tasks:
        y = targets[task.name]
        keep = y >= 0
        if len(np.unique(y[keep])) < 2:
            continue  # nothing to separate: the head keeps its initialisation
        weight, bias, chosen[task.name] = fit_logistic(features[keep], y[keep], groups[keep], len(task.classes), seed)
        linear = model.heads[task.name][-1]
        linear.weight.copy_(torch.as_tensor(weight, dtype=linear.weight.dtype))
        linear.bias.copy_(torch.as_tensor(bias, dtype=linear.bias.dtype))
    return chosen
