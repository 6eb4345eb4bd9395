"""Score photos with a packaged model: the same preprocessing (core.preprocess), decision and precision as training."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import PIL.Image
import torch

from .augment import to_model_input
from .device import Runtime, select_runtime
from .errors import GraftError
from .metrics import answers, decide, defect_scores
from .images import UnreadableImage, has_image_extension
from .package import ModelSpec, load_package
from .model import GraftModel
from .preprocess import model_pixels
from .tasks import label_probs

__all__ = ["Predictor", "Prediction", "list_images"]

ImageSource = str | Path | PIL.Image.Image | bytes


@dataclass
class Prediction:
    """One photo's answer.

    ``label`` is the class at the threshold; ``verdict`` is what to do with the part: ``good``,
    ``defect`` or ``uncertain`` (send it to a person), or the class name for a model without a
    good class (``uncertain`` too when its two likeliest classes are closer than the band).
    """

    source: str
    label: str | None
    confidence: float
    scores: dict[str, float]
    defect_score: float | None = None
    tasks: dict[str, dict[str, float]] | None = None
    error: str = ""
    verdict: str | None = None
    heatmap: np.ndarray | None = None  # good-parts-only models, on request (AnomalyPredictor.predict_with_heatmap)

    def to_row(self) -> dict[str, Any]:
        """Full-precision values: a rounded score could contradict its verdict."""
        row = {"image": self.source, "verdict": self.verdict, "predicted": self.label, "confidence": self.confidence}
        if self.defect_score is not None:
            row["defect_score"] = self.defect_score
        row.update({f"p_{k}": v for k, v in self.scores.items()})
        if self.error:
            row["error"] = self.error
        return row


def list_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively) into image files; keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and has_image_extension(f)))
        elif p.is_file():
            out.append(p)
        else:
            raise GraftError(f"'{p}' does not exist.")
    return out


class Predictor:
    """A loaded model package, ready to score photos."""

    def __init__(self, model: GraftModel, spec: ModelSpec, runtime: Runtime | None = None) -> None:
        self.spec, self.runtime = spec, runtime or select_runtime()
        self.model = model.to(self.runtime.device).to(memory_format=torch.channels_last).eval()
        self.mean = torch.tensor(spec.mean, device=self.runtime.device)
        self.std = torch.tensor(spec.std, device=self.runtime.device)

    @classmethod
    def load(cls, path: str | Path, runtime: Runtime | None = None) -> "Predictor":
        """The package's predictor: a good-parts-only package gives a :class:`core.anomaly_predict.AnomalyPredictor`."""
        model, spec = load_package(path)
        if spec.anomaly and cls is Predictor:
            from .anomaly import load_memory
            from .anomaly_predict import AnomalyPredictor
            from .package import resolve_model_dir

            return AnomalyPredictor(model, spec, load_memory(resolve_model_dir(path)), runtime)
        return cls(model, spec, runtime)

    @property
    def classes(self) -> list[str]:
        return self.spec.classes

    def preprocess(self, source: ImageSource) -> np.ndarray:
        """The photo as this model sees it (before normalisation): see :func:`core.preprocess.model_pixels`."""
        return model_pixels(source, self.spec.preprocessing)

    @torch.inference_mode()
    def probs_from_arrays(self, arrays: np.ndarray) -> np.ndarray:
        """Per-class probabilities for a uint8 (N, S, S, 3) batch."""
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(arrays)).to(self.runtime.device), self.mean, self.std)
        with self.runtime.autocast():
            logits = self.model(x)
        task_probs = {k: torch.softmax(v.float(), 1).cpu().numpy() for k, v in logits.items()}
        return label_probs(task_probs, self.spec.tasks, self.classes), task_probs

    def predict(self, sources: list[ImageSource], batch_size: int = 32,
                threshold: float | None = None) -> list[Prediction]:
        """Score photos; an unreadable one gets a Prediction with ``error`` set instead of failing all."""
        out: list[Prediction] = []
        for start in range(0, len(sources), batch_size):
            out.extend(self._predict_batch(sources[start:start + batch_size], threshold))
        return out

    def predict_one(self, source: ImageSource, threshold: float | None = None) -> Prediction:
        return self.predict([source], threshold=threshold)[0]

    def _predict_batch(self, sources: list[ImageSource], threshold: float | None) -> list[Prediction]:
        arrays, ok, results = [], [], [None] * len(sources)
        for i, src in enumerate(sources):
            try:
                arrays.append(self.preprocess(src))
                ok.append(i)
            except UnreadableImage as exc:
                results[i] = Prediction(_name(src), None, 0.0, {}, error=str(exc))
        if arrays:
            probs, task_probs = self.probs_from_arrays(np.stack(arrays))
            for row, i in enumerate(ok):
                results[i] = self._verdict(_name(sources[i]), probs[row], {k: v[row] for k, v in task_probs.items()},
                                           threshold)
        return results

    def _verdict(self, name: str, probs: np.ndarray, task_probs: dict[str, np.ndarray],
                 threshold: float | None) -> Prediction:
        spec = self.spec
        thr = spec.threshold if threshold is None else threshold
        k = int(decide(probs[None], self.classes, spec.good_class, thr)[0])
        verdict = answers(probs[None], self.classes, spec.good_class, thr, spec.uncertain_band)[0]
        scores = {c: float(p) for c, p in zip(self.classes, probs)}
        defect = float(defect_scores(probs[None], self.classes, spec.good_class)[0]) if spec.good_class else None
        tasks = None
        if len(spec.tasks) > 1:
            tasks = {t.name: {c: float(p) for c, p in zip(t.classes, task_probs[t.name])} for t in spec.tasks}
        return Prediction(name, self.classes[k], float(probs[k]), scores, defect, tasks, verdict=verdict)


def _name(source: ImageSource) -> str:
    if isinstance(source, (str, Path)):
        return os.fspath(source)
    return getattr(source, "filename", "") or "photo"
