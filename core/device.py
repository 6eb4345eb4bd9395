"""Pick the device and precision once, and use the same rules for training and prediction."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from dataclasses import dataclass
from typing import Iterator

import torch

__all__ = ["Runtime", "select_runtime", "cpu_supports_bf16", "cuda_precision", "physical_cores"]


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

    def grad_scaler(self) -> torch.amp.GradScaler:
        """The loss scaler training needs in fp16 (small gradients underflow without it); a no-op otherwise.

        A disabled scaler passes ``scale(loss)`` through and ``step(optimizer)`` calls the optimizer,
        so the training loop uses it unconditionally.
        """
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def describe(self) -> dict[str, object]:
        """Where and how this run computes, for run_start and status.json (``gpu``: the GPU's name or None)."""
        gpu = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None
        return {"device": self.device.type, "precision": self.precision, "threads": self.threads, "gpu": gpu,
                "host": socket.gethostname()}


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


def cuda_precision(capability: tuple[int, int]) -> str:
    """Autocast precision for a CUDA GPU of this compute capability.

    bf16 only where the tensor cores do it natively (compute capability 8.0 and newer: Ampere,
    Ada, Hopper ...); older GPUs get fp16 with a gradient scaler (:meth:`Runtime.grad_scaler`).
    ``torch.cuda.is_bf16_supported()`` is not the test: it also counts bf16 emulated in fp32.
    """
    return "bf16" if tuple(capability) >= (8, 0) else "fp16"


def physical_cores() -> int:
    """Physical cores (hyper-threads slow down small CPU matmuls)."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except Exception:  # psutil missing or unsupported platform
        cores = None
    return max(1, cores or os.cpu_count() or 1)


def select_runtime(prefer: str = "auto", precision: str = "auto") -> Runtime:
    """Choose CUDA, then MPS, then CPU; bf16 autocast where the hardware does it natively, fp16 on older GPUs.

    Args:
        prefer: "auto", "cpu", "cuda" or "mps".
        precision: "auto", "bf16", "fp16" or "fp32".
    """
    prefer = os.environ.get("GRAFT_DEVICE", prefer)
    precision = os.environ.get("GRAFT_PRECISION", precision)
    if prefer in ("auto", "cuda") and torch.cuda.is_available():
        device = torch.device("cuda")
        auto = cuda_precision(torch.cuda.get_device_capability(device))
    elif prefer in ("auto", "mps") and torch.backends.mps.is_available():
        device, auto = torch.device("mps"), "fp32"
    else:
        device = torch.device("cpu")
        auto = "bf16" if cpu_supports_bf16() else "fp32"
    threads = max(1, physical_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))  # torchrun: cores shared
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
