"""One plain verdict on a run, from its held-out numbers and how sure they are.

Levels (``metrics.json["verdict"]``, and the start of ``status.json``'s message):

* ``not_usable``: no better than guessing (the lower end of the 95% range of the ROC AUC, or of the
  balanced accuracy without a good class, is at or below chance), or it catches no defects, or it
  gives one answer for every photo (with a good class: flags every part or none), or there is
  nothing to judge it on (no defective or no good photos were held out).
* ``promising``: better than guessing, but the range is *wide* or the targets are not met.
  Wide: a 95% range (catch rate or false alarms; balanced accuracy without a good class) spans more
  than 25 percentage points, e.g. fewer than about 13 defective photos all caught.
* ``ready``: with a good class, the catch rate reaches the user's target and the false alarms stay
  within theirs (default 95% and 5%), and no range is wide. Without a good class, every class is
  recognised at least as often as the catch-rate target, and the range is not wide.

Ready compares the *point estimates* with the targets, because demanding the lower range end reach
95% would need about 75 defective photos all caught before any pilot could start; the width rule is
what keeps a handful of lucky photos from reading as ready. A pilot then narrows the ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .decision import Targets
from .numbers import fmt_pct, fmt_range

__all__ = ["Verdict", "judge", "judge_run", "LEVELS", "LEVEL_TITLES", "WIDE_RANGE", "held_out_words"]

LEVELS = ("not_usable", "promising", "ready")
LEVEL_TITLES = {"not_usable": "Not usable", "promising": "Promising, needs more photos",
                "ready": "Ready for a pilot"}
WIDE_RANGE = 0.25  # a 95% range wider than this (25 percentage points) is too unsure to call ready


@dataclass(frozen=True)
class Verdict:
    """``level`` (one of :data:`LEVELS`) and one plain sentence saying why."""

    level: str
    reason: str

    @property
    def title(self) -> str:
        return LEVEL_TITLES[self.level]

    def text(self) -> str:
        """``"Not usable: it gives the same answer ('ok') for every photo."``"""
        return f"{self.title}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level, "reason": self.reason}


def judge(metrics: dict[str, Any], targets: Targets | None = None) -> Verdict:
    """The verdict on held-out metrics (``core.metrics.score`` output, with its ``ranges``).

    Args:
        metrics: the held-out figures, e.g. a run's ``metrics.json``.
        targets: the user's targets (default 95% catch rate, 5% false alarms).
    """
    targets = targets or Targets()
    if metrics.get("good_class") and len(metrics.get("classes") or []) >= 2:
        return _judge_defects(metrics, targets)
    return _judge_classes(metrics, targets)


def _low(metrics: dict[str, Any], key: str) -> float | None:
    found = (metrics.get("ranges") or {}).get(key)
    return None if not found else float(found[0])


def _width(metrics: dict[str, Any], key: str) -> float:
    found = (metrics.get("ranges") or {}).get(key)
    return 1.0 if not found else float(found[1]) - float(found[0])


def _judge_defects(m: dict[str, Any], targets: Targets) -> Verdict:
    defects, good = int(m.get("defects") or 0), int(m.get("good_parts") or 0)
    if not defects or not good:
        missing = "defective" if not defects else "good"
        return Verdict("not_usable", f"No {missing} photos were held out to check it on, so nothing shows it "
                                     "can tell defects from good parts.")
    flagged = int(m.get("flagged", m.get("defects_caught", 0) + m.get("false_alarms", 0)))
    if flagged in (0, defects + good) or len(m.get("predicted_classes") or []) == 1:
        answer = "flags every part as defective" if flagged else f"passes every part as '{m['good_class']}'"
        return Verdict("not_usable", f"It {answer}: it has not learned to tell defects from good parts.")
    if not m.get("defects_caught"):
        return Verdict("not_usable", f"It catches none of the {defects} defective photos.")
    auc_low = _low(m, "roc_auc")
    if auc_low is None and m.get("roc_auc") is not None:
        auc_low = float(m["roc_auc"])
    if auc_low is not None and auc_low <= 0.5:
        return Verdict("not_usable", f"It is no better than guessing: its ranking of defects above good parts "
                                     f"could be as low as {auc_low:.2f} (0.50 is a coin flip).")
    return _defects_above_chance(m, targets)


def _defects_above_chance(m: dict[str, Any], targets: Targets) -> Verdict:
    catch, alarms = float(m["catch_rate"]), float(m["false_alarm_rate"])
    ranges = m.get("ranges") or {}
    wide = [(name, key) for name, key in (("catch rate", "catch_rate"), ("false alarms", "false_alarm_rate"))
            if _width(m, key) > WIDE_RANGE]
    if wide:
        name, key = wide[0]
        low, high = ranges.get(key) or (0.0, 1.0)
        return Verdict("promising", f"It is better than guessing, but with {m['defects']} defective and "
                                    f"{m['good_parts']} good photos its {name} could be anywhere between "
                                    f"{fmt_pct(low)} and {fmt_pct(high)}.")
    if catch < targets.catch_rate:
        return Verdict("promising", f"It catches {fmt_pct(catch)} of defects ({fmt_range(*ranges['catch_rate'])}); "
                                    f"the target is {fmt_pct(targets.catch_rate)}.")
    if alarms > targets.false_alarm_rate:
        return Verdict("promising", f"It raises false alarms on {fmt_pct(alarms)} of good parts "
                                    f"({fmt_range(*ranges['false_alarm_rate'])}); the target is at most "
                                    f"{fmt_pct(targets.false_alarm_rate)}.")
    return Verdict("ready", f"It catches {fmt_pct(catch)} of defects (target {fmt_pct(targets.catch_rate)}) with "
                            f"{fmt_pct(alarms)} false alarms (target at most {fmt_pct(targets.false_alarm_rate)}), "
                            f"on {m['n']} photos it was not trained on.")


def _judge_classes(m: dict[str, Any], targets: Targets) -> Verdict:
    scored = m.get("classes_scored") or [c for c, v in (m.get("per_class") or {}).items() if v.get("support")]
    if len(scored) < 2:
        return Verdict("not_usable", "Fewer than two classes were held out to check it on, so nothing shows it "
                                     "can tell them apart.")
    if len(m.get("predicted_classes") or []) == 1:
        return Verdict("not_usable", f"It gives the same answer ('{m['predicted_classes'][0]}') for every photo.")
    chance = 1.0 / len(scored)
    low = _low(m, "balanced_accuracy")
    low = float(m.get("balanced_accuracy") or 0.0) if low is None else low
    if low <= chance:
        return Verdict("not_usable", f"It is no better than guessing: its balanced accuracy could be as low as "
                                     f"{fmt_pct(low)} (guessing among {len(scored)} classes gives {fmt_pct(chance)}).")
    if _width(m, "balanced_accuracy") > WIDE_RANGE:
        lo, hi = m["ranges"]["balanced_accuracy"]
        return Verdict("promising", f"It is better than guessing, but with {m['n']} photos its balanced accuracy "
                                    f"could be anywhere between {fmt_pct(lo)} and {fmt_pct(hi)}.")
    per_class = m.get("per_class") or {}
    worst = min(scored, key=lambda c: per_class[c]["recall"])
    if per_class[worst]["recall"] < targets.catch_rate:
        return Verdict("promising", f"It recognises '{worst}' only {fmt_pct(per_class[worst]['recall'])} of the "
                                    f"time; the target is {fmt_pct(targets.catch_rate)} for every class.")
    recall = per_class[worst]["recall"]
    how = "every time" if recall >= 1 else f"at least {fmt_pct(recall)} of the time"
    return Verdict("ready", f"It recognises every class {how} (target {fmt_pct(targets.catch_rate)}), on {m['n']} "
                            f"photos it was not trained on.")


def judge_run(run_dir: str | Path) -> Verdict | None:
    """The verdict on a finished run with the targets saved in its decision file; None without metrics."""
    from .decision import read_decision
    from .errors import GraftError
    from .jsonio import read_json

    metrics = read_json(Path(run_dir) / "metrics.json")
    if not isinstance(metrics, dict) or "accuracy" not in metrics:
        return None
    stored = metrics.get("verdict")
    if metrics.get("anomaly") and not metrics.get("defects") and isinstance(stored, dict):
        return Verdict(**stored)  # good parts only, no defect photos held out: no targets apply (core.anomaly_fit)
    try:
        targets = read_decision(run_dir).targets
    except GraftError:
        targets = Targets()
    return judge(metrics, targets)


def held_out_words(metrics: dict[str, Any]) -> str:
    """What the headline numbers were measured on, honestly (never "never seen" for validation photos)."""
    n, split = metrics.get("n", 0), metrics.get("evaluated_on", "test")
    folds = (metrics.get("crossval") or {}).get("folds")
    if split == "oof":
        return (f"{n} photos, each scored by a model trained without it ({folds}-fold cross-validation)")
    if split == "val":
        return (f"{n} validation photos: they chose the threshold, so these numbers are "
                "a little optimistic")
    return f"{n} test photos the model never saw while training"
