"""What to try next, in plain words, from a run's metrics, training curves and data check.

Advice never recommends what this computer can't do: without pretrained ImageNet weights (offline, and not
in the hub cache) it points to the real ways forward instead, :func:`offline_ways`, the same words the
Model page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["Advice", "advise", "offline_ways", "WEIGHTS_COMMAND"]

# what to run on a computer with internet to carry ImageNet weights into an air-gapped plant
WEIGHTS_COMMAND = "python -m core weights download resnet18.a1_in1k --out resnet18.safetensors"


@dataclass(frozen=True)
class Advice:
    """One plain-words suggestion. ``level`` is ``problem``, ``warning``, ``tip`` or ``good``; ``command``
    is a command line to copy, shown apart from the words (empty when there is none)."""

    level: str
    title: str
    detail: str
    command: str = ""


def offline_ways(has_models: bool = True, good_class: str | None = None, good_parts_reason: str | None = None,
                 where: str = "on the Model page") -> list[Advice]:
    """The real ways forward when this computer can't download pretrained weights, as ``tip`` advice.

    Args:
        has_models: whether a finished Graft model exists here to build on.
        good_class: the dataset's class of good parts (None: good-parts-only mode isn't offered).
        good_parts_reason: why good-parts-only mode suits these photos (:func:`core.recommend_anomaly`), if it does.
        where: where the reader finds the start point choice ("above" on the Model page itself).

    Returns:
        A weights file first (with :data:`WEIGHTS_COMMAND`), then an earlier model, then good-parts-only mode.
    """
    from .config import STRATEGY_CARD_NAMES, Strategy

    ways = [Advice("tip", "Bring a weights file",
                   "On any computer with internet and Graft, run the command below, copy the file (about 45 MB) "
                   f"on a USB stick, then choose “A weights file” {where} and the ResNet-18 backbone. Graft checks "
                   "the file the moment it arrives and never runs code from it.", WEIGHTS_COMMAND)]
    if has_models:
        ways.append(Advice("tip", "Build on an earlier model of yours",
                           f"Choose “An earlier model of yours” {where}: it keeps what that model learned and "
                           "adapts it to these photos."))
    else:
        ways.append(Advice("tip", "Build on an earlier model",
                           "Once any model has been trained here (or copied into the workspace's runs folder), it "
                           "can be the start of the next one."))
    if good_class:
        why = good_parts_reason or (f"It learns what good '{good_class}' parts look like and flags anything "
                                    "different, without defect photos.")
        ways.append(Advice("tip", f"Try “{STRATEGY_CARD_NAMES[Strategy.ANOMALY]}”",
                           f"{why} It also needs a start that already knows photos: a weights file or an earlier "
                           "model."))
    return ways


FEW_TRAIN_PER_CLASS = 30  # below this, pretrained starts and feature extraction matter most
SMALL_TEST = 30  # below this, one photo moves accuracy by more than 3 points
IMBALANCE_ADVICE = 3.0


def advise(metrics: dict[str, Any], events: Sequence[dict[str, Any]] = (), check: dict[str, Any] | None = None,
           config: dict[str, Any] | None = None, pretrained: bool | None = None,
           has_models: bool = True) -> list[Advice]:
    """What to try next, most important first, from a run's metrics, training curves and data check.

    Args:
        metrics: the run's ``metrics.json``.
        events: the run's events (only ``epoch`` events are used).
        check: the run's ``check.json`` (class counts, imbalance).
        config: the run's ``config.json`` (start point, strategy).
        pretrained: whether this computer can get ImageNet weights (online, or in the hub cache); None asks
            :func:`core.hub.pretrained_available` (at most a few seconds). When it can't, no advice
            recommends them: the ways forward are :func:`offline_ways`.
        has_models: whether a finished model exists here to build on (for the offline ways).

    Returns:
        A list of :class:`Advice`; a single ``good`` one when nothing stands out.
    """
    if pretrained is None:
        from .hub import pretrained_available

        pretrained = pretrained_available()
    check = check or {}
    start = _start_words(pretrained)
    epochs = [e for e in events if e.get("event") == "epoch"]
    found = [*_advice_collapse(metrics, start), *_advice_data(metrics, check, start),
             *_advice_curves(epochs, metrics, start), *_advice_classes(metrics), *_advice_threshold(metrics),
             *_advice_start(config or {}, check, metrics, pretrained, has_models)]
    order = {"problem": 0, "warning": 1, "tip": 2}
    found.sort(key=lambda a: order.get(a.level, 3))
    if not any(a.level in ("problem", "warning") for a in found):  # lead with the good news, then the tips
        found.insert(0, Advice("good", "No obvious problems",
                               "Check any mistakes for mislabelled photos, then try the model on new photos on "
                               "the Test page."))
    return found


def _start_words(pretrained: bool) -> str:
    """A start that already knows photos, in words this computer can follow."""
    return "a pretrained or earlier model" if pretrained else "a weights file or an earlier model"


def _advice_collapse(metrics: dict[str, Any], start: str) -> list[Advice]:
    predicted, classes = metrics.get("predicted_classes") or [], metrics.get("classes") or []
    if len(predicted) == 1 and len(classes) > 1:
        return [Advice("problem", f"The model answers '{predicted[0]}' for every photo",
                       f"It has not learned to tell the classes apart yet. Train for more epochs, start from {start}, "
                       "or add photos to the smaller classes.")]
    return []


def _advice_data(metrics: dict[str, Any], check: dict[str, Any], start: str) -> list[Advice]:
    out = []
    counts = {c: int(n) for c, n in (check.get("counts") or {}).items() if n}
    if counts:
        small = min(counts, key=counts.get)
        if counts[small] < FEW_TRAIN_PER_CLASS:
            out.append(Advice("warning", f"Few photos: '{small}' has only {counts[small]}",
                              f"Aim for at least {FEW_TRAIN_PER_CLASS}, better 50 or more, per class. With few photos, "
                              f"start from {start} and use feature extraction."))
        ratio = max(counts.values()) / max(1, counts[small])
        if ratio >= IMBALANCE_ADVICE:
            big = max(counts, key=counts.get)
            out.append(Advice("warning", f"Unbalanced classes: {ratio:.0f}× more '{big}' than '{small}'",
                              f"Graft already gives rare classes more weight, but more '{small}' photos help most. "
                              "Judge the model by the catch rate, not by accuracy."))
    n = int(metrics.get("n") or 0)
    held = {"oof": "scored", "val": "validation"}.get(str(metrics.get("evaluated_on")), "test")
    if 0 < n < SMALL_TEST:
        out.append(Advice("tip", f"Only {n} {held} photos: read the numbers as rough",
                          f"Each photo moves accuracy by {100 / n:.0f} points. The ranges next to the numbers show "
                          "how far off they could be; more photos make them narrower."))
    return out


def _advice_curves(epochs: list[dict[str, Any]], metrics: dict[str, Any], start: str) -> list[Advice]:
    if len(epochs) < 2:
        return []
    last = epochs[-1]
    train_acc, val_acc = last.get("train_acc"), last.get("val_acc")
    out = []
    val_losses = [e["val_loss"] for e in epochs if e.get("val_loss") is not None]
    rising = len(val_losses) >= 3 and val_losses[-1] > 1.2 * min(val_losses) and val_losses.index(min(val_losses)) < len(val_losses) - 1
    if train_acc is not None and val_acc is not None and (train_acc - val_acc > 0.15 and train_acc > 0.85 or rising):
        out.append(Advice("warning", "It learns the training photos by heart (overfitting)",
                          f"Training accuracy {train_acc:.0%} but validation {val_acc:.0%}. Add photos, use feature "
                          f"extraction (fewer weights to learn), or start from {start}."))
    elif train_acc is not None and train_acc < 0.7:
        out.append(Advice("warning", f"It hasn't learned the training photos yet ({train_acc:.0%} right)",
                          f"Train for more epochs, or start from {start}."))
    best, run = metrics.get("best_epoch"), metrics.get("epochs_run") or len(epochs)
    if best is not None and best >= run and not metrics.get("stopped_early") and val_acc is not None and val_acc < 0.98:
        out.append(Advice("tip", "Still improving at the last epoch",
                          "The best result came at the very end; more epochs will probably help."))
    return out


def _advice_classes(metrics: dict[str, Any]) -> list[Advice]:
    per_class, classes, confusion = metrics.get("per_class") or {}, metrics.get("classes") or [], metrics.get("confusion") or []
    if len(set(metrics.get("predicted_classes") or [])) <= 1:
        return []  # already explained by the collapse advice
    weak = [(v["recall"], c) for c, v in per_class.items() if v.get("support") and v["recall"] < 0.7]
    if not weak:
        return []
    recall, cls = min(weak)
    detail = "Check that its photos are labelled right, and add photos where it is clearly visible."
    if cls in classes and confusion:
        row = list(confusion[classes.index(cls)])
        row[classes.index(cls)] = -1
        other = classes[int(np.argmax(row))]
        if row[classes.index(other)] > 0:
            detail = f"It is most often taken for '{other}'. " + detail
    return [Advice("warning", f"'{cls}' is often missed (only {recall:.0%} found)", detail)]


def _advice_threshold(metrics: dict[str, Any]) -> list[Advice]:
    catch, alarms = metrics.get("catch_rate"), metrics.get("false_alarm_rate")
    if catch is None or alarms is None or len(set(metrics.get("predicted_classes") or [])) <= 1:
        return []
    if catch < 0.9 and alarms < 0.2:
        return [Advice("tip", f"{metrics.get('defects', 0) - metrics.get('defects_caught', 0)} defect(s) slip through",
                       "Lower the threshold to catch more of them; the slider shows how many extra false alarms "
                       "that costs.")]
    if alarms > 0.2 and catch >= 0.9:
        return [Advice("tip", "Many good parts are flagged",
                       "Raise the threshold to cut false alarms; the slider shows how many defects that would miss.")]
    return []


def _advice_start(config: dict[str, Any], check: dict[str, Any], metrics: dict[str, Any], pretrained: bool,
                  has_models: bool) -> list[Advice]:
    if str(config.get("start", "")) != "scratch":
        return []
    if pretrained:
        return [Advice("tip", "Started from scratch",
                       "A model that starts from ImageNet or from an earlier model of yours usually needs far fewer "
                       "photos for the same result. Try it on the Model page.")]
    from .anomaly_choice import recommend_anomaly

    good = metrics.get("good_class") or config.get("good_class")
    counts = {c: int(n) for c, n in (check.get("counts") or {}).items()}
    started = Advice("tip", "Started from scratch",
                     "A model that starts from one that already knows photos usually needs far fewer photos for the "
                     "same result. This computer can't download ImageNet weights; the tips below work without the "
                     "internet.")
    return [started, *offline_ways(has_models, good, recommend_anomaly(counts, good) if good else None)]

