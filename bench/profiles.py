"""How big each section runs: ``full`` (the published numbers), ``quick`` (~2 min) and ``tiny`` (tests).

The full profile is sized to finish in under 15 minutes on a quiet 2-core CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SpeedCfg", "OverheadCfg", "FeaturesCfg", "PredictCfg", "TransferCfg", "MemoryCfg", "RealCfg", "DdpCfg",
           "AnomalyCfg", "EtaCfg", "FirstPaintCfg", "Profile", "PROFILES"]

STRATEGIES: tuple[str, ...] = ("feature-extraction", "fine-tune", "progressive", "multi-task", "scratch")


@dataclass(frozen=True)
class SpeedCfg:
    """1. Raw train/infer speed per backbone (random tensors, no Graft code in the loop)."""

    backbones: tuple[str, ...] = ()  # empty: every backbone of core.backbones.CURATED
    first: int | None = None  # only the first N of them
    size: int = 224
    batch: int = 32
    warmup: int = 1
    iters: int = 3
    budget_s: float = 8.0  # per measurement; slow backbones stop after 2 timed steps


@dataclass(frozen=True)
class OverheadCfg:
    """2. Graft's fine-tune loop against the raw model step."""

    backbone: str = "resnet18"
    size: int = 224
    batch: int = 32
    train_batches: int = 4  # full batches per Graft epoch (the CSV split fixes them exactly)
    repeats: int = 3  # timed Graft epochs, and timed raw windows of train_batches steps; the best counts


@dataclass(frozen=True)
class FeaturesCfg:
    """3. Cached embeddings + head against a naive loop that recomputes features every epoch."""

    backbone: str = "resnet18"
    size: int = 224
    images: int = 200
    naive_epochs: int = 10
    naive_epochs_run: int = 10  # fewer are run in quick mode and scaled up (said so in the report)
    batch: int = 32
    head_epochs: int | None = None  # None: Graft's default for feature extraction


@dataclass(frozen=True)
class PredictCfg:
    """4. Single-photo latency and batch throughput of a packaged model."""

    backbone: str = "resnet18"
    size: int = 224
    photo: tuple[int, int] = (640, 480)  # width, height of the PIL photo handed to predict_one
    warmup: int = 5
    n: int = 100
    batch_images: int = 128
    batch: int = 32


@dataclass(frozen=True)
class TransferCfg:
    """5. Pretrain on some surfaces, transfer to another with few photos, against scratch."""

    backbone: str = "resnet10t"
    size: int = 112
    pretrain_surfaces: tuple[str, ...] = ("brushed_metal", "cast_metal", "textile")
    pretrain_classes: tuple[str, ...] = ("ok", "scratch", "dent", "crack", "stain")
    pretrain_per_class: int = 300
    pretrain_epochs: int = 12
    target_surface: str = "wood"
    target_classes: tuple[str, ...] = ("ok", "scratch", "dent", "stain")
    shots: tuple[int, ...] = (10, 30, 100)
    epochs: int = 10  # every strategy that trains the trunk (scratch included) gets the same epochs
    head_epochs: int | None = None  # feature extraction; None: Graft's default
    pretrained: str | None = None  # an earlier pretraining run folder to reuse instead of pretraining here
    test_per_class: int = 50
    strategies: tuple[str, ...] = STRATEGIES


@dataclass(frozen=True)
class MemoryCfg:
    """6. Decode cache at scale: time and memory, with a low RAM limit so it spills to a memmap."""

    counts: tuple[int, ...] = (1000, 10000)
    size: int = 224
    source_size: int = 256
    ram_limit_mb: int = 64
    feeder_images: int = 2048  # one pass of training batches over this many photos


@dataclass(frozen=True)
class RealCfg:
    """7. Transfer on real photos (NEU, MVTec bottle) with the shared ImageNet weights, against baselines.

    Every method runs at ``goal_shots`` with every seed (the slow from-scratch fits with the first
    ``slow_seeds``); the other sizes run the cheap and the curve methods with their first seeds. The
    budget is about an hour on an idle 2-core CPU.
    """

    backbone: str = "mobilenetv2_100"
    weights: str = "weights/mobilenetv2_100_imagenet.safetensors"  # under the shared folder
    shots: tuple[int, ...] = (5, 10, 20, 50)
    goal_shots: int = 20
    seeds: tuple[int, ...] = (0, 1, 2)
    test_per_class: int = 100
    image_size: int | None = None  # None: what Graft's default would choose for the photos
    methods: tuple[str, ...] = ("probe", "plain", "plain-scratch", "feature-extraction", "fine-tune", "progressive",
                                "multi-task", "scratch")
    slow_methods: tuple[str, ...] = ("scratch", "plain-scratch", "multi-task")  # the longest fits, or the least used
    slow_seeds: int = 1  # ... so they run with the first seed only
    random_methods: tuple[str, ...] = ("feature-extraction", "fine-tune", "progressive", "multi-task")
    random_seeds: int = 1
    cheap_methods: tuple[str, ...] = ("probe", "feature-extraction")
    cheap_seeds: int = 1
    curve_methods: tuple[str, ...] = ("fine-tune",)
    curve_seeds: int = 1
    curve_max_shots: int = 20  # above this, only the curve_large methods run (50/class fits are long)
    curve_large: tuple[str, ...] = ()
    bottle_methods: tuple[str, ...] = ("probe", "plain", "feature-extraction", "fine-tune", "multi-task")
    bottle_seeds: tuple[int, ...] = (0,)
    epochs: int | None = None  # Graft's strategy defaults
    plain_epochs: int = 15
    workers: int = 2  # fits side by side, one torch thread each (sturdier than 2 threads on a shared CPU)
    budget_s: float | None = None  # stop starting fits after this long (fits then run one at a time); env GRAFT_BENCH_BUDGET_S


@dataclass(frozen=True)
class DdpCfg:
    """One run on 1 vs 2 DDP processes (issue 13): the CPU here, 2 GPUs when present."""

    backbone: str = "resnet18"
    size: int = 128
    per_class: int = 40
    batch: int = 32
    epochs: int = 4
    strategy: str = "scratch"
    repeats: int = 2


@dataclass(frozen=True)
class AnomalyCfg:
    """8. Good parts only (anomaly detection) on MVTec bottle with the shared ImageNet weights."""

    backbone: str = "mobilenetv2_100"
    weights: str = "weights/mobilenetv2_100_imagenet.safetensors"  # under the shared folder
    size: int = 224
    train_photos: int = 200
    batch: int = 32
    predict_n: int = 20
    test_per_type: int | None = None  # None: every MVTec test photo; N: the first N of each type (smoke tests)


@dataclass(frozen=True)
class EtaCfg:
    """9. The whole run's time left and start-up (issue 12): real runs launched as the Start button does.

    Each run is (strategy, photos per class, epochs, image size, folds), about 1-3 minutes on 2 cores.
    """

    backbone: str = "mobilenetv2_100"
    weights: str = "weights/mobilenetv2_100_imagenet.safetensors"  # under the shared folder
    runs: tuple[tuple[str, int, int, int, int], ...] = (("fine-tune", 30, 8, 128, 1),
                                                        ("feature-extraction", 40, 1, 224, 1),
                                                        ("progressive", 30, 9, 128, 1),
                                                        ("fine-tune", 15, 3, 96, 3))
    repeats: int = 3  # each run this many times: one 30-60 s run on a shared 2-core CPU is mostly its noise
    cold: tuple[int, ...] = (0,)  # runs repeated without the warm training process, for comparison
    batch: int = 32
    fallback_backbone: str = "resnet10t"  # without ../shared: random weights on generated photos
    generated: bool = False  # generated photos even when ../shared is there
    generated_size: int = 96
    timeout_s: float = 900.0


@dataclass(frozen=True)
class FirstPaintCfg:
    """10. The app's first paint on a fresh server (issue 12): a direct link per page in headless Chromium."""

    pages: tuple[str, ...] = ("model", "evaluate", "test", "runs")  # empty: skipped
    query: str = "?dataset=sample&run=r1"
    repeats: int = 3  # fresh servers per page for the timings (their median): one first load is mostly its noise
    returning: tuple[str, ...] = ("evaluate",)  # these pages and the bare app again, from a browser that has the scripts
    width: int = 1440
    shot_every_ms: int = 200
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Profile:
    name: str
    speed: SpeedCfg = field(default_factory=SpeedCfg)
    overhead: OverheadCfg = field(default_factory=OverheadCfg)
    features: FeaturesCfg = field(default_factory=FeaturesCfg)
    predict: PredictCfg = field(default_factory=PredictCfg)
    transfer: TransferCfg = field(default_factory=TransferCfg)
    memory: MemoryCfg = field(default_factory=MemoryCfg)
    real: RealCfg = field(default_factory=RealCfg)
    ddp: DdpCfg = field(default_factory=DdpCfg)
    anomaly: AnomalyCfg = field(default_factory=AnomalyCfg)
    eta: EtaCfg = field(default_factory=EtaCfg)
    firstpaint: FirstPaintCfg = field(default_factory=FirstPaintCfg)


FULL = Profile("full")

QUICK = Profile(
    "quick",
    speed=SpeedCfg(first=2, warmup=1, iters=2, budget_s=3.0),
    overhead=OverheadCfg(train_batches=2, repeats=2),
    features=FeaturesCfg(images=96, naive_epochs_run=2),
    predict=PredictCfg(warmup=3, n=30, batch_images=64),
    transfer=TransferCfg(size=64, pretrain_per_class=40, pretrain_epochs=3, shots=(10, 30), epochs=3,
                         test_per_class=15),
    memory=MemoryCfg(counts=(200, 1000), feeder_images=512),
    real=RealCfg(shots=(5, 20), seeds=(0,), test_per_class=30, image_size=128, random_methods=("fine-tune",),
                 cheap_methods=("probe", "feature-extraction"), curve_methods=(),
                 bottle_methods=("probe", "feature-extraction", "fine-tune"), epochs=6, plain_epochs=6, workers=2),
    ddp=DdpCfg(per_class=24, epochs=3, repeats=1),
    eta=EtaCfg(runs=(("fine-tune", 20, 6, 96, 1), ("feature-extraction", 20, 1, 160, 1)), repeats=1),
)

TINY = Profile(  # the smoke test: every code path, a few seconds, numbers meaningless
    "tiny",
    speed=SpeedCfg(backbones=("test_resnet",), size=32, batch=4, warmup=1, iters=1),
    overhead=OverheadCfg(backbone="test_resnet", size=32, batch=4, train_batches=1, repeats=1),
    features=FeaturesCfg(backbone="test_resnet", size=32, images=8, naive_epochs=2, naive_epochs_run=1, batch=4,
                         head_epochs=2),
    predict=PredictCfg(backbone="test_resnet", size=32, photo=(64, 48), warmup=1, n=3, batch_images=4, batch=4),
    transfer=TransferCfg(backbone="test_resnet", size=32, pretrain_per_class=4, pretrain_epochs=1, shots=(3,),
                         epochs=1, head_epochs=1, test_per_class=2, strategies=("feature-extraction", "scratch")),
    memory=MemoryCfg(counts=(8,), size=32, source_size=48, ram_limit_mb=0, feeder_images=8),
    real=RealCfg(shots=(2,), goal_shots=2, seeds=(0,), test_per_class=2, image_size=32,
                 methods=("probe", "plain", "feature-extraction", "fine-tune"), random_methods=(),
                 bottle_methods=("probe", "fine-tune"), epochs=1, plain_epochs=1, workers=1),
    ddp=DdpCfg(backbone="test_resnet", size=32, per_class=6, batch=4, epochs=2, repeats=0),  # 0: skipped (torchrun start-up)
    anomaly=AnomalyCfg(size=64, train_photos=20, batch=4, predict_n=2, test_per_type=3),
    eta=EtaCfg(runs=(("fine-tune", 4, 2, 32, 1),), repeats=1, batch=4, fallback_backbone="test_resnet", generated=True,
               generated_size=48, timeout_s=300.0),
    firstpaint=FirstPaintCfg(pages=()),  # a browser and fresh servers: not for the smoke test
)

PROFILES: dict[str, Profile] = {p.name: p for p in (FULL, QUICK, TINY)}
