"""Load weight files without ever unpickling arbitrary objects."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import GraftError

__all__ = ["load_state_dict_file", "MAX_SAFETENSORS_HEADER"]

MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors spec's own limit
_PREFIXES = ("module.", "model.", "backbone.", "encoder.")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors``, ``.pth``/``.pt`` or ``.bin`` file as a flat dict of tensors.

    Pickle-based files go through ``torch.load(weights_only=True)``: passed explicitly,
    so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot turn it off, and never retried unsafely.
    """
    path = Path(path)
    if not path.is_file():
        raise GraftError(f"The weights file '{path.name}' does not exist.")
    if path.suffix == ".safetensors":
        state = _load_safetensors(path)
    elif path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        state = _load_pickle_weights_only(path)
    else:
        raise GraftError(f"'{path.name}' is not a weights file.", hint="Use a .safetensors, .pth or .bin file.")
    return _strip_prefixes(_flatten(state))


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    _check_safetensors_header(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise GraftError(f"'{path.name}' is not a valid safetensors file ({exc}).") from None


def _check_safetensors_header(path: Path) -> None:
    """Refuse absurd headers before the library allocates anything."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise GraftError(f"'{path.name}' is not a valid safetensors file (it is too short).")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_SAFETENSORS_HEADER or n + 8 > size:
            raise GraftError(f"'{path.name}' is not a valid safetensors file (its header is damaged).")
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            raise GraftError(f"'{path.name}' is not a valid safetensors file (its header is damaged).") from None
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry.get("data_offsets", (0, -1))
        if not (0 <= start <= end <= size - 8 - n):
            raise GraftError(f"'{path.name}' is not a valid safetensors file (bad offsets for '{name}').")


def _load_pickle_weights_only(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError...: all mean "not safe/valid"
        raise GraftError(
            f"'{path.name}' can't be loaded safely: it is not a plain weights file ({type(exc).__name__}).",
            hint="Graft never runs code from model files. Save the weights as .safetensors and try again.",
        ) from None


def _flatten(obj: object) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or the common {'state_dict': ...} / {'model': ...} wrappers."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "module"):
            inner = obj.get(key)
            if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise GraftError("The weights file holds no tensors that Graft can use.")


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state
