"""Precision on a GPU: bf16 only where the GPU does it natively (Ampere and newer), else fp16 with a scaler."""

from __future__ import annotations

import pytest
import torch

from core.device import Runtime, cuda_precision, select_runtime


@pytest.mark.parametrize("capability, expected", [((6, 1), "fp16"), ((7, 0), "fp16"), ((7, 5), "fp16"),
                                                  ((8, 0), "bf16"), ((8, 6), "bf16"), ((9, 0), "bf16")])
def test_bf16_only_from_compute_capability_8(capability: tuple[int, int], expected: str) -> None:
    assert cuda_precision(capability) == expected


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((8, 6), "bf16")])
def test_select_runtime_asks_the_capability_not_is_bf16_supported(capability: tuple[int, int], expected: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFT_DEVICE", raising=False)
    monkeypatch.delenv("GRAFT_PRECISION", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what emulation reports on a T4
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Test GPU")
    runtime = select_runtime()
    assert runtime.device.type == "cuda" and runtime.precision == expected
    assert runtime.describe()["gpu"] == "Test GPU"


def test_grad_scaler_scales_in_fp16_only() -> None:
    assert Runtime(torch.device("cpu"), "fp16", 1).grad_scaler().is_enabled()
    for precision in ("bf16", "fp32"):
        scaler = Runtime(torch.device("cpu"), precision, 1).grad_scaler()
        assert not scaler.is_enabled()
        loss = torch.tensor(2.0, requires_grad=True)
        assert scaler.scale(loss) is loss  # a disabled scaler is a pass-through: the loop can always use it
