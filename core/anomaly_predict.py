"""Score photos with a good-parts-only (anomaly) model package: a defect score, a verdict and a heatmap.

:meth:`core.predict.Predictor.load` returns an :class:`AnomalyPredictor` for such a package. It reads as a
two-class model (the good class and ``defect``): ``p_defect`` is the normalised score (0.5 at the
threshold), so the verdicts, the uncertain band, batch tests and evaluation work as for classifiers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .anomaly import Normaliser, PatchFeatures, load_memory, nearest_distance, smooth_heatmap
from .augment import to_model_input
from .device import Runtime
from .model import GraftModel
from .package import ModelSpec, load_package, resolve_model_dir
from .predict import ImageSource, Prediction, Predictor

__all__ = ["AnomalyPredictor", "HEATMAP_LEGEND"]

HEATMAP_LEGEND = ("Red: looks unlike any good part Graft learned from; blue: looks like the good parts. "
                  "Where it turns red past the middle of the scale, the part would be flagged.")


class AnomalyPredictor(Predictor):
    """A loaded good-parts-only model: the trunk's patch features against the memory of good parts."""

    def __init__(self, model: GraftModel, spec: ModelSpec, bank: torch.Tensor, runtime: Runtime | None = None) -> None:
        super().__init__(model, spec, runtime)
        self.extractor = PatchFeatures(self.model.trunk, spec.anomaly["stages"]).eval()
        self.bank = bank.to(self.runtime.device)
        self.normaliser = Normaliser(**spec.anomaly["normaliser"])

    @classmethod
    def load(cls, path: str | Path, runtime: Runtime | None = None) -> "AnomalyPredictor":
        model, spec = load_package(path)
        return cls(model, spec, load_memory(resolve_model_dir(path)), runtime)

    @torch.inference_mode()
    def patch_scores(self, arrays: np.ndarray) -> np.ndarray:
        """Raw nearest-neighbour distances per patch, (N, h, w), for a uint8 (N, S, S, 3) batch."""
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(arrays)).to(self.runtime.device), self.mean, self.std)
        with self.runtime.autocast():
            feats = self.extractor(x).half().float()  # float16 like the training patches, so scores match the run
        n, d, h, w = feats.shape
        dist = nearest_distance(feats.permute(0, 2, 3, 1).reshape(-1, d), self.bank)
        return dist.view(n, h, w).cpu().numpy()

    def probs_from_arrays(self, arrays: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``[P(good), P(defect)]`` per photo, where P(defect) is the normalised score of its worst patch."""
        return self._probs(self.patch_scores(arrays))

    def _probs(self, maps: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        scores = self.normaliser.score(maps.reshape(len(maps), -1).max(1))
        probs = np.stack([1 - scores, scores], 1)
        return probs, {self.spec.tasks[0].name: probs}

    def heatmap_from_array(self, array: np.ndarray) -> np.ndarray:
        """A (S, S) map of normalised scores in [0, 1] for one photo as the model sees it (0.5: the threshold)."""
        raw = smooth_heatmap(self.patch_scores(array[None])[0], self.spec.image_size)
        return self.normaliser.score(raw).astype(np.float32)

    def heatmap(self, source: ImageSource) -> np.ndarray:
        """:meth:`heatmap_from_array` of a photo (path, bytes or PIL image)."""
        return self.heatmap_from_array(self.preprocess(source))

    def predict_with_heatmap(self, source: ImageSource, threshold: float | None = None) -> Prediction:
        """One photo's score and verdict with its heatmap (``Prediction.heatmap``), from one forward pass."""
        pixels = self.preprocess(source)
        maps = self.patch_scores(pixels[None])
        probs, task_probs = self._probs(maps)
        name = source if isinstance(source, (str, Path)) else getattr(source, "filename", "") or "photo"
        out = self._verdict(str(name), probs[0], {k: v[0] for k, v in task_probs.items()}, threshold)
        out.heatmap = self.normaliser.score(smooth_heatmap(maps[0], self.spec.image_size)).astype(np.float32)
        return out
