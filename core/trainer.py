"""The fit loop: flat train/validate functions, named events, and callbacks that react to them.

The loop follows a :class:`core.recipes.Recipe`: a fixed schedule, whose last weights are kept.

Callbacks are plain objects with any of these optional methods (each gets the trainer):
``on_fit_start(t)``, ``on_epoch_start(t, epoch)``, ``on_batch_end(t, info)``,
``on_epoch_end(t, record)`` and ``on_fit_end(t)``. A callback stops training by setting
``t.should_stop = True`` (and ``t.stop_reason``); the loop checks it after every batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from . import ddp
from .device import Runtime
from .feeders import ImageFeeder, FeatureFeeder
from .model import GraftModel, Task, freeze_trunk, recalibrate_batchnorm, set_train_mode, unfreeze_top
from .recipes import Recipe

__all__ = ["Trainer", "Diverged", "FitResult"]


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""  # why training ended early ("" when it ran its course)


class Trainer:
    """Trains a :class:`GraftModel` on a feeder, following a recipe's stages and rates."""

    def __init__(self, model: GraftModel, feeder: ImageFeeder | FeatureFeeder, tasks: list[Task],
                 recipe: Recipe, optimizer: torch.optim.Optimizer, runtime: Runtime,
                 class_weights: dict[str, torch.Tensor], callbacks: list[Any]) -> None:
        self.model, self.feeder, self.tasks, self.recipe = model, feeder, tasks, recipe
        self.optimizer, self.runtime, self.class_weights = optimizer, runtime, class_weights
        self.callbacks = callbacks
        self.net: torch.nn.Module = model  # what trains: the model, or its DDP wrapper (core/ddp.py)
        self._wrapped_for: int | None = None  # the trainable trunk groups the wrapper was made for
        self.scaler = runtime.grad_scaler()  # loss scaling in fp16 (older GPUs); a pass-through otherwise
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.epochs = max(1, recipe.epochs)  # a recipe without training epochs still reports one record
        self.epoch = 0
        self.step = 0
        self.should_stop = False
        self.stop_reason = ""
        self.best_state: dict[str, torch.Tensor] | None = None  # the last finished epoch's weights
        self.result = FitResult(best_epoch=0, best_score=-math.inf)

    # -- events ----------------------------------------------------------------------------
    def fire(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            handler = getattr(cb, event, None)
            if handler is not None:
                handler(self, *args)

    # -- one epoch ---------------------------------------------------------------------------
    def loss(self, logits: dict[str, torch.Tensor], y: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class-balanced cross-entropy summed over tasks; -1 targets are ignored."""
        total = 0.0
        for name, out in logits.items():
            target = y[name]
            if (target >= 0).any():
                w = self.class_weights[name].to(out.device)
                total = total + F.cross_entropy(out.float(), target, weight=w, ignore_index=-1)
        return total if torch.is_tensor(total) else torch.zeros((), requires_grad=True)

    def train_one_epoch(self) -> dict[str, float]:
        set_train_mode(self.model, freeze_bn=self.recipe.freeze_bn)
        n_batches, seen, loss_sum, correct, t0 = self.feeder.n_batches("train"), 0, 0.0, 0, time.monotonic()
        ranks = ddp.world().size
        for b, (x, y, _) in enumerate(self.feeder.batches("train", train=True)):
            self._set_lr(n_batches)
            with self.runtime.autocast():
                logits = self.feeder.forward(self.net, x)
            loss = self.loss(logits, y)
            if ddp.any_rank(not torch.isfinite(loss)):  # every rank ends the fit together
                raise Diverged(f"loss became {loss.item()} in epoch {self.epoch + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            first = self.tasks[0].name
            seen += len(x)
            loss_sum += loss.item() * len(x)
            correct += int((logits[first].argmax(1) == y[first]).sum())
            info = {"batch": b + 1, "batches": n_batches, "seen": seen * ranks, "loss": loss_sum / seen,
                    "images_per_s": seen * ranks / max(time.monotonic() - t0, 1e-9)}
            self.fire("on_batch_end", info)
            if ranks > 1 and ddp.any_rank(self.should_stop):  # rank 0 watches the stop file; any rank may get SIGTERM
                self.should_stop, self.stop_reason = True, self.stop_reason or "stopped on request"
            if self.should_stop:
                break
        seen, loss_sum, correct = ddp.sum_all(seen, loss_sum, correct)  # the epoch over every rank's share
        out = {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
               "images_per_s": seen / max(time.monotonic() - t0, 1e-9)}
        if self.should_stop and seen and b + 1 < n_batches:  # a stop within the epoch: say where it ended
            out["stopped_after_batch"] = b + 1
            out["batches"] = n_batches
        return out

    def score_train(self) -> dict[str, float]:
        """Loss and accuracy on the training photos without training (a recipe with no epochs)."""
        scores = self.scores("train")
        return {"train_loss": scores.get("val_loss", 0.0), "train_acc": scores.get("val_acc", 0.0),
                "images_per_s": 0.0}

    def _set_lr(self, steps_per_epoch: int) -> None:
        factor = self.recipe.lr_factor(self.step, steps_per_epoch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    @torch.inference_mode()
    def predict_split(self, split: str) -> dict[str, np.ndarray]:
        """Softmax probabilities per task for every sample of ``split`` (in split order)."""
        self.model.eval()
        out: dict[str, list[np.ndarray]] = {t.name: [] for t in self.tasks}
        for x, _, _ in self.feeder.batches(split, train=False):
            with self.runtime.autocast():
                logits = self.feeder.forward(self.model, x)
            for name, v in logits.items():
                out[name].append(torch.softmax(v.float(), 1).cpu().numpy())
        return {k: np.concatenate(v) if v else np.zeros((0, len(t.classes)))
                for (k, v), t in zip(out.items(), self.tasks)}

    def validate(self) -> dict[str, Any]:
        """Loss, accuracy, macro-F1 and per-class recall on the validation split."""
        return self.scores("val")

    def scores(self, split: str) -> dict[str, Any]:
        """Loss, accuracy, macro-F1 and per-class recall on ``split`` (keys named ``val_*``)."""
        probs = self.predict_split(split)
        idx = np.asarray(self.feeder.splits[split], dtype=np.int64)
        metrics: dict[str, Any] = {"val_loss": 0.0}
        if not len(idx):
            return {**metrics, "val_score": 0.0}
        f1s = []
        for task in self.tasks:
            y = self.feeder.targets[task.name][idx]
            keep = y >= 0
            p, yk = probs[task.name][keep], y[keep]
            if len(yk) == 0:
                continue
            w = self.class_weights[task.name]
            logp = torch.log(torch.from_numpy(p).clamp_min(1e-8))
            metrics["val_loss"] += float(F.nll_loss(logp, torch.from_numpy(yk), weight=w))
            pred = p.argmax(1)
            f1 = f1_score(yk, pred, average="macro", labels=list(range(len(task.classes))), zero_division=0)
            f1s.append(f1)
            recall = {c: float((pred[yk == k] == k).mean()) for k, c in enumerate(task.classes) if (yk == k).any()}
            suffix = "" if task is self.tasks[0] else f"_{task.name}"
            metrics.update({f"val_acc{suffix}": float((pred == yk).mean()), f"val_f1{suffix}": float(f1),
                            f"val_recall{suffix}": recall})
        metrics["val_score"] = float(np.mean(f1s)) if f1s else 0.0
        return metrics

    # -- the loop -----------------------------------------------------------------------------
    def _apply_schedule(self, epoch: int) -> None:
        freeze_trunk(self.model)
        unfreeze_top(self.model, self.recipe.groups_at(epoch))
        groups = self.recipe.groups_at(epoch)
        if ddp.world().active and self.recipe.epochs > 0 and groups != self._wrapped_for:
            self.net = self.model  # the old wrapper goes before a new one hooks the new trainable set
            self.net = ddp.wrap(self.model, multi_task=len(self.tasks) > 1)
            self._wrapped_for = groups

    def fit(self, start_epoch: int = 0) -> FitResult:
        """Train the recipe's epochs and keep the last weights.

        ``start_epoch`` > 0 continues a resumed run (see :meth:`loop_state`).
        """
        self.fire("on_fit_start")
        try:
            for epoch in range(start_epoch, self.epochs):
                record = self._run_epoch(epoch)
                self._keep(record)
                self.result.history.append(record)
                self.fire("on_epoch_end", record)
                if self.should_stop:
                    self.result.stopped = self.stop_reason or "stopped"
                    break
        finally:  # after a blow-up, the last finished epoch's weights come back
            self.restore_best()
        self.fire("on_fit_end")
        return self.result

    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        self.epoch = epoch
        self._apply_schedule(epoch)
        self.fire("on_epoch_start", epoch)
        trains = self.recipe.epochs > 0
        record = {"epoch": epoch + 1, "epochs": self.epochs, **(self.train_one_epoch() if trains else self.score_train())}
        # A stop is honoured at once: no extra pass over the training photos to refresh the BN statistics.
        if (trains and self.recipe.recalibrate_bn and not self.should_stop
                and (epoch + 1 == self.epochs or self.feeder.size("val"))):
            recalibrate_batchnorm(self.model, self._clean_batches(), self.runtime)
        record.update(self.validate())
        record["lr"] = max(g["lr"] for g in self.optimizer.param_groups) if trains else 0.0
        record["trunk_trainable"] = self.recipe.groups_at(epoch) > 0
        return record

    def _clean_batches(self):
        for x, _, _ in self.feeder.batches("train", train=False):
            yield x

    def _keep(self, record: dict[str, Any]) -> None:
        """A fixed schedule: the newest finished epoch is the one kept (also after a stop or a blow-up)."""
        record["best"] = True
        self.result.best_epoch = record["epoch"]
        self.result.best_score = record.get("val_score", 0.0) if self.feeder.size("val") else 0.0
        self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def loop_state(self) -> dict[str, Any]:
        """Everything but tensors needed to continue this fit later (JSON-friendly)."""
        return {"epoch": self.epoch + 1, "step": self.step, "bad_epochs": 0,
                "best_epoch": self.result.best_epoch, "best_score": self.result.best_score,
                "history": self.result.history}

    def load_loop_state(self, state: dict[str, Any]) -> int:
        """Restore :meth:`loop_state`; returns the epoch to start from."""
        self.step = int(state["step"])
        self.result = FitResult(int(state["best_epoch"]), float(state["best_score"]), list(state["history"]))
        return int(state["epoch"])

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
