"""A run's configuration: plain, frozen data that the UI builds and the CLI reads."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GraftError

__all__ = ["Strategy", "RunConfig", "STRATEGY_DEFAULTS", "STRATEGY_CARD_NAMES"]


class Strategy(str, enum.Enum):
    """How much of the pretrained trunk is adapted."""

    FEATURE_EXTRACTION = "feature-extraction"
    FINE_TUNE = "fine-tune"
    PROGRESSIVE = "progressive"
    MULTI_TASK = "multi-task"
    SCRATCH = "scratch"
    ANOMALY = "anomaly"  # "Good parts only (anomaly detection)": a memory of good parts (core.anomaly)

    @classmethod
    def parse(cls, value: str | "Strategy") -> "Strategy":
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise GraftError(f"Unknown strategy '{value}'.", hint=f"Choose one of: {names}.") from None


# Defaults chosen so a user who changes nothing gets a good model on CPU (measured in docs/benchmarks.md,
# "Transfer on real photos"). ``lr`` is the top trunk group's peak rate (core.recipes); feature extraction
# fits a logistic regression instead, so its one "epoch" is the fit and its rate is unused.
STRATEGY_DEFAULTS: dict[Strategy, dict[str, Any]] = {
    Strategy.FEATURE_EXTRACTION: {"epochs": 1, "lr": 1e-3},
    Strategy.FINE_TUNE: {"epochs": 12, "lr": 5e-5},
    Strategy.PROGRESSIVE: {"epochs": 12, "lr": 5e-5},
    Strategy.MULTI_TASK: {"epochs": 12, "lr": 5e-5},
    Strategy.SCRATCH: {"epochs": 30, "lr": 2e-3},
    Strategy.ANOMALY: {"epochs": 1, "lr": 1e-3},  # no training loop: one pass builds the memory (rate unused)
}
STRATEGY_CARD_NAMES: dict[Strategy, str] = {Strategy.ANOMALY: "Good parts only (anomaly detection)"}


VIEW_COUNTS = (1, 4, 8)  # test-time views (core.augment.VIEWS): the photo alone, its 4 mirrorings, all 8 views
DEFAULT_VIEWS = 8  # measured on real photos: docs/benchmarks.md section 7, "Test-time views"


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to reproduce one training run.

    ``epochs`` and ``lr`` of ``None`` mean "the strategy's default". ``folds``, ``resize`` and
    ``image_size`` of ``None`` are decided when the run starts (from the dataset's size, the photos'
    shapes and the backbone: :func:`core.imagesize.choose_image_size`) and the decision is written
    back into the run's ``config.json``.
    """

    data: str
    out: str
    backbone: str = "resnet18"
    start: str = "imagenet"
    strategy: Strategy = Strategy.FINE_TUNE
    good_class: str | None = None
    epochs: int | None = None
    image_size: int | None = None  # None: chosen from the photos and the backbone (core.imagesize)
    batch_size: int = 32
    lr: float | None = None
    seed: int = 0
    patience: int = 5
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    workspace: str | None = None
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    folds: int | None = None  # 1: one train/val/test split; K >= 2: K-fold cross-validation; None: by dataset size
    resize: str | None = None  # "squash" or "pad"; None: chosen from the photos' shapes (the dataset check)
    views: int = DEFAULT_VIEWS  # test-time views: 1 (each photo once), 4 (mirrored) or 8 (mirrored and turned)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", Strategy.parse(self.strategy))
        if self.image_size is not None and not 16 <= self.image_size <= 1024:
            raise GraftError("Image size must be between 16 and 1024 pixels.")
        if self.batch_size < 1:
            raise GraftError("Batch size must be at least 1.")
        if self.epochs is not None and self.epochs < 1:
            raise GraftError("Epochs must be at least 1.")
        if self.lr is not None and not (0 < self.lr < 1):
            raise GraftError("The learning rate must be between 0 and 1 (for example 0.002).")
        if self.folds is not None and not 1 <= int(self.folds) <= 20:
            raise GraftError("Folds must be between 1 (one split) and 20.", hint="5 folds suit 50 to 300 photos.")
        if self.views not in VIEW_COUNTS:
            raise GraftError(f"Views must be one of {', '.join(map(str, VIEW_COUNTS))}.",
                             hint="8 checks each photo mirrored and turned (steadier, 8× slower to predict); 1 once.")
        if self.resize is not None and self.resize not in ("squash", "pad"):
            raise GraftError(f"Unknown resize '{self.resize}'.", hint="Use squash (stretch the whole photo) or pad "
                                                                        "(keep its shape, fill the rest).")

    @property
    def resolved_epochs(self) -> int:
        return self.epochs or STRATEGY_DEFAULTS[self.strategy]["epochs"]

    @property
    def resolved_lr(self) -> float:
        return self.lr or STRATEGY_DEFAULTS[self.strategy]["lr"]

    @property
    def start_kind(self) -> str:
        """``imagenet``, ``scratch``, ``file`` or ``run``."""
        return self.start.split(":", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["strategy"] = self.strategy.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise GraftError(f"The run config has unknown settings: {', '.join(sorted(unknown))}.")
        if "data" not in d or "out" not in d:
            raise GraftError("The run config must name the dataset ('data') and the run folder ('out').")
        return cls(**d)

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    @property
    def out_path(self) -> Path:
        return Path(self.out)
