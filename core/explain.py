"""Where the model looked: Grad-CAM heatmaps (pytorch-grad-cam) for every curated backbone.

What is differentiated: for a one-task model, the raw logit of the target class (standard
Grad-CAM; a softmax would saturate on confident photos and give flat maps). A multi-task model
has no single logit per class, so it is the log of the label-level probability that Graft
reports (P(defect) * P(type | defect), see :class:`core.export.ProbabilityModel`).

Which layer: for CNNs the last feature stage timm names in ``feature_info`` (the last feature
map before global pooling); for vision transformers the last block's first norm, whose patch
tokens are reshaped to the patch grid (prefix tokens such as [CLS] are dropped). Heatmaps run
in fp32 on a private copy of the model whose weights are frozen and whose *input* requires
gradients: activations get gradients even for a feature-extraction model, and predictions
running on the shared model in other threads never trigger Grad-CAM's hooks.
"""

from __future__ import annotations

import copy
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import PIL.Image
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from .errors import GraftError
from .metrics import decide
from .export import ProbabilityModel
from .model import single_view
from .predict import Predictor
from .preprocess import Preprocessing, model_input, model_pixels

__all__ = ["heatmap", "overlay", "explain", "target_layer"]

ImageInput = str | Path | PIL.Image.Image | bytes
Reshape = Callable[[torch.Tensor], torch.Tensor]


def target_layer(trunk: nn.Module) -> tuple[nn.Module, Reshape | None]:
    """The layer Grad-CAM reads, and how to turn its output into a (N, C, H, W) map.

    Derived from timm's own descriptions, not a per-architecture table.
    """
    if hasattr(trunk, "num_prefix_tokens") and hasattr(trunk, "blocks"):  # ViT-style token models
        block = trunk.blocks[-1]
        return getattr(block, "norm1", block), _token_grid(trunk)
    info = getattr(trunk, "feature_info", None)
    if info:
        return trunk.get_submodule(info[-1]["module"]), None
    convs = [m for m in trunk.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise GraftError("Heatmaps are not available for this backbone.")
    return convs[-1], None


def _token_grid(trunk: nn.Module) -> Reshape:
    """(N, prefix + H*W, C) tokens -> (N, C, H, W), dropping [CLS]/register tokens."""
    prefix = int(trunk.num_prefix_tokens)
    grid = getattr(getattr(trunk, "patch_embed", None), "grid_size", None)

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        h, w = grid if grid else (int(round(patches.shape[1] ** 0.5)),) * 2
        return patches.reshape(patches.shape[0], h, w, patches.shape[2]).permute(0, 3, 1, 2)

    return reshape


class _ClassScores(nn.Module):
    """One score per dataset class: the label logits, or log label-probabilities for multi-task."""

    def __init__(self, probs: ProbabilityModel) -> None:
        super().__init__()
        self.probs = probs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.probs.logits(x)
        if "label" in logits:  # one task: its raw logits (a softmax would flatten confident maps)
            return logits["label"].float()
        return torch.log(self.probs.combine(logits).clamp_min(1e-12))


@dataclass
class _Explainer:
    """A predictor's private fp32 copy with Grad-CAM attached; one heatmap at a time."""

    probs: ProbabilityModel
    cam: GradCAM
    lock: threading.Lock = field(default_factory=threading.Lock)


# A cache built for this purpose: one model copy per loaded predictor, gone with the predictor.
_EXPLAINERS: "weakref.WeakKeyDictionary[Predictor, _Explainer]" = weakref.WeakKeyDictionary()
_EXPLAINERS_LOCK = threading.Lock()


def _explainer(predictor: Predictor) -> _Explainer:
    with _EXPLAINERS_LOCK:
        found = _EXPLAINERS.get(predictor)
        if found is None:
            model = copy.deepcopy(predictor.model).float().eval()
            model.requires_grad_(False)  # only the input needs gradients (see module docstring)
            probs = ProbabilityModel(model, predictor.spec.tasks, predictor.classes).eval()
            layer, reshape = target_layer(model.trunk)
            cam = GradCAM(_ClassScores(probs), [layer], reshape_transform=reshape)
            found = _EXPLAINERS[predictor] = _Explainer(probs, cam)
        return found


def _target_index(ex: _Explainer, predictor: Predictor, x: torch.Tensor, target: str | None) -> int:
    """The class to explain: the one named, else the class the model reports (threshold included)."""
    classes = predictor.classes
    if target is not None:
        if target not in classes:
            raise GraftError(f"'{target}' is not one of this model's classes.", hint=f"Classes: {', '.join(classes)}.")
        return classes.index(target)
    with torch.no_grad():
        probs = ex.probs(x).cpu().numpy()
    spec = predictor.spec
    return int(decide(probs, classes, spec.good_class, spec.threshold)[0])


def _cam_for_array(predictor: Predictor, array: np.ndarray, target: str | None) -> np.ndarray:
    if getattr(predictor.spec, "anomaly", None):  # good parts only: where the part looks unlike the good ones
        return predictor.heatmap_from_array(array)
    ex = _explainer(predictor)
    x = model_input(array[None], predictor.spec.preprocessing, predictor.runtime.device)
    with ex.lock, torch.enable_grad():  # fp32, no autocast; callers may be inside no_grad
        k = _target_index(ex, predictor, x, target)  # with the model's test-time views: the class it reports
        with single_view(ex.probs.model):  # the map is of the photo as it is, one pass
            cam = ex.cam(input_tensor=x.requires_grad_(True), targets=[ClassifierOutputTarget(k)])
    return np.nan_to_num(cam[0]).clip(0.0, 1.0).astype(np.float32)


def heatmap(predictor: Predictor, image: ImageInput, target: str | None = None) -> np.ndarray:
    """Grad-CAM map of where the model looked.

    Args:
        predictor: a loaded model (``Predictor.load(run_dir)``).
        image: a path, the file's bytes or a PIL image.
        target: the class to explain; default the class the model predicts for this photo.

    Returns:
        float32 array (S, S) in [0, 1], S = ``predictor.spec.image_size``; all zeros when nothing
        in the photo speaks for the target class.

    Raises:
        UnreadableImage: the photo can't be decoded. GraftError: unknown ``target``.
    """
    return _cam_for_array(predictor, predictor.preprocess(image), target)


def overlay(image: PIL.Image.Image | np.ndarray, cam: np.ndarray, alpha: float = 0.45,
            prep: Preprocessing | None = None) -> PIL.Image.Image:
    """The photo as the model sees it with a jet heatmap blended on top (the map's geometry is the model's).

    Args:
        image: the model's view (a uint8 array of the map's size, from ``predictor.preprocess``), or
            any PIL image or RGB array, which is then resized like the model's input.
        cam: a map from :func:`heatmap`.
        alpha: weight of the heatmap (0 = photo only, 1 = heatmap only).
        prep: the model's preprocessing (``predictor.spec.preprocessing``), so a padded model's map
            lies on the padded photo; default: squashed to the map's size.
    """
    size = cam.shape[0]
    if isinstance(image, np.ndarray) and image.shape == (size, size, 3) and image.dtype == np.uint8:
        pixels = image
    else:
        pil = PIL.Image.fromarray(np.asarray(image, dtype=np.uint8)) if isinstance(image, np.ndarray) else image
        pixels = model_pixels(pil, prep if prep is not None and prep.size == size else Preprocessing(size))
    mask = np.clip(cam, 0.0, 1.0).astype(np.float32)
    return PIL.Image.fromarray(show_cam_on_image(pixels.astype(np.float32) / 255.0, mask, use_rgb=True,
                                                 image_weight=1.0 - alpha))


def explain(predictor: Predictor, image: ImageInput, target: str | None = None) -> tuple[PIL.Image.Image, np.ndarray]:
    """Heatmap and overlay in one go (the photo is decoded once).

    Returns:
        ``(overlay image, cam)`` as :func:`overlay` and :func:`heatmap` give them.
    """
    pixels = predictor.preprocess(image)
    cam = _cam_for_array(predictor, pixels, target)
    return overlay(pixels, cam), cam
