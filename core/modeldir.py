"""A run's model folder: its file names and finding it. Torch-free, so reading a run's decision or verdict
(the Evaluate, Test and Runs pages) doesn't load PyTorch; :mod:`core.package` builds on it."""

from __future__ import annotations

from pathlib import Path

from .decision import DECISION_FILE
from .errors import GraftError

__all__ = ["resolve_model_dir", "package_files", "package_bytes", "model_package_zip", "SPEC_FILE", "WEIGHTS_FILE",
           "MEMORY_FILE", "TRAINING_PHOTOS_FILE"]

WEIGHTS_FILE, SPEC_FILE = "model.safetensors", "model.json"
MEMORY_FILE = "memory.safetensors"  # a good-parts-only model's memory bank (core.anomaly)
TRAINING_PHOTOS_FILE = "training_photos.json"


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a run folder or its ``model/`` folder.

    Raises:
        GraftError: neither holds a ``model.json``.
    """
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / SPEC_FILE).is_file():
            return candidate
    raise GraftError(f"No finished model in '{path}'.", hint="Pick a run that finished, or its model/ folder.")


def package_files(run_dir: str | Path) -> dict[str, Path]:
    """The files of the run's model package, by their name in the "Graft model" zip.

    Raises:
        GraftError: the run has no finished model.
    """
    model_dir = resolve_model_dir(run_dir)
    names = (WEIGHTS_FILE, SPEC_FILE, DECISION_FILE, TRAINING_PHOTOS_FILE, MEMORY_FILE)
    return {f"model/{n}": model_dir / n for n in names if n in (WEIGHTS_FILE, SPEC_FILE) or (model_dir / n).is_file()}


def package_bytes(run_dir: str | Path) -> int:
    """The package's size in bytes before compression (weights barely compress: close to the download's size)."""
    return sum(path.stat().st_size for path in package_files(run_dir).values())


def model_package_zip(run_dir: str | Path) -> bytes:
    """The run's model package (weights, ``model.json``, ``decision.json``, training photos) as zip bytes.

    Raises:
        GraftError: the run has no finished model.
    """
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in package_files(run_dir).items():
            zf.write(path, arcname=name)
    return buf.getvalue()
