"""Business metrics and the decision threshold."""

from __future__ import annotations

import numpy as np

from core.metrics import choose_threshold, decide, score

CLASSES = ["ok", "scratch", "stain"]


def _probs(defect: list[float], kind: list[int]) -> np.ndarray:
    """Rows with P(ok) = 1 - defect, the rest on the given defect class."""
    out = np.zeros((len(defect), 3))
    for i, (d, k) in enumerate(zip(defect, kind)):
        out[i, 0], out[i, k] = 1 - d, d
    return out


def test_threshold_sits_in_the_middle_of_the_gap() -> None:
    y = np.array([0, 0, 0, 1, 2, 1])
    probs = _probs([0.01, 0.05, 0.2, 0.97, 0.996, 0.999], [1, 1, 1, 1, 2, 1])
    t = choose_threshold(y, probs, CLASSES, "ok")
    assert 0.2 < t < 0.97 and abs(t - 0.585) < 1e-9


def test_no_defects_in_validation_falls_back_to_half() -> None:
    assert choose_threshold(np.array([0, 0]), _probs([0.1, 0.2], [1, 1]), CLASSES, "ok") == 0.5


def test_decide_flags_by_threshold_then_picks_the_defect_type() -> None:
    probs = _probs([0.3, 0.7], [2, 1])
    assert decide(probs, CLASSES, "ok", 0.5).tolist() == [0, 1]
    assert decide(probs, CLASSES, "ok", 0.25).tolist() == [2, 1]


def test_catch_rate_and_false_alarms_in_counts() -> None:
    y = np.array([0, 0, 0, 0, 1, 2])
    probs = _probs([0.1, 0.6, 0.2, 0.1, 0.9, 0.4], [1, 1, 1, 1, 1, 2])
    m = score(y, probs, CLASSES, "ok", threshold=0.5)
    assert (m["defects"], m["defects_caught"], m["good_parts"], m["false_alarms"]) == (2, 1, 4, 1)
    assert m["catch_rate"] == 0.5 and m["false_alarm_rate"] == 0.25
    assert m["confusion"][0] == [3, 1, 0] and m["roc_auc"] is not None
