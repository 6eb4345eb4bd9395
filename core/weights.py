"""Load weight files without ever unpickling arbitrary objects, and judge whether they fit a trunk."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .errors import GraftError

__all__ = ["load_state_dict_file", "MAX_SAFETENSORS_HEADER", "WeightsFit", "fit_weights", "timm_filtered"]

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


# --- does a state dict fit a trunk? ------------------------------------------------------------------

@dataclass
class WeightsFit:
    """How a weights file fits a trunk (a timm model built with ``num_classes=0``).

    ``state`` holds the tensors to load (converted to the trunk's names); the lists name what is wrong.
    """

    source: str
    format: str
    needed: int
    matched: int
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored_head: int = 0
    state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.unexpected)

    def summary(self) -> str:
        """One line: fits or not, and how well."""
        fmt = f"format: {self.format}"
        if self.ok:
            head = f", {self.ignored_head} classifier tensor(s) ignored" if self.ignored_head else ""
            return f"fits: all {self.needed} trunk tensors found ({fmt}{head})."
        return f"does not fit: {'; '.join(self._problems())} ({fmt})."

    def _problems(self) -> list[str]:
        out = []
        if self.missing:
            out.append(f"{len(self.missing)} of {self.needed} trunk tensors are missing ({_some(self.missing)})")
        if self.mismatched:
            out.append(f"{len(self.mismatched)} have another shape ({_some(self.mismatched)})")
        if self.unexpected:
            out.append(f"{len(self.unexpected)} tensors belong to no layer of this backbone "
                       f"({_some(self.unexpected)})")
        return out

    def refusal(self, backbone: str) -> GraftError:
        return GraftError(f"The weights in {self.source} don't fit this backbone ({backbone}): {'; '.join(self._problems())} "
                          f"(format: {self.format}).",
                          hint="Pick the backbone the weights were trained for, or start from ImageNet or scratch.")


def _some(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def timm_filtered(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's own timm checkpoint conversion (original-repo keys, ViT position embeddings resized)."""
    module = __import__(type(model).__module__, fromlist=["checkpoint_filter_fn"])
    fn = getattr(module, "checkpoint_filter_fn", None)
    if fn is None:
        return state
    try:
        return fn(dict(state), model)
    except Exception:  # a filter for another layout fails on keys it doesn't know: the raw keys are judged then
        return state


def _graft_trunk(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The trunk of a Graft ``model.safetensors`` (``trunk.*`` plus ``heads.*``), else None."""
    if any(k.startswith("trunk.") for k in state) and all(k.startswith(("trunk.", "heads.")) for k in state):
        return {k[len("trunk."):]: v for k, v in state.items() if k.startswith("trunk.")}
    return None


def _format(raw: dict[str, torch.Tensor], converted: bool, graft: bool, own: set[str]) -> str:
    if graft:
        return "Graft model"
    if "layer1.0.conv1.weight" in raw and "fc.weight" in raw:
        return "torchvision-style ResNet"
    if converted:
        return "original repository checkpoint, converted by timm"
    if len(own & set(raw)) >= len(own) / 2:
        return "timm"
    if any(k.startswith("features.") for k in raw):
        return "torchvision (only its ResNets are understood)"
    return "unknown layout"


def _head_names(model: nn.Module) -> tuple[str, ...]:
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{n}." for n in names) + ("fc.", "classifier.", "head.")


def fit_weights(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> WeightsFit:
    """Convert ``state`` with the model's timm filter and judge it against the model's own tensors.

    Classifier tensors may be absent or extra; every other trunk tensor must be there with its shape
    (``num_batches_tracked`` counters excepted), and no tensor may belong to another architecture.
    """
    trunk = _graft_trunk(state)
    raw = trunk if trunk is not None else state
    own = model.state_dict()
    filtered = timm_filtered(model, raw)
    converted = set(filtered) != set(raw) and len(set(own) & set(filtered)) > len(set(own) & set(raw))
    heads = _head_names(model)
    fit = WeightsFit(source, _format(raw, converted, trunk is not None, set(own)),
                     needed=sum(not k.endswith("num_batches_tracked") for k in own), matched=0)
    for k, v in filtered.items():
        if k in own and own[k].shape == v.shape:
            fit.state[k] = v
        elif k in own:
            fit.mismatched.append(f"{k} {_shape(v)} instead of {_shape(own[k])}")
        elif k.startswith(heads):
            fit.ignored_head += 1
        elif not k.endswith("num_batches_tracked"):
            fit.unexpected.append(k)
    fit.missing = [k for k in own if k not in filtered and not k.endswith("num_batches_tracked")]
    fit.matched = sum(not k.endswith("num_batches_tracked") for k in fit.state)
    return fit


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(d) for d in t.shape) or "scalar"
