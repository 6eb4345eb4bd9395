"""Callbacks that make a run observable and stoppable: events, stop requests, checkpoints."""

from __future__ import annotations

import signal
import time
from typing import Any

from .runs import RunFolder

__all__ = ["EventWriter", "StopWatcher", "StopRequested"]

PROGRESS_EVERY_S = 2.0


class EventWriter:
    """Writes epoch records and in-epoch progress (with ETA) to ``events.jsonl``."""

    def __init__(self, run: RunFolder, phase_label: str = "Training") -> None:
        self.run, self.phase_label = run, phase_label
        self.t0 = time.monotonic()
        self.last = 0.0
        self.epoch_start = 0.0

    def on_fit_start(self, t: Any) -> None:
        self.t0 = time.monotonic()

    def on_epoch_start(self, t: Any, epoch: int) -> None:
        self.epoch_start = time.monotonic()

    def _eta(self, t: Any, fraction_of_epoch: float) -> float:
        done = t.epoch + fraction_of_epoch
        elapsed = time.monotonic() - self.t0
        return elapsed / max(done, 1e-6) * (t.epochs - done)

    def on_batch_end(self, t: Any, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and info["batch"] != info["batches"]:
            return
        self.last = now
        frac = info["batch"] / max(info["batches"], 1)
        self.run.emit("progress", phase="train", epoch=t.epoch + 1, epochs=t.epochs, batch=info["batch"],
                      batches=info["batches"], loss=info["loss"], images_per_s=info["images_per_s"],
                      elapsed_s=now - self.t0, eta_s=self._eta(t, frac))

    def on_epoch_end(self, t: Any, record: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.t0
        record.update(elapsed_s=elapsed, epoch_s=time.monotonic() - self.epoch_start, eta_s=self._eta(t, 1.0))
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
