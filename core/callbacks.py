"""Callbacks that make a run observable and stoppable: events, stop requests, checkpoints."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from .eta import RunClock
from .runs import RunFolder

__all__ = ["EventWriter", "StopWatcher", "StopRequested", "PhaseProgress", "progress_hook", "announce_start"]

PROGRESS_EVERY_S = 2.0


def announce_start(config: Any, warm: bool = False) -> None:
    """The run's first progress event, written before PyTorch loads: the whole run's expected duration.

    The training process takes seconds to import torch, timm and scikit-learn; this event lets the
    app show at once that the run started and about how long it will take (:func:`core.eta.estimate_seconds`,
    from the number of photos and the backbone's known speed). A ``warm`` process (core/standby.py) has
    loaded them already: its estimate counts no start-up.
    """
    from .datasets import load_dataset
    from .eta import estimate_seconds, run_priors, shape_for

    try:
        photos = len(load_dataset(config.data).samples)
    except Exception:  # the training process reports a bad dataset in plain words; here it only has no ETA
        photos = 0
    prior = {**run_priors(config), **({"start": 0.0} if warm else {})}
    eta = estimate_seconds(shape_for(config, photos), prior) if photos else None
    run = RunFolder(config.out)
    run.path.mkdir(parents=True, exist_ok=True)
    run.emit("progress", phase="start", done=0, total=photos, eta_s=eta, elapsed_s=0.0)


def progress_hook(run: RunFolder, clock: RunClock | None, phase: str, label: str,
                  stopper: "StopWatcher | None" = None, task: str = "") -> "PhaseProgress":
    """A preparation phase's progress hook (check, decode, features, refit): events and status with the
    whole run's time left (``eta_s``) and the phase's own (``phase_eta_s``).

    ``task`` names the clock's task when it isn't the phase (the head refit reads features in task
    ``reprobe``). A stop request raises :class:`StopRequested`.
    """
    return PhaseProgress(run, clock, phase, label, stopper, task)


@dataclass(frozen=True)
class PhaseProgress:
    """The hook :func:`progress_hook` makes: called with (done, total, seconds left of the phase)."""

    run: RunFolder
    clock: RunClock | None
    phase: str
    label: str
    stopper: "StopWatcher | None" = None
    task: str = ""
    key: str = ""  # the kind of work the clock times (default: the task's first)

    def keyed(self, key: str) -> "PhaseProgress":
        """The same hook, timing its work as ``key`` (e.g. ``"frozen"``: a folded trunk's pass)."""
        return replace(self, key=key)

    def __call__(self, done: int, total: int, eta: float) -> None:
        if self.stopper is not None and self.stopper.requested():
            raise StopRequested(self.phase)
        if self.clock is None:
            self.run.emit("progress", phase=self.phase, done=done, total=total, eta_s=eta, phase_eta_s=eta)
            self.run.set_status("running", f"{self.label}: {done} of {total}.", eta_s=eta)
            return
        units, planned = self.clock.progress(self.task or self.phase, done, total, key=self.key)
        whole = self.clock.eta()
        self.run.emit("progress", phase=self.phase, done=int(units), total=int(planned), eta_s=whole, phase_eta_s=eta)
        self.run.set_status("running", f"{self.label}: {int(units)} of {int(planned)}.", eta_s=whole)


class EventWriter:
    """Writes epoch records and in-epoch progress to ``events.jsonl``.

    ``eta_s`` is the whole run's time left (the run's :class:`core.eta.RunClock`); ``fit_eta_s`` this
    fit's. Every training step's time goes to the clock, and ``images_per_s`` is its smoothed training
    speed (``epoch_images_per_s``: the epoch's plain average). A fit on cached features (feature
    extraction) reports no training speed: its batches are not photos through the network.
    """

    def __init__(self, run: RunFolder, phase_label: str = "Training", clock: RunClock | None = None) -> None:
        self.run, self.phase_label, self.clock = run, phase_label, clock
        self.t0 = self.last = self.epoch_start = self.step_at = time.monotonic()
        self.batch_end = 0.0
        self.seen = 0

    def on_fit_start(self, t: Any) -> None:
        self.t0 = time.monotonic()
        if self.clock is None:  # a fit on its own: a clock of this fit only
            self.clock = RunClock.for_fit(t.epochs, t.feeder.n_batches("train"), t.feeder.size("val"),
                                          t.feeder.batch_size)
        self.clock.begin("fit")
        self.images = getattr(t.feeder, "images", None) is not None  # photos through the network, not features

    def on_epoch_start(self, t: Any, epoch: int) -> None:
        now = time.monotonic()
        if self.batch_end:  # the checkpoint and bookkeeping between epochs
            self.clock.observe("gap", now - self.batch_end, 1)
        self.epoch_start = self.step_at = now
        self.seen, self.batch_end = 0, 0.0
        self.clock.fit_at(epoch)

    def _speed(self, t: Any) -> float | None:
        return self.clock.train_speed(t.epoch) if self.images else None

    def on_batch_end(self, t: Any, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if self.images:
            self.clock.step(now - self.step_at, info["seen"] - self.seen, t.epoch)
        self.step_at, self.seen = now, info["seen"]
        self.clock.fit_at(t.epoch + info["batch"] / max(info["batches"], 1) * (1 - 1e-9))
        if info["batch"] == info["batches"]:
            self.batch_end = now
        if now - self.last < PROGRESS_EVERY_S and info["batch"] != info["batches"]:
            return
        self.last = now
        self.run.emit("progress", phase="train", epoch=t.epoch + 1, epochs=t.epochs, batch=info["batch"],
                      batches=info["batches"], loss=info["loss"], images_per_s=self._speed(t),
                      elapsed_s=now - self.t0, eta_s=self.clock.eta(), fit_eta_s=self.clock.task_left("fit"))

    def on_epoch_end(self, t: Any, record: dict[str, Any]) -> None:
        now = time.monotonic()
        n_val = t.feeder.size("val") if self.images else 0
        if self.batch_end and n_val:  # validation (and BatchNorm statistics) since the last batch
            extra = t.feeder.size("train") if t.recipe.recalibrate_bn and not t.should_stop else 0
            self.clock.observe("val", now - self.batch_end, n_val + extra)
        self.clock.fit_at(t.epoch + 1)
        self.batch_end = now
        record.update(elapsed_s=now - self.t0, epoch_s=now - self.epoch_start, eta_s=self.clock.eta(),
                      fit_eta_s=self.clock.task_left("fit"), epoch_images_per_s=record.get("images_per_s"),
                      images_per_s=self._speed(t))
        self.run.emit("epoch", **record)
        self.run.set_status("running", f"{self.phase_label}: epoch {record['epoch']} of {t.epochs} done.",
                            epoch=record["epoch"], epochs=t.epochs, eta_s=record["eta_s"])


class StopRequested(Exception):
    """Raised from a progress hook to abandon a preparation phase (decode, features)."""


class StopWatcher:
    """Stops training within one batch when the ``stop`` file appears or SIGTERM arrives."""

    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self.signalled = False
        self._previous = None

    def install(self) -> "StopWatcher":
        def handler(signum: int, frame: object) -> None:
            self.signalled = True

        try:
            self._previous = signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread (e.g. called from a test runner thread)
            pass
        return self

    def requested(self) -> bool:
        return self.signalled or self.run.stop_requested()

    def on_batch_end(self, t: Any, info: dict[str, Any]) -> None:
        if self.requested():
            t.should_stop = True
            t.stop_reason = "stopped on request"
