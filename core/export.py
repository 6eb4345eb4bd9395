"""Take a model out of Graft: ONNX with its preprocessing as metadata, a parity check, and a zip bundle.

The ONNX graph maps a normalised float32 NCHW batch straight to per-class probabilities, combined
exactly like :func:`core.tasks.label_probs`, so onnxruntime gives the numbers Graft shows. Before
anyone relies on it, every test photo of the run is scored by onnxruntime and by torch (fp32) and the
two must agree: same top class on every photo, probabilities within ``PARITY_TOLERANCE``.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .augment import to_model_input
from .datasets import load_dataset
from .errors import GraftError
from .jsonio import read_json
from .images import UnreadableImage, content_hash, load_resized
from .package import SPEC_FILE, WEIGHTS_FILE, ModelSpec, load_package, resolve_model_dir
from .predict import Predictor
from .model import GraftModel, Task
from .tasks import combine_probs

__all__ = ["ExportResult", "ProbabilityModel", "export_onnx", "bundle_zip", "onnx_metadata", "read_onnx_metadata",
           "readme", "test_images", "SNIPPET", "ONNX_FILE", "BUNDLE_FILE", "PARITY_TOLERANCE"]

ONNX_FILE, BUNDLE_FILE, README_FILE = "model.onnx", "model-bundle.zip", "README.md"
PARITY_TOLERANCE = 1e-3
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
_FALLBACK_IMAGES = 8  # noise photos used for parity when the run's test photos are gone


@dataclass
class ExportResult:
    """What an export wrote and how closely onnxruntime matches torch.

    ``top_class_agreement`` and ``max_prob_diff`` compare onnxruntime with torch in fp32 (the check
    that decides ``passed``). The ``predictor_*`` numbers compare onnxruntime with Graft's packaged
    predictor as it runs in the app, which may use bf16 on this CPU: informative, not a pass/fail.
    """

    path: Path
    n_images: int
    top_class_agreement: float
    max_prob_diff: float
    passed: bool
    predictor_agreement: float = float("nan")
    predictor_max_prob_diff: float = float("nan")
    images_source: str = "test"  # "test" (the run's test photos), "given" or "noise"

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (f"Parity check {verdict} on {self.n_images} {self.images_source} photos: same top class on "
                f"{self.top_class_agreement:.1%}, largest probability difference {self.max_prob_diff:.2e} "
                f"(limit {PARITY_TOLERANCE:.0e}). Against the app's predictor: {self.predictor_agreement:.1%} "
                f"same top class, largest difference {self.predictor_max_prob_diff:.2e}.")


class ProbabilityModel(nn.Module):
    """A GraftModel as one function: normalised images -> label-level probabilities (N, classes).

    The task outputs are combined by :func:`core.tasks.combine_probs`, the same code the app uses.
    """

    def __init__(self, model: GraftModel, tasks: list[Task], classes: list[str]) -> None:
        super().__init__()
        self.model, self.tasks, self.classes = model, tasks, classes

    def logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(x)

    def combine(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """Task logits -> label-level probabilities."""
        probs = {name: torch.softmax(v.float(), 1) for name, v in logits.items()}
        return combine_probs(probs, self.tasks, self.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.logits(x))


def onnx_metadata(spec: ModelSpec, weights_sha256: str = "") -> dict[str, str]:
    """Everything needed to use the ONNX file without Graft; each value is JSON text."""
    info = {
        "classes": spec.classes, "good_class": spec.good_class, "threshold": spec.threshold,
        "image_size": spec.image_size, "resize": "squash", "interpolation": spec.interpolation,
        "mean": spec.mean, "std": spec.std, "backbone": spec.backbone,
        "tasks": [{"name": t.name, "classes": list(t.classes)} for t in spec.tasks],
        "input": (f"float32 NCHW RGB batch named '{INPUT_NAME}': the whole photo squashed (no crop) to "
                  f"{spec.image_size}x{spec.image_size} with {spec.interpolation} resampling, divided by 255, "
                  "then (x - mean) / std per channel"),
        "output": (f"'{OUTPUT_NAME}': (N, {len(spec.classes)}) probabilities in the order of 'classes'. With a "
                   "good_class, a part is flagged when 1 - P(good_class) >= threshold and then gets its most "
                   "likely defect class"),
        "weights_sha256": weights_sha256, "producer": "Graft",
    }
    return {k: json.dumps(v) for k, v in info.items()}


# --- export --------------------------------------------------------------------------------

def export_onnx(run_dir: str | Path, out: str | Path | None = None, images: list | None = None) -> ExportResult:
    """Write the run's model as ONNX (label probabilities out) and check it against torch.

    Args:
        run_dir: a finished run folder (or its ``model/`` folder).
        out: where to write; default ``RUN_DIR/model.onnx``.
        images: photos (paths, bytes or PIL images) for the parity check; default: the run's test
            photos from ``predictions.csv`` (noise images if they can no longer be found).

    Returns:
        The parity numbers; the file is written even when the check fails, so it can be inspected.
    """
    model_dir = _model_dir(run_dir)
    root = _run_root(run_dir, model_dir)
    out = Path(out) if out else root / ONNX_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    model, spec = load_package(model_dir)
    arrays, source = _parity_arrays(root, spec.image_size, images)
    wrapped = ProbabilityModel(model.float().eval(), spec.tasks, spec.classes).eval()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".onnx-") as tmp:
        raw = Path(tmp) / ONNX_FILE
        _torch_export(wrapped, spec.image_size, raw)
        result = _parity(raw, wrapped, Predictor.load(model_dir), arrays, spec)  # own copy: may go to GPU
        result.path, result.images_source = out, source
        meta = onnx_metadata(spec, content_hash(model_dir / WEIGHTS_FILE))
        meta["parity_check"] = json.dumps({k: v for k, v in asdict(result).items() if k != "path"})
        _save_with_metadata(raw, out, meta)
    return result


def _model_dir(run_dir: str | Path) -> Path:
    try:
        return resolve_model_dir(run_dir)
    except GraftError:
        raise GraftError("This run has no finished model yet.", hint="Pick a run that finished training.") from None


def _run_root(run_dir: str | Path, model_dir: Path) -> Path:
    """The run folder, whether the user named it or its ``model/`` folder."""
    run_dir = Path(run_dir)
    return run_dir.parent if run_dir.resolve() == model_dir.resolve() else run_dir


def _torch_export(model: nn.Module, size: int, path: Path) -> None:
    """torch.export-based exporter (the default since torch 2.9) with a dynamic batch dimension.

    The example batch has 2 images: a batch of 1 would be specialised into the graph.
    """
    example = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamo=True, external_data=False, dynamic_shapes=({0: batch},), verbose=False)
    except Exception as exc:  # exporter failures are internal, but the user needs a sentence
        raise GraftError(f"This model could not be converted to ONNX ({type(exc).__name__}: {str(exc)[:200]}).",
                         hint="Please report it with the backbone name.") from exc


def _save_with_metadata(raw: Path, out: Path, meta: dict[str, str]) -> None:
    import onnx  # only exports pay for onnx

    model = onnx.load(str(raw))
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    tmp = out.with_name(f".{out.name}.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded metadata of an ONNX file written by :func:`export_onnx`."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props}


# --- parity --------------------------------------------------------------------------------

def test_images(run_dir: str | Path) -> list[tuple[dict[str, str], Path]]:
    """The rows of ``predictions.csv`` for the test split (else its only split), with each photo's path.

    Photos are found through the run's dataset (folder, zip or CSV); rows whose photo is gone are
    left out, and a dataset that can't be opened gives an empty list.
    """
    run_dir = Path(run_dir)
    rows = _read_rows(run_dir / "predictions.csv")
    test = [r for r in rows if r.get("split") == "test"] or rows
    config = read_json(run_dir / "config.json", {}) or {}
    try:
        paths = {s.rel: Path(s.path) for s in load_dataset(config["data"]).samples}
    except (GraftError, KeyError, OSError):
        return []
    return [(r, paths[r["image"]]) for r in test if r.get("image") in paths and paths[r["image"]].is_file()]


test_images.__test__ = False  # a helper, not a pytest test


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _parity_arrays(root: Path, size: int, images: list | None) -> tuple[np.ndarray, str]:
    """uint8 (N, S, S, 3) photos for the parity check, and where they came from."""
    sources, kind = (images, "given") if images is not None else ([p for _, p in test_images(root)], "test")
    arrays = []
    for src in sources:
        try:
            arrays.append(load_resized(src, size))
        except UnreadableImage:
            continue  # the check is about numbers, not about one damaged file
    if arrays:
        return np.stack(arrays), kind
    rng = np.random.default_rng(0)  # deterministic noise still exercises every operator
    return rng.integers(0, 256, (_FALLBACK_IMAGES, size, size, 3), dtype=np.uint8), "noise"


def _parity(path: Path, model: ProbabilityModel, predictor: Predictor, arrays: np.ndarray,
            spec: ModelSpec) -> ExportResult:
    """Score the photos with onnxruntime, torch fp32 and the app's predictor, and compare."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    mean, std = torch.tensor(spec.mean), torch.tensor(spec.std)
    onnx_p, torch_p, app_p = [], [], []
    for start in range(0, len(arrays), 32):
        batch = arrays[start:start + 32]
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(batch)), mean, std).contiguous()
        onnx_p.append(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
        with torch.inference_mode():  # fp32: no autocast here on purpose
            torch_p.append(model(x).numpy())
        app_p.append(predictor.probs_from_arrays(batch)[0])
    o, t, a = (np.concatenate(p).astype(np.float64) for p in (onnx_p, torch_p, app_p))
    agree, diff = _agreement(o, t), float(np.abs(o - t).max())
    return ExportResult(path=path, n_images=len(arrays), top_class_agreement=agree, max_prob_diff=diff,
                        passed=agree == 1.0 and diff <= PARITY_TOLERANCE,
                        predictor_agreement=_agreement(o, a), predictor_max_prob_diff=float(np.abs(o - a).max()))


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


# --- the bundle ----------------------------------------------------------------------------

def bundle_zip(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Zip the model package, ``model.onnx`` and a README with a copy-paste onnxruntime snippet.

    The ONNX file is (re-)exported when it is missing or was made from other weights.

    Raises:
        GraftError: the run has no model, or the ONNX file failed its parity check.
    """
    model_dir = _model_dir(run_dir)
    root = _run_root(run_dir, model_dir)
    onnx_path = root / ONNX_FILE
    meta = _fresh_metadata(onnx_path, model_dir)
    if meta is None:
        export_onnx(run_dir, onnx_path)
        meta = read_onnx_metadata(onnx_path)
    parity = meta.get("parity_check") or {}
    if not parity.get("passed"):
        raise GraftError("The ONNX model did not score the test photos like the original, so it was not bundled.",
                         hint="Run `python -m core export RUN_DIR --format onnx` to see the numbers.")
    out = Path(out) if out else root / BUNDLE_FILE
    _write_zip(out, {WEIGHTS_FILE: model_dir / WEIGHTS_FILE, SPEC_FILE: model_dir / SPEC_FILE, ONNX_FILE: onnx_path},
               readme(meta, parity))
    return out


def _fresh_metadata(onnx_path: Path, model_dir: Path) -> dict[str, Any] | None:
    """The ONNX file's metadata if it was exported from the current weights, else None."""
    if not onnx_path.is_file():
        return None
    try:
        meta = read_onnx_metadata(onnx_path)
    except Exception:  # a damaged or foreign file is simply exported again
        return None
    return meta if meta.get("weights_sha256") == content_hash(model_dir / WEIGHTS_FILE) else None


def _write_zip(out: Path, files: dict[str, Path], readme_text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in files.items():
            zf.write(path, arcname=name)
        zf.writestr(README_FILE, readme_text)
    os.replace(tmp, out)


# The README's snippet: plain numpy + Pillow + onnxruntime, decoding photos exactly like Graft.
SNIPPET = """\
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
classes, size = meta["classes"], meta["image_size"]
mean, std = np.array(meta["mean"], np.float32), np.array(meta["std"], np.float32)


def load(path):
    \"\"\"The pixels Graft feeds its model: upright, RGB, whole photo squashed to size x size.\"\"\"
    image = Image.open(path)
    image.draft("RGB", (size, size))  # JPEGs decode at a reduced scale first, as in Graft
    image = ImageOps.exif_transpose(image).convert("RGB")  # (Graft puts transparent PNGs on white)
    image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    x = (np.asarray(image, dtype=np.float32) / 255 - mean) / std
    return x.transpose(2, 0, 1)[None]  # HWC -> NCHW


def verdict(probs):
    \"\"\"Graft's decision: with a good class, flag a part when 1 - P(good) reaches the threshold.\"\"\"
    good = meta["good_class"]
    if good is None or len(classes) < 2:
        return classes[int(probs.argmax())]
    if 1 - probs[classes.index(good)] < meta["threshold"]:
        return good
    return max((c for c in classes if c != good), key=lambda c: probs[classes.index(c)])


for path in sys.argv[1:]:
    probs = session.run(None, {session.get_inputs()[0].name: load(path)})[0][0]
    print(json.dumps({"photo": path, "verdict": verdict(probs),
                      "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs)}}))
"""


def readme(meta: dict[str, Any], parity: dict[str, Any]) -> str:
    """The bundle's README: what is inside, how to predict outside Graft, and the parity numbers."""
    good = meta.get("good_class")
    decision = (f"A part is flagged as defective when 1 − P({good}) ≥ {meta.get('threshold', 0.5):.3f}; "
                "it then gets its most likely defect class." if good else "The verdict is the most likely class.")
    return f"""# Graft model: {', '.join(meta.get('classes', []))}

| file | what |
|---|---|
| `{ONNX_FILE}` | the model for any ONNX runtime; class names and preprocessing are in its metadata |
| `{WEIGHTS_FILE}`, `{SPEC_FILE}` | the Graft model package (`python -m core predict FOLDER photo.jpg`) |

Backbone `{meta.get('backbone')}`, photos squashed (no crop) to {meta.get('image_size')}×{meta.get('image_size')} px.
{decision}

## Predict outside Graft

`pip install onnxruntime numpy pillow`, save this as `predict.py` next to `{ONNX_FILE}`, and run
`python predict.py photo1.jpg photo2.png`. It prints one JSON line per photo.

```python
{SNIPPET}```

Input: {meta.get('input', '')}.
Output: {meta.get('output', '')}.

## Parity check

Before this bundle was made, onnxruntime and Graft (PyTorch, fp32) scored {parity.get('n_images')} \
{parity.get('images_source', 'test')} photos: the same top class on {parity.get('top_class_agreement', 0):.1%} \
of them, largest probability difference {parity.get('max_prob_diff', float('nan')):.1e} \
(allowed: {PARITY_TOLERANCE:.0e}).
"""
