"""Take a model out of Graft: ONNX with its preprocessing as metadata, a parity check, and a zip bundle.

The ONNX graph maps a normalised float32 NCHW batch straight to per-class probabilities, combined
exactly like :func:`core.tasks.label_probs`, so onnxruntime gives the numbers Graft shows. The
bundle's README carries a copy-paste snippet (:data:`SNIPPET`: numpy, Pillow and onnxruntime only)
that decodes photos exactly like :mod:`core.preprocess` and decides like Graft, uncertain band included.

Before anyone relies on it, real photos of the run (its test photos; out-of-fold or validation photos
when there is no test split) are checked twice: the graph (onnxruntime against torch fp32 on Graft's
own input), and the whole production path (the snippet's own ``load`` and ``verdict`` on the photo
file, then onnxruntime, against Graft's :class:`core.predict.Predictor` path in fp32). Both must give
the same top class on every photo with probabilities within ``PARITY_TOLERANCE``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch import nn

from .datasets import load_dataset
from .decision import Decision, read_decision
from .errors import GraftError
from .jsonio import read_json
from .images import UnreadableImage, content_hash
from .metrics import answers
from .package import SPEC_FILE, WEIGHTS_FILE, ModelSpec, load_package, resolve_model_dir
from .preprocess import model_input, model_pixels
from .predictions_file import SPLIT_ORDER
from .model import GraftModel, Task
from .numbers import fmt_pct
from .tasks import combine_probs

__all__ = ["ExportResult", "ProbabilityModel", "export_onnx", "bundle_zip", "onnx_metadata", "read_onnx_metadata",
           "readme", "test_images", "snippet_functions", "SNIPPET", "ONNX_FILE", "BUNDLE_FILE", "PARITY_TOLERANCE",
           "onnx_zip", "ONNX_BUNDLE_FILE"]

ONNX_FILE, BUNDLE_FILE, README_FILE = "model.onnx", "model-bundle.zip", "README.md"
ONNX_BUNDLE_FILE = "model-onnx.zip"  # the deployment download: model.onnx and the README only
PARITY_TOLERANCE = 1e-3
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
_FALLBACK_IMAGES = 8  # noise photos used for parity when the run's photos are gone
MAX_PARITY_PHOTOS = 200  # enough to trust it, few enough to export in seconds


@dataclass
class ExportResult:
    """What an export wrote and how closely the exported model matches Graft.

    ``top_class_agreement`` and ``max_prob_diff`` compare onnxruntime with torch (fp32) on the same
    input (the graph). ``snippet_*`` compare the whole production path: the README snippet's own
    loading code and onnxruntime on the photo files against Graft's preprocessing and torch fp32, and
    ``verdict_agreement`` the snippet's verdict (uncertain band included) with Graft's. ``passed``
    needs both comparisons within tolerance. The ``predictor_*`` numbers compare onnxruntime with the
    app's predictor as it runs (maybe bf16 on this CPU): informative, not a pass/fail.
    """

    path: Path
    n_images: int
    top_class_agreement: float
    max_prob_diff: float
    passed: bool
    predictor_agreement: float = float("nan")
    predictor_max_prob_diff: float = float("nan")
    images_source: str = "test"  # "test", "oof" or "val" (the run's photos), "given" or "noise"
    snippet_agreement: float = float("nan")
    snippet_max_prob_diff: float = float("nan")
    verdict_agreement: float = float("nan")

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (f"Parity check {verdict} on {self.n_images} {self.images_source} photos: same top class on "
                f"{fmt_pct(self.top_class_agreement, 1)}, largest probability difference {self.max_prob_diff:.2e} "
                f"(limit {PARITY_TOLERANCE:.0e}). Through the README snippet's own loading code: "
                f"{fmt_pct(self.snippet_agreement, 1)} same top class, largest difference {self.snippet_max_prob_diff:.2e}, "
                f"same verdict on {fmt_pct(self.verdict_agreement, 1)}. Against the app's predictor: "
                f"{fmt_pct(self.predictor_agreement, 1)} same top class, largest difference "
                f"{self.predictor_max_prob_diff:.2e}.")


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


def onnx_metadata(spec: ModelSpec, weights_sha256: str = "", decision: Decision | None = None) -> dict[str, str]:
    """Everything needed to use the ONNX file without Graft; each value is JSON text."""
    prep = spec.preprocessing
    band = spec.uncertain_band if decision is None else decision.uncertain_band
    threshold = spec.threshold if decision is None else decision.threshold
    info = {
        "classes": spec.classes, "good_class": spec.good_class, "threshold": threshold, "uncertain_band": band,
        **prep.to_json(), "backbone": spec.backbone,
        "tasks": [{"name": t.name, "classes": list(t.classes)} for t in spec.tasks],
        "input": f"float32 NCHW RGB batch named '{INPUT_NAME}': {prep.describe()}",
        "output": (f"'{OUTPUT_NAME}': (N, {len(spec.classes)}) probabilities in the order of 'classes'. With a "
                   "good_class, a part is flagged when its defect score 1 - P(good_class) >= threshold and then "
                   "gets its most likely defect class; a score in [threshold - uncertain_band / 2, threshold + "
                   "uncertain_band / 2) is 'uncertain: send to a person'. Without a good class the verdict is the "
                   "most likely class, or 'uncertain' when the two most likely are closer than uncertain_band"),
        "views": spec.views,  # the graph averages this many mirrored / turned copies of each photo itself
        "weights_sha256": weights_sha256, "producer": "Graft",
    }
    return {k: json.dumps(v) for k, v in info.items()}


# --- export --------------------------------------------------------------------------------

def export_onnx(run_dir: str | Path, out: str | Path | None = None, images: list | None = None) -> ExportResult:
    """Write the run's model as ONNX (label probabilities out) and check it against Graft.

    Args:
        run_dir: a finished run folder (or its ``model/`` folder).
        out: where to write; default ``RUN_DIR/model.onnx``.
        images: photos (paths, bytes or PIL images) for the parity check; default: the run's test
            photos from ``predictions.csv`` (out-of-fold or validation photos without a test split;
            noise images if they can no longer be found).

    Returns:
        The parity numbers; the file is written even when the check fails, so it can be inspected.
    """
    model_dir = _model_dir(run_dir)
    root = _run_root(run_dir, model_dir)
    out = Path(out) if out else root / ONNX_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    model, spec = load_package(model_dir)
    if spec.anomaly:
        raise GraftError("ONNX export is not available for good-parts-only models: their memory search does not fit "
                         "in an ONNX file.", hint="Use the model package (Download the model) with Graft's Predictor, "
                         "or python -m core predict.")
    decision = read_decision(model_dir)
    sources, kind = _parity_sources(root, images)
    wrapped = ProbabilityModel(model.float().eval(), spec.tasks, spec.classes).eval()
    meta = onnx_metadata(spec, content_hash(model_dir / WEIGHTS_FILE), decision)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".onnx-") as tmp:
        raw = Path(tmp) / ONNX_FILE
        _torch_export(wrapped, spec.image_size, raw)
        result = _parity(raw, wrapped, model_dir, spec, sources, {k: json.loads(v) for k, v in meta.items()})
        result.path, result.images_source = out, result.images_source or kind
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
    """The rows of ``predictions.csv`` of its headline split (test, else out-of-fold, else validation),
    with each photo's path.

    Photos are found through the run's dataset (folder, zip or CSV); rows whose photo is gone are
    left out, and a dataset that can't be opened gives an empty list.
    """
    run_dir = Path(run_dir)
    rows = _read_rows(run_dir / "predictions.csv")
    found = {r.get("split") or "test" for r in rows}
    split = next((s for s in SPLIT_ORDER if s in found), None)
    chosen = [r for r in rows if (r.get("split") or "test") == split] or rows
    config = read_json(run_dir / "config.json", {}) or {}
    try:
        paths = {s.rel: Path(s.path) for s in load_dataset(config["data"]).samples}
    except (GraftError, KeyError, OSError):
        return []
    return [(r, paths[r["image"]]) for r in chosen if r.get("image") in paths and paths[r["image"]].is_file()]


test_images.__test__ = False  # a helper, not a pytest test


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _parity_sources(root: Path, images: list | None) -> tuple[list[Any], str]:
    """Photo files (paths or in-memory files) for the parity check, and where they came from."""
    if images is not None:
        return [_as_file(src) for src in images], "given"
    pairs = test_images(root)
    kind = (pairs[0][0].get("split") or "test") if pairs else "test"
    return [path for _, path in pairs[:MAX_PARITY_PHOTOS]], kind


def _as_file(src: Any) -> Any:
    """A path stays a path; bytes and PIL images become in-memory files the snippet can open."""
    if isinstance(src, (bytes, bytearray)):
        return io.BytesIO(bytes(src))
    if isinstance(src, PIL.Image.Image):
        buf = io.BytesIO()
        src.save(buf, format="PNG")
        buf.seek(0)
        return buf
    return src


def _readable(sources: list[Any], spec: ModelSpec) -> tuple[list[Any], np.ndarray, bool]:
    """The sources Graft can read, with Graft's pixels for them; noise images when none is readable."""
    kept, pixels = [], []
    for src in sources:
        try:
            pixels.append(model_pixels(src, spec.preprocessing))
        except UnreadableImage:
            continue  # the check is about numbers, not about one damaged file
        kept.append(src)
    if pixels:
        return kept, np.stack(pixels), False
    rng = np.random.default_rng(0)  # deterministic noise still exercises every operator
    noise = rng.integers(0, 256, (_FALLBACK_IMAGES, spec.image_size, spec.image_size, 3), dtype=np.uint8)
    files = [_as_file(PIL.Image.fromarray(a)) for a in noise]
    return files, np.stack([model_pixels(f, spec.preprocessing) for f in files]), True


def _parity(path: Path, model: "ProbabilityModel", model_dir: Path, spec: ModelSpec, sources: list[Any],
            meta: dict[str, Any]) -> ExportResult:
    """Score the photos through the graph, through the snippet's own code, and with the app's predictor."""
    import onnxruntime as ort

    from .predict import Predictor

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    load, decide_snippet = snippet_functions()
    files, pixels, noise = _readable(sources, spec)
    predictor = Predictor.load(model_dir)  # its own copy: the app's path, maybe bf16
    onnx_p, torch_p, snippet_p, app_p = [], [], [], []
    for start in range(0, len(pixels), 32):
        x = model_input(pixels[start:start + 32], spec.preprocessing).contiguous()
        onnx_p.append(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
        with torch.inference_mode():  # fp32: no autocast here on purpose
            torch_p.append(model(x).numpy())
        app_p.append(predictor.probs_from_arrays(pixels[start:start + 32])[0])
    for f in files:
        if hasattr(f, "seek"):
            f.seek(0)
        snippet_p.append(session.run(None, {INPUT_NAME: load(f, meta)})[0])
    o, t, n, a = (np.concatenate(p).astype(np.float64) for p in (onnx_p, torch_p, snippet_p, app_p))
    ours = answers(t, spec.classes, spec.good_class, meta["threshold"], meta["uncertain_band"])
    theirs = [decide_snippet(row, meta)["verdict"] for row in n]
    agree, diff = _agreement(o, t), float(np.abs(o - t).max())
    s_agree, s_diff = _agreement(n, t), float(np.abs(n - t).max())
    return ExportResult(path=path, n_images=len(pixels), top_class_agreement=agree, max_prob_diff=diff,
                        passed=min(agree, s_agree) == 1.0 and max(diff, s_diff) <= PARITY_TOLERANCE,
                        predictor_agreement=_agreement(o, a), predictor_max_prob_diff=float(np.abs(o - a).max()),
                        snippet_agreement=s_agree, snippet_max_prob_diff=s_diff,
                        verdict_agreement=float(np.mean([x == y for x, y in zip(ours, theirs)])),
                        images_source="noise" if noise else "")


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def snippet_functions() -> tuple[Any, Any]:
    """The README snippet's own ``load(path, meta)`` and ``verdict(probs, meta)``, run from its text."""
    namespace: dict[str, Any] = {"__name__": "graft_snippet"}  # not "__main__": its command line stays idle
    exec(compile(SNIPPET, "<graft snippet>", "exec"), namespace)  # our own constant, never user input
    return namespace["load"], namespace["verdict"]


# --- the bundle ----------------------------------------------------------------------------

def bundle_zip(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Zip the model package, ``model.onnx`` and a README with a copy-paste onnxruntime snippet.

    The ONNX file is (re-)exported when it is missing or was made from other weights.

    Raises:
        GraftError: the run has no model, or the ONNX file failed its parity check.
    """
    model_dir, onnx_path, meta, parity = _checked_onnx(run_dir)
    out = Path(out) if out else _run_root(run_dir, model_dir) / BUNDLE_FILE
    files = {WEIGHTS_FILE: model_dir / WEIGHTS_FILE, SPEC_FILE: model_dir / SPEC_FILE, ONNX_FILE: onnx_path}
    for name in ("decision.json", "training_photos.json"):
        if (model_dir / name).is_file():
            files[name] = model_dir / name
    _write_zip(out, files, readme(meta, parity))
    return out


def onnx_zip(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Zip what deployment needs and nothing more: ``model.onnx`` (decision in its metadata) and the README
    with the snippet. The Graft model package is a separate download (:func:`core.package.model_package_zip`).

    Raises:
        GraftError: the run has no model, or the ONNX file failed its parity check.
    """
    model_dir, onnx_path, meta, parity = _checked_onnx(run_dir)
    out = Path(out) if out else _run_root(run_dir, model_dir) / ONNX_BUNDLE_FILE
    _write_zip(out, {ONNX_FILE: onnx_path}, readme(meta, parity, with_package=False))
    return out


def _checked_onnx(run_dir: str | Path) -> tuple[Path, Path, dict[str, Any], dict[str, Any]]:
    """(model folder, ONNX file, its metadata, parity numbers), exporting again when stale."""
    model_dir = _model_dir(run_dir)
    onnx_path = _run_root(run_dir, model_dir) / ONNX_FILE
    meta = _fresh_metadata(onnx_path, model_dir)
    if meta is None:
        export_onnx(run_dir, onnx_path)
        meta = read_onnx_metadata(onnx_path)
    parity = meta.get("parity_check") or {}
    if not parity.get("passed"):
        raise GraftError("The ONNX model did not score the test photos like the original, so it was not bundled.",
                         hint="To see the numbers, export it on the command line: python -m core export RUN_DIR --format onnx")
    return model_dir, onnx_path, meta, parity


def _fresh_metadata(onnx_path: Path, model_dir: Path) -> dict[str, Any] | None:
    """The ONNX file's metadata if it was exported from the current weights and decision, else None."""
    if not onnx_path.is_file():
        return None
    try:
        meta = read_onnx_metadata(onnx_path)
        decision = read_decision(model_dir)
    except Exception:  # a damaged or foreign file is simply exported again
        return None
    same = (meta.get("weights_sha256") == content_hash(model_dir / WEIGHTS_FILE)
            and meta.get("threshold") == decision.threshold and meta.get("uncertain_band") == decision.uncertain_band)
    return meta if same else None


def _write_zip(out: Path, files: dict[str, Path], readme_text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in files.items():
            zf.write(path, arcname=name)
        zf.writestr(README_FILE, readme_text)
    os.replace(tmp, out)


# The README's snippet: plain numpy + Pillow + onnxruntime, decoding photos exactly like core.preprocess.
# The parity check runs this very text (snippet_functions), so it can't drift from Graft unnoticed.
SNIPPET = """\
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


def stretch(values):
    \"\"\"Min-max stretch to 0..255: Graft's rule for 32-bit photos beyond 0..65535, float photos beyond 0..1.\"\"\"
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def to_rgb(image, scale_max):
    \"\"\"8-bit RGB as Graft makes it: 16-bit on the model's scale, transparency on white.\"\"\"
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            return Image.fromarray(stretch(values.astype(np.float64))).convert("RGB")
        values = np.minimum(values.astype(np.int64), scale_max).clip(0)
        return Image.fromarray(((values * 510 + scale_max) // (2 * scale_max)).astype(np.uint8)).convert("RGB")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            return Image.fromarray(np.round(values * 255.0).astype(np.uint8)).convert("RGB")
        return Image.fromarray(stretch(values)).convert("RGB")
    if mode in ALPHA_MODES or "transparency" in image.info:
        rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def load(path, meta):
    \"\"\"The model's input for one photo, exactly as Graft makes it (see meta["input"]): NCHW float32.\"\"\"
    size = meta["image_size"]
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEGs decode at a reduced scale first, as in Graft
        image.load()
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:
            image = image.copy()  # broken EXIF: the pixels as stored
    image = to_rgb(image, 2 ** (meta["bit_depth"] or 16) - 1)
    if meta["resize"] == "pad":
        width, height = image.size
        new = (max(1, round(width * size / max(width, height))), max(1, round(height * size / max(width, height))))
        canvas = Image.new("RGB", (size, size), tuple(meta["pad_colour"]))
        canvas.paste(image.resize(new, Image.Resampling.BILINEAR, reducing_gap=3.0),
                     ((size - new[0]) // 2, (size - new[1]) // 2))
        image = canvas
    else:
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    mean, std = np.array(meta["mean"], np.float32), np.array(meta["std"], np.float32)
    x = (np.asarray(image, dtype=np.float32) / 255 - mean) / std
    return x.transpose(2, 0, 1)[None]  # HWC -> NCHW


def verdict(probs, meta):
    \"\"\"Graft's decision: good / defect / uncertain (send to a person), or the class without a good class.\"\"\"
    classes, good, band = meta["classes"], meta["good_class"], meta["uncertain_band"]
    if good is None or len(classes) < 2:
        top = sorted(probs)
        unsure = band > 0 and len(top) > 1 and top[-1] - top[-2] < band
        return {"verdict": "uncertain" if unsure else classes[int(probs.argmax())]}
    score, threshold = 1 - float(probs[classes.index(good)]), meta["threshold"]
    kind = max((c for c in classes if c != good), key=lambda c: probs[classes.index(c)])
    unsure = band > 0 and threshold - band / 2 <= score < threshold + band / 2
    answer = "uncertain" if unsure else "defect" if score >= threshold else "good"
    return {"verdict": answer, "class": kind if score >= threshold else good, "defect_score": score}


if __name__ == "__main__":
    session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    classes = meta["classes"]
    for path in sys.argv[1:]:
        probs = session.run(None, {session.get_inputs()[0].name: load(path, meta)})[0][0]
        print(json.dumps({"photo": path, **verdict(probs, meta),
                          "probabilities": {c: float(p) for c, p in zip(classes, probs)}}))
"""


def readme(meta: dict[str, Any], parity: dict[str, Any], with_package: bool = True) -> str:
    """The bundle's README: what is inside, how to predict outside Graft, and the parity numbers.

    ``with_package`` False: the deployment zip, which holds the ONNX file only (no Graft package row).
    """
    good, band = meta.get("good_class"), float(meta.get("uncertain_band") or 0.0)
    threshold = float(meta.get("threshold", 0.5))
    if good:
        decision = (f"A part is flagged as defective when its defect score 1 − P({good}) ≥ {threshold:.4f}; it then "
                    "gets its most likely defect class.")
        if band:
            decision += (f" A score from {max(0.0, threshold - band / 2):.4f} up to (not including) "
                         f"{min(1.0, threshold + band / 2):.4f} is *uncertain: send to a person*.")
    else:
        decision = "The verdict is the most likely class" + (
            f", or *uncertain* when the two most likely are less than {band:.2f} apart." if band else ".")
    shape = "padded to a square (shape kept)" if meta.get("resize") == "pad" else "squashed (no crop)"
    package = (f"| `{WEIGHTS_FILE}`, `{SPEC_FILE}`, `decision.json` | the Graft model package "
               "(`python -m core predict FOLDER photo.jpg`) |\n" if with_package else "")
    return f"""# Graft model: {', '.join(meta.get('classes', []))}

| file | what |
|---|---|
| `{ONNX_FILE}` | the model for any ONNX runtime; class names, preprocessing and decision are in its metadata |
{package}
Backbone `{meta.get('backbone')}`, photos {shape} to {meta.get('image_size')}×{meta.get('image_size')} px.
{decision}

## Predict outside Graft

`pip install onnxruntime numpy pillow`, save this as `predict.py` next to `{ONNX_FILE}`, and run
`python predict.py photo1.jpg photo2.png`. It prints one JSON line per photo.

```python
{SNIPPET}```

Input: {meta.get('input', '')}.
Output: {meta.get('output', '')}.

## Parity check

Before this bundle was made, {parity.get('n_images')} {parity.get('images_source', 'test')} photos were scored
both ways. The ONNX graph against Graft (PyTorch, fp32) on the same input: the same top class on
{fmt_pct(parity.get('top_class_agreement', 0), 1)} of them, largest probability difference
{parity.get('max_prob_diff', float('nan')):.1e}. The snippet above, loading the photo files itself, against Graft:
the same top class on {fmt_pct(parity.get('snippet_agreement'), 1)}, largest difference
{parity.get('snippet_max_prob_diff', float('nan')):.1e}, the same verdict on {fmt_pct(parity.get('verdict_agreement'), 1)}
(allowed difference: {PARITY_TOLERANCE:.0e}).
"""
