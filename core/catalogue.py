"""The curated backbones as plain data: names, friendly labels and numbers a user can compare.

Kept free of torch and timm, so the Model page can draw its cards at once; ``core.backbones``
builds the networks and re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackboneInfo", "CURATED", "DEFAULT_BACKBONE", "list_backbones", "curated", "label_of",
           "native_size_of"]


@dataclass(frozen=True)
class BackboneInfo:
    """A backbone we recommend, with numbers a user can compare."""

    name: str
    label: str
    blurb: str
    params_m: float
    top1: float | None  # ImageNet-1k top-1 from the timm model card
    train_ips: float | None = None  # images/s on the reference 2-core CPU (docs/benchmarks.md)
    infer_ips: float | None = None
    native: int = 224  # the image size its pretrained weights were trained at (timm's pretrained config)


# Chosen for CPU users: small, fast, and strong when transferred. Speeds (images/s, 224 px, bf16,
# batch 32) were measured on the reference 2-core CPU by `python -m bench` (docs/benchmarks.md).
CURATED: tuple[BackboneInfo, ...] = (
    BackboneInfo("resnet18.a1_in1k", "ResNet-18", "Reliable all-rounder; the safe default.", 11.2, 71.5, 31.7, 78.0),
    BackboneInfo("mobilenetv3_large_100.ra_in1k", "MobileNet-V3", "Fastest to predict; built for phones and laptops.",
                 4.2, 75.8, 17.2, 264.5),
    BackboneInfo("efficientnet_b0.ra_in1k", "EfficientNet-B0", "More accurate, a little slower to train.", 4.0, 77.7,
                 20.2, 145.7),
    BackboneInfo("convnext_atto.d2_in1k", "ConvNeXt-Atto", "Modern design in a tiny size; quickest to train.", 3.4, 77.0,
                 44.0, 178.0),
    BackboneInfo("vit_tiny_patch16_224.augreg_in21k_ft_in1k", "ViT-Tiny", "Vision transformer; looks at the whole image.",
                 5.5, 75.5, 28.3, 93.7),
    BackboneInfo("resnet50.a1_in1k", "ResNet-50", "Most accurate here; slowest on a laptop.", 23.5, 81.2, 12.0, 43.3),
)
DEFAULT_BACKBONE = CURATED[0].name


def list_backbones() -> list[BackboneInfo]:
    """The curated backbones, default first."""
    return list(CURATED)


def curated(name: str) -> BackboneInfo | None:
    """The curated entry for ``name`` (a timm name), else None."""
    return next((b for b in CURATED if b.name == name), None)


def label_of(name: str) -> str:
    """The friendly name of a curated backbone (``ResNet-18``), else the timm name itself."""
    info = curated(name)
    return info.label if info else name


def native_size_of(name: str) -> int | None:
    """A curated backbone's native image size without asking timm; None for any other name."""
    info = curated(name)
    return info.native if info else None
