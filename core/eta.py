"""The whole run's clock: the work left, in units, times what one unit costs on this computer now.

At the start of a run the clock gets the plan (:func:`plan_run`): photos to check and to decode,
photo-views for the feature pass and the probe's extra views (``frozen``: a BatchNorm-folded copy of the
trunk reads those, :mod:`core.batchnorm_fold`), training steps (epochs × batches of
every fit), the head refit's feature pass on the adapted trunk, and the photos to score; for a
cross-validation every fold and the final fit. Each kind of unit has a cost (:class:`Rate`), measured
in this run as it goes (a moving average of step times that skips the warm-up steps and clips stray
slow ones; a progressive run's steps per share of the trunk that trains), else derived from another
measured cost (a training step ≈ ``train_ratio`` × batch × one photo of the first feature pass; the head
refit's feature pass at the pace of the epochs' validation), else a prior:
the training speed measured earlier in the run's workspace, else the backbone's known speed. The
time left is the sum over what remains, smoothed over wall time (:class:`Smoother`) so that one slow
batch doesn't make it jump.

Torch-free: the CLI announces a run with it before loading PyTorch, and the Model page's "expected
training time" uses the same plan and costs (:func:`estimate_seconds`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Rate", "StepRate", "Smoother", "Task", "RunShape", "RunClock", "plan_run", "priors", "estimate_seconds",
           "probe_view_count", "shape_for", "run_priors", "step_weight", "TRAIN_RATIO", "STARTUP_S"]

# One training step costs about TRAIN_RATIO × batch × one photo of the run's first feature pass (eval, bf16),
# measured in real runs on the reference 2-core CPU (bench section 9, mobilenetv2_100 at 96-128 px: 4.3-6.8 over
# 11 runs, median 5.7, counting a short last batch as its share of a step);
# curated backbones use the ratio of their own listed speeds.
TRAIN_RATIO = 5.7
STARTUP_S = 7.0  # python -m core train: importing torch, timm and scikit-learn on the reference CPU
DEFAULT_TRAIN_IPS, DEFAULT_INFER_IPS, SPEED_AT = 14.0, 70.0, 224  # mobilenetv2_100 at 224 px on 2 cores (bf16)
FOLDED_SHARE = 0.6  # the probe's folded pass costs this share of a photo of the trunk's own (MobileNet: 0.55-0.6)
VIEW_SHARE = 0.65  # a photo-view scored by the finished model costs this share of a feature-pass photo (measured 0.64)
PRIORS_S = {"check": 0.004, "decode": 0.003, "probe": 0.0015, "memory": 0.01, "build": 1.5, "save": 1.5,
            "gap": 0.1, "start": STARTUP_S}  # seconds per unit before this run measures them
ALPHA = 0.3  # moving-average weight of a new observation of a preparation phase (about the last 3 reports)
STEP_WINDOW = 16  # training steps in the window that times a step (StepRate)
BOUNDS = (0.5, 2.0)  # the shown time left stays within these multiples of the raw estimate
WARMUP_STEPS = 2  # the first training steps of every fit are slower (allocations, kernel choice): skipped
TRACE_ENV = "GRAFT_ETA_TRACE"  # a file: every estimate of the run, task by task, is appended to it
WHOLE_TASK_KEYS = ("build", "probe", "save", "gap")  # measured from a task's whole duration
WARM_UP_KEYS = ("frozen",)  # a first report that is mostly warm-up (the folded copy's new kernels): not a pace
PROBE_VIEWS, PROBE_VIEW_BUDGET = 7, 2000  # as core.fitting (PROBE_VIEWS, PROBE_VIEW_BUDGET), which passes its own


def step_weight(share: float) -> float:
    """A training step's cost when ``share`` of the trunk (its top layers) trains, relative to the whole trunk:
    the forward pass (1) plus the backward pass (about 2) through the trainable layers only."""
    return (1.0 + 2.0 * min(1.0, max(0.0, share))) / 3.0


def probe_view_count(n_train: int, views: int = PROBE_VIEWS, budget: int = PROBE_VIEW_BUDGET) -> int:
    """How many extra views of each training photo the probe reads (as ``core.fitting.Fitter.probe_data``)."""
    return max(0, min(views, budget // max(1, n_train)))


class Rate:
    """Seconds per unit of one kind of work: a moving average weighted by units (recent work counts most).

    Each observation's seconds and units decay by ``1 - alpha``, so the value is the time per unit of
    about the last ``1 / alpha`` observations: regular stalls (another program taking the
    CPU) count as they really cost, and the last few reports count most.
    """

    def __init__(self, alpha: float = 0.3, trust_first: bool = True) -> None:
        self.alpha, self.value, self.count = alpha, None, 0
        self.trust_first = trust_first  # False: the first report is mostly warm-up, no value until a second
        self._seconds = self._units = 0.0

    def observe(self, seconds: float, units: float) -> bool:
        """Add one observation; True when it was the first, or the second, which replaces the first (the
        estimate changed from a prior, then from a warm-up)."""
        if units <= 0 or seconds < 0:
            return False
        keep = 0.0 if self.count == 1 else 1.0 - self.alpha  # the first report carries warm-up: drop it
        self._seconds, self._units = self._seconds * keep + seconds, self._units * keep + units
        first, self.count = self.count <= 1, self.count + 1
        self.value = self._seconds / self._units if self.trust_first or self.count > 1 else None
        return first


class StepRate(Rate):
    """Seconds per training step: the mean of the last :data:`STEP_WINDOW` steps without the slowest one.

    A window (not a long average) follows a change of speed within a few epochs of a small dataset;
    leaving out its slowest step keeps one stray slow step from moving it, while regular stalls
    (another program taking the CPU every few steps) still count as they really cost.
    """

    def __init__(self) -> None:
        super().__init__()
        self._window: deque[tuple[float, float]] = deque(maxlen=STEP_WINDOW)

    def observe(self, seconds: float, units: float) -> bool:
        if units <= 0 or seconds < 0:
            return False
        self._window.append((seconds, units))
        first, self.count = self.value is None, self.count + 1
        kept = sorted(self._window, key=lambda w: w[0] / w[1])[:-1] if len(self._window) >= 4 else self._window
        self.value = sum(w[0] for w in kept) / sum(w[1] for w in kept)
        return first


class Smoother:
    """The shown time left: counts down with the clock and follows the raw estimate, slowly upwards.

    ``up_s`` and ``down_s`` are the time constants for following an estimate above or below the
    count-down, and it stays within :data:`BOUNDS` of the estimate (never "0 s" while work remains);
    :meth:`reset` jumps to the estimate (after a first measurement replaced a prior).
    """

    def __init__(self, up_s: float = 20.0, down_s: float = 5.0) -> None:
        self.up_s, self.down_s = up_s, down_s
        self.value: float | None = None
        self.at = 0.0

    def reset(self, raw: float, now: float) -> float:
        self.value, self.at = raw, now
        return raw

    def update(self, raw: float, now: float) -> float:
        if self.value is None:
            return self.reset(raw, now)
        dt = max(0.0, now - self.at)
        expected = max(0.0, self.value - dt)
        tau = self.up_s if raw > expected else self.down_s
        value = expected + (1.0 - math.exp(-dt / tau)) * (raw - expected)
        self.value, self.at = min(max(value, BOUNDS[0] * raw), BOUNDS[1] * raw), now
        return self.value


Costs = Callable[..., float]  # (key, step weight) -> seconds per unit


@dataclass
class Task:
    """One step of the plan: ``reps`` repetitions of ``parts`` (units per kind of work), ``done`` of them done."""

    name: str
    parts: dict[str, float]
    reps: float = 1.0
    done: float = 0.0
    weights: tuple[float, ...] = ()  # per repetition: its training steps' cost relative to a whole-trunk step

    def weight(self, rep: int) -> float:
        return self.weights[rep] if self.weights and 0 <= rep < len(self.weights) else 1.0

    def cost(self, costs: Costs, rep: int | None = None) -> float:
        """Seconds of one repetition (``rep``: that one, with its step weight; default the current one)."""
        rep = int(min(self.done, self.reps - 1)) if rep is None else rep
        w = self.weight(rep)
        return sum(units * costs(key, w if key == "train" else 1.0) for key, units in self.parts.items() if units)

    def left(self, costs: Costs) -> float:
        if not self.weights:
            return max(0.0, self.reps - self.done) * self.cost(costs, 0)
        return sum(min(1.0, max(0.0, i + 1 - self.done)) * self.cost(costs, i) for i in range(int(self.reps)))


@dataclass(frozen=True)
class RunShape:
    """What the plan depends on. ``splits`` (train, val, test sizes) and ``fold_sizes`` are exact once known;
    until then they follow from ``photos`` and the fractions."""

    photos: int
    strategy: str = "fine-tune"
    epochs: int = 12
    batch_size: int = 32
    folds: int = 1
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    splits: tuple[int, int, int] | None = None
    fold_sizes: tuple[tuple[int, int, int], ...] | None = None
    fold_new: tuple[int, ...] | None = None  # per fit: its training photos that no earlier fit trained on
    decode_passes: int = 1  # 2 when the photos are decoded again (padded instead of squashed)
    views: int = PROBE_VIEWS
    view_budget: int = PROBE_VIEW_BUDGET
    probe: bool | None = None  # None: as the strategy's recipe (core.recipes)
    reprobe: bool | None = None
    recalibrate: bool | None = None
    shares: tuple[float, ...] = ()  # per epoch: the share of the trunk that trains (progressive: a third, ...)
    test_views: int = 1  # the finished model scores each photo this many ways (core.config.RunConfig.views)

    def flag(self, name: str) -> bool:
        value = getattr(self, name)
        if value is not None:
            return bool(value)
        return {"probe": self.strategy != "scratch", "recalibrate": self.strategy == "scratch",
                "reprobe": self.strategy in ("fine-tune", "progressive", "multi-task")}[name]

    def fits(self) -> list[tuple[str, int, int, int]]:
        """(stage, train, val, test) of every fit: one split, or each fold and then the final model."""
        n = self.photos
        if self.folds < 2:
            if self.splits:
                return [("", *self.splits)]
            val, test = round(n * self.val_fraction), round(n * self.test_fraction)
            return [("", max(1, n - val - test), val, test)]
        sizes = self.fold_sizes or tuple(_fold_size(n, self.folds, self.val_fraction) for _ in range(self.folds))
        return [(f"fold-{k}", *s) for k, s in enumerate(sizes, start=1)] + [("final", n, 0, 0)]


def _fold_size(n: int, folds: int, val_fraction: float) -> tuple[int, int, int]:
    test = round(n / folds)
    val = round((n - test) * val_fraction)
    return n - test - val, val, test


def shape_for(config: Any, photos: int, *, folds: int | None = None, **exact: Any) -> RunShape:
    """The plan's inputs from a :class:`core.config.RunConfig` (torch-free: the app and the training
    process's first event use it too); ``exact`` holds what the data decided (splits, decode passes)."""
    anomaly = config.strategy.value == "anomaly"
    if folds is None:
        from .folds import default_folds

        folds = 1 if anomaly else config.folds if config.folds is not None else default_folds(photos)
    return RunShape(photos=photos, strategy=config.strategy.value, epochs=config.resolved_epochs,
                    batch_size=config.batch_size, folds=folds, val_fraction=config.val_fraction,
                    test_fraction=config.test_fraction, test_views=1 if anomaly else config.views, **exact)


def plan_run(shape: RunShape) -> list[Task]:
    """The whole run as tasks in the order they happen (see the module docstring)."""
    n = shape.photos
    tasks = [Task("check", {"check": n}), Task("build", {"build": 1}), Task("decode", {"decode": n * shape.decode_passes})]
    if shape.strategy == "anomaly":
        _, n_train, n_val, n_test = shape.fits()[0]
        return tasks + [Task("features", {"forward": n}), Task("memory", {"memory": n_train}),
                        Task("finish", {"save": 1})]
    covered = 0  # photos whose extra probe views the start trunk has read (each once per run)
    for k, (stage, n_train, n_val, n_test) in enumerate(shape.fits()):
        known = shape.fold_new is not None and k < len(shape.fold_new)
        new = shape.fold_new[k] if known else max(0, n_train - covered)
        tasks += _fit_tasks(shape, stage, n_train, n_val, n_test, first=k == 0, new=new)
        covered = min(n, covered + n_train)
    return tasks + [Task("finish", {"save": 1, "forward": n if shape.folds >= 2 else 0})]


def _fit_tasks(shape: RunShape, stage: str, n_train: int, n_val: int, n_test: int, first: bool,
               new: int) -> list[Task]:
    """Features, probe, training, head refit and scoring of one fit (``new``: its training photos whose
    extra views no earlier fit read)."""
    pre = f"{stage}:" if stage else ""
    frozen = shape.strategy == "feature-extraction"  # trains heads on cached features: scoring is free too
    views = probe_view_count(n_train, shape.views, shape.view_budget) if shape.flag("probe") else 0
    plain = shape.photos if first and (shape.flag("probe") or frozen) else 0
    out = [Task(pre + "features", {"forward": plain, "frozen": views * new, "build": 1})]  # each fit builds a model
    if shape.flag("probe"):
        out.append(Task(pre + "probe", {"probe": (1 + views) * n_train}))
    if not frozen:
        per_epoch = {"train": n_train / max(1, shape.batch_size), "gap": 1,  # a short last batch costs its share
                     "val": n_val + (n_train if shape.flag("recalibrate") and n_val else 0)}
        weights = tuple(step_weight(f) for f in shape.shares)
        out.append(Task(pre + "fit", per_epoch, reps=max(1, shape.epochs), weights=weights))
        if shape.flag("reprobe"):
            out.append(Task(pre + "reprobe", {"refit": (1 + views) * n_train, "probe": (1 + views) * n_train}))
    scored = (n_test + (n_val if not stage else 0)) * shape.test_views
    if frozen and shape.test_views <= 1:  # scored on the cached features: free
        scored = 0
    return out + [Task(pre + "score", {"view": scored})]


def priors(backbone: str = "", image_size: int = 224, batch_size: int = 32,
           speed: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds per unit before the run measures anything: from this computer's measured training speed
    (``speed`` = ``{images_per_s, image_size}``), else the backbone's speed in the curated list, else the
    reference model's; a forward pass from the list's inference speed or ``train_ratio``."""
    from .catalogue import curated  # torch-free

    info = curated(backbone)
    train_ips = info.train_ips if info and info.train_ips else DEFAULT_TRAIN_IPS
    infer_ips = info.infer_ips if info and info.infer_ips else DEFAULT_INFER_IPS
    ratio = infer_ips / train_ips if info and info.train_ips and info.infer_ips else TRAIN_RATIO
    at = SPEED_AT
    if speed and speed.get("images_per_s"):
        train_ips, at = float(speed["images_per_s"]), int(speed.get("image_size") or SPEED_AT)
        infer_ips = train_ips * ratio
    scale = (image_size / at) ** 2
    here = {"measured_here": 1.0} if speed and speed.get("images_per_s") else {}
    return {**PRIORS_S, "forward": scale / infer_ips, "train": scale * batch_size / train_ips, "ratio": ratio, **here}


def run_priors(config: Any, backbone: str = "", image_size: int | None = None) -> dict[str, float]:
    """:func:`priors` of a run: its backbone's training speed measured earlier in the run's workspace
    (:meth:`core.workspace.Workspace.backbone_speeds`), else the known speeds."""
    from .catalogue import native_size_of

    backbone = backbone or config.backbone
    size = image_size or config.image_size or native_size_of(backbone) or 224
    return priors(backbone, size, config.batch_size, _speed_here(config.workspace, backbone))


def _speed_here(workspace: str | None, backbone: str) -> dict[str, float] | None:
    if not workspace:
        return None
    from .workspace import Workspace  # torch-free

    try:
        return Workspace(workspace).backbone_speed(backbone)
    except Exception:  # an unreadable workspace only costs the estimate its history
        return None


@dataclass
class _Count:
    """Units of one kind of work a task reported: earlier counts, the current count, its total."""

    base: float = 0.0
    last: float = 0.0
    total: float = 0.0
    complete: bool = False  # a later kind of work began: this one is done (or came from the cache)

    def units(self, planned: float) -> float:
        return max(planned, self.base + self.last) if self.complete else self.base + self.last


class RunClock:
    """Time left for the whole run, from its plan and the costs measured so far (see the module docstring).

    Tasks begin in plan order (:meth:`begin`; the ones before are then done, e.g. a feature pass read
    from the cache); progress within a task comes from :meth:`progress`, :meth:`fit_at` and :meth:`step`.
    """

    def __init__(self, shape: RunShape, prior: dict[str, float] | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.now, self.prior = now, dict(prior or priors(batch_size=shape.batch_size))
        self.batch_size = shape.batch_size
        self.rates: dict[str, Rate] = {}
        self.stages: dict[float, StepRate] = {}  # seconds per full batch of the steps of each step weight
        self.smoother = Smoother()
        self.stage = ""  # the cross-validation fit under way: "fold-2", "final" ("" for one split)
        self.tasks: list[Task] = []
        self.current = -1
        self._since = self._mark = self._activity = self.now()  # _activity: the last work reported
        self._counts: dict[str, _Count] = {}  # the current task's units reported, per kind of work
        self._observed = False  # the current task measured its rate from progress
        self._steps = 0  # training steps of the current fit
        self._snap, self._scale = True, 1.0  # _scale: shown / raw time left at the last eta()
        self.replan(shape)

    # --- the plan -------------------------------------------------------------------------------
    def replan(self, shape: RunShape) -> None:
        """A new plan (exact split sizes, folds, a second decode): tasks already begun keep their progress."""
        self.shape = shape
        old = {t.name: t for t in self.tasks}
        name = self.tasks[self.current].name if 0 <= self.current < len(self.tasks) else None
        self.tasks = plan_run(shape)
        for task in self.tasks:
            if task.name in old:
                task.done = min(task.reps, old[task.name].done)
        names = [t.name for t in self.tasks]
        self.current = names.index(name) if name in names else self.current
        for task in self.tasks[:max(0, self.current)]:
            task.done = task.reps
        self._snap = True

    def _index(self, name: str) -> int:
        full = f"{self.stage}:{name}" if self.stage and name not in ("check", "build", "decode", "finish") else name
        for i, task in enumerate(self.tasks):
            if task.name == full:
                return i
        return -1

    def begin(self, name: str, at: float | None = None) -> None:
        """Task ``name`` (of the current stage) starts (``at``: when it did, default now); every task before
        it is done."""
        i = self._index(name)
        if i < 0 or i <= self.current:  # never backwards: a later task may reuse an earlier one's code
            return
        self._close_current()
        for task in self.tasks[:i]:
            task.done = task.reps
        start = self.now() if at is None else at
        self.current, self._since, self._mark, self._activity, self._observed = i, start, start, start, False
        self._counts = {}
        if name == "fit":
            self._steps = 0

    def _close_current(self) -> None:
        """Measure a task that reported no progress (build, probe, save) from its whole duration."""
        if self.current < 0 or self._observed:
            return
        task = self.tasks[self.current]
        keys = [k for k, units in task.parts.items() if units]
        if len(keys) == 1 and keys[0] in WHOLE_TASK_KEYS:
            self.observe(keys[0], self.now() - self._since, task.parts[keys[0]] * max(0.0, task.reps - task.done))
        task.done = task.reps

    def finish(self) -> None:
        """The run ended: nothing is left."""
        self._close_current()
        for task in self.tasks:
            task.done = task.reps
        self.current = len(self.tasks)

    def set_prior(self, prior: dict[str, float]) -> None:
        """New priors (e.g. once the image size is chosen); measured costs still come first."""
        self.prior, self._snap = dict(prior), True

    @classmethod
    def for_fit(cls, epochs: int, batches: int, n_val: int, batch_size: int, prior: dict[str, float] | None = None,
                now: Callable[[], float] = time.monotonic) -> "RunClock":
        """A clock for one fit on its own (a trainer used outside :func:`core.pipeline.train_run`)."""
        clock = cls(RunShape(photos=0, batch_size=batch_size), prior, now)
        clock.tasks = [Task("fit", {"train": batches, "gap": 1, "val": n_val}, reps=max(1, epochs))]
        return clock

    # --- measurements ------------------------------------------------------------------------------
    def observe(self, key: str, seconds: float, units: float) -> None:
        rate = self.rates.setdefault(key, StepRate() if key == "train" else Rate(ALPHA, key not in WARM_UP_KEYS))
        if rate.observe(seconds, units):
            self._snap = True

    def progress(self, name: str, done: float, total: float, key: str = "",
                 relative: bool = False) -> tuple[float, float]:
        """Progress of task ``name``: ``done`` of ``total`` units of one kind of work (``key``, default the
        task's first); returns the task's (units done, units planned) for display, over all its kinds.

        A reporter may restart its count (the probe's views, a second decode pass): the units of
        its earlier counts are kept. A kind of work reported means the kinds planned before it in
        the task are done (e.g. the first feature pass came from the cache). ``relative``: ``done /
        total`` is the share of the task done (its units are not the plan's, e.g. the memory's picks).
        """
        self.begin(name, at=self._activity)  # a task first seen here began when the work before it ended
        if not 0 <= self.current < len(self.tasks):
            return done, total
        task, now = self.tasks[self.current], self.now()
        self._activity = now
        key = key or next(iter(task.parts))
        if relative and total > 0:
            planned = task.parts.get(key, 0.0) * task.reps
            done, total = planned * min(1.0, done / total), planned
        count = self._counts.setdefault(key, _Count())
        if done < count.last or total != count.total:  # a new count: what the last one did stays done
            count.base, count.last = count.base + count.last, 0.0
        count.total = total
        if done > count.last:
            self.observe(key, now - self._mark, done - count.last)
            self._mark, count.last, self._observed = now, done, True
        kinds = list(task.parts)
        for earlier in kinds[:kinds.index(key)] if key in kinds else []:
            self._counts.setdefault(earlier, _Count()).complete = True
        task.done = max(task.done, self._share_done(task))
        counted = [k for k in task.parts if k not in WHOLE_TASK_KEYS]
        units = sum(self._counts[k].units(task.parts[k] * task.reps) for k in counted if k in self._counts)
        return units, max(sum(task.parts[k] for k in counted) * task.reps, units)

    def _share_done(self, task: Task) -> float:
        """Repetitions of ``task`` done: each kind of work's share of its cost times the share of it done."""
        whole = max(task.cost(self.cost), 1e-12)
        done = 0.0
        for key, count in self._counts.items():
            planned = task.parts.get(key, 0.0) * task.reps
            if planned > 0:
                done += task.parts[key] * self.cost(key) / whole * min(1.0, count.units(planned) / planned)
        return min(task.reps, task.reps * min(1.0, done))

    def step(self, seconds: float, photos: int, epoch: int = 0) -> None:
        """One training step of ``epoch`` (0-based) took ``seconds`` for ``photos`` photos; it is recorded for
        its step weight and as a whole-trunk step (see :func:`step_weight`). The first steps of a fit are
        skipped (warm-up)."""
        self._steps, self._activity = self._steps + 1, self.now()
        weight = self._epoch_weight(epoch)
        if self._steps > WARMUP_STEPS:  # a short last batch counts as its share of a step, at its real time
            share = max(1, photos) / self.batch_size
            self.observe("train", seconds / weight, share)
            if self.stages.setdefault(round(weight, 6), StepRate()).observe(seconds, share):
                self._snap = True

    def _epoch_weight(self, epoch: int) -> float:
        shares = self.shape.shares if self.shape else ()
        return step_weight(shares[epoch]) if 0 <= epoch < len(shares) else 1.0

    def fit_at(self, epochs_done: float, batch_share: float | None = None) -> None:
        """The current fit has done ``epochs_done`` epochs (a fraction within the current one)."""
        if 0 <= self.current < len(self.tasks) and self.tasks[self.current].name.endswith("fit"):
            task, self._activity = self.tasks[self.current], self.now()
            whole, part = divmod(epochs_done, 1.0)
            if part and batch_share is None:
                rep = int(min(whole, task.reps - 1))
                batch_share = task.parts["train"] * self.cost("train", task.weight(rep)) / max(
                    1e-9, task.cost(self.cost, rep))
            task.done = min(task.reps, whole + part * (batch_share if part else 1.0))

    def train_speed(self, epoch: int = 0) -> float | None:
        """Photos per second of ``epoch``'s training steps, smoothed (None before a step was measured)."""
        rate = self.rates.get("train")
        return self.batch_size / self.cost("train", self._epoch_weight(epoch)) if rate and rate.value else None

    # --- the answer -------------------------------------------------------------------------------
    def cost(self, key: str, weight: float = 1.0) -> float:
        """Seconds per unit: measured, else derived from a measured neighbour, else the prior. A training step
        of step weight ``weight`` (:func:`step_weight`) costs what the steps of that weight measured, else a
        whole-trunk step known before it ran times ``weight``, else the nearest measured weight's, scaled."""
        if key == "train":
            return self._step_cost(weight)
        return self._unit_cost(key)

    def _step_cost(self, weight: float) -> float:
        measured = {round(w, 6): r.value for w, r in self.stages.items() if r.value is not None}
        if round(weight, 6) in measured:
            return measured[round(weight, 6)]
        whole = self._whole_step_prior()  # how much a step of another share costs varies by architecture:
        if whole is not None:  # the whole trunk's known cost is the better anchor
            return whole * weight
        if not measured:
            return self._unit_cost("train") * weight
        w, value = min(measured.items(), key=lambda m: abs(m[0] - weight))
        return value * weight / w

    def _whole_step_prior(self) -> float | None:
        """A whole-trunk step's cost known before it ran: timed here before, else from this run's forward pass."""
        if self.prior.get("measured_here"):
            return self.prior["train"]
        forward = self.rates.get("forward")
        if forward is not None and forward.value is not None:
            return self.prior.get("ratio", TRAIN_RATIO) * self.batch_size * forward.value
        return None

    def _unit_cost(self, key: str) -> float:
        measured = self.rates.get(key)
        if measured and measured.value is not None:
            return measured.value
        train = self.rates.get("train")
        if key == "view":  # the finished model scoring a photo-view: a forward pass without the feature pass's copying
            return VIEW_SHARE * self._unit_cost("forward")
        if key == "frozen":  # a photo-view of the folded trunk's pass, until it has a steady pace
            return FOLDED_SHARE * self._unit_cost("forward")
        if key == "val":  # an epoch's validation photo, until one was timed: a feature-pass photo
            return self._unit_cost("forward")
        if key == "refit":  # the adapted trunk's feature pass: its validation's pace (measured 1.0-1.2x the refit's
            return self._unit_cost("val")  # time a photo) foretells it better than the first pass's (0.8-1.8x)
        if key == "forward" and train and train.value is not None:
            return train.value / (self.prior.get("ratio", TRAIN_RATIO) * self.batch_size)
        return self.prior.get(key, 0.0)

    def remaining(self) -> float:
        """Seconds left, unsmoothed."""
        return sum(task.left(self.cost) for task in self.tasks)

    def task_left(self, suffix: str = "fit") -> float:
        """Seconds left of the current stage's task ``suffix`` (e.g. this fit), on the scale of the last
        :meth:`eta` (so it never exceeds the whole run's time left)."""
        i = self._index(suffix)
        return self.tasks[i].left(self.cost) * self._scale if i >= 0 else 0.0

    def eta(self) -> float:
        """Seconds left for the whole run, smoothed over wall time."""
        raw, now = self.remaining(), self.now()
        if self._snap:
            self._snap = False
            shown = self.smoother.reset(raw, now)
        else:
            shown = self.smoother.update(raw, now)
        self._scale = shown / raw if raw > 0 else 1.0
        if TRACE_ENV in os.environ:
            self._trace(os.environ[TRACE_ENV], raw, shown)
        return shown

    def _trace(self, path: str, raw: float, shown: float) -> None:
        """One line per estimate: what each task adds to the time left and at which costs (for the bench)."""
        current = self.tasks[self.current].name if 0 <= self.current < len(self.tasks) else ""
        line = {"time": time.time(), "raw": raw, "shown": shown, "current": current,
                "left": {t.name: round(left, 3) for t in self.tasks if (left := t.left(self.cost)) > 0},
                "cost": {k: self.cost(k) for k in ("forward", "frozen", "val", "refit", "view", "train", "probe", "gap",
                                                   "save", "build")}}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


def estimate_seconds(shape: RunShape, prior: dict[str, float]) -> float:
    """The whole run's expected duration before it starts (the Model page), start-up included."""
    return prior.get("start", STARTUP_S) + RunClock(shape, prior).remaining()  # the costs a run starts from
