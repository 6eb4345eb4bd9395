"""Pick the device and precision once, and use the same rules for training and prediction."""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import Iterator

import torch

__all__ = ["Runtime", "select_runtime", "cpu_supports_bf16", "physical_cores"]


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors are computed."""

    device: torch.device
    precision: str  # "bf16", "fp16" or "fp32"
    threads: int

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision where it is fast and safe; a no-op in fp32."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def describe(self) -> dict[str, object]:
        return {"device": self.device.type, "precision": self.precision, "threads": self.threads}


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matrix units (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
        if "amx_bf16" in flags or "avx512_bf16" in flags:
            return True
    except OSError:
        pass
    # Not Linux: ask oneDNN through torch, which checks the same ISA features.
    mkldnn = getattr(torch.backends, "mkldnn", None)
    checker = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    return bool(mkldnn and mkldnn.is_available() and checker and checker())


def physical_cores() -> int:
    """Physical cores (hyper-threads slow down small CPU matmuls)."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except Exception:  # psutil missing or unsupported platform
        cores = None
    return max(1, cores or os.cpu_count() or 1)


def select_runtime(prefer: str = "auto", precision: str = "auto") -> Runtime:
    """Choose CUDA, then MPS, then CPU; bf16 autocast where the hardware does it natively.

    Args:
        prefer: "auto", "cpu", "cuda" or "mps".
        precision: "auto", "bf16", "fp16" or "fp32".
    """
    prefer = os.environ.get("GRAFT_DEVICE", prefer)
    precision = os.environ.get("GRAFT_PRECISION", precision)
    if prefer in ("auto", "cuda") and torch.cuda.is_available():
        device = torch.device("cuda")
        auto = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    elif prefer in ("auto", "mps") and torch.backends.mps.is_available():
        device, auto = torch.device("mps"), "fp32"
    else:
        device = torch.device("cpu")
        auto = "bf16" if cpu_supports_bf16() else "fp32"
    threads = physical_cores()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    return Runtime(device=device, precision=auto if precision == "auto" else precision, threads=threads)


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Temporarily switch a module to eval mode and restore its previous modes."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, was_training in modes.items():
            m.train(was_training)
