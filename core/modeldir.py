"""A run's model folder: its file names and finding it. Torch-free, so reading a run's decision or verdict
(the Evaluate, Test and Runs pages) doesn't load PyTorch; :mod:`core.package` builds on it."""

from __future__ import annotations

from pathlib import Path

from .errors import GraftError

__all__ = ["resolve_model_dir", "SPEC_FILE", "WEIGHTS_FILE"]

WEIGHTS_FILE, SPEC_FILE = "model.safetensors", "model.json"


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
