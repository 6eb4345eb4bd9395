"""Business metrics and the decision threshold."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_macro_scores_ignore_classes_with_no_photos() -> None:
    # no 'stain' photo is scored: it must not drag macro-F1 down with a 0, and shows no recall ("–")
    y = np.array([0, 0, 1, 1])
    probs = _probs([0.1, 0.2, 0.9, 0.8], [1, 1, 1, 1])
    m = score(y, probs, CLASSES, "ok", threshold=0.5)
    assert m["macro_f1"] == 1.0 and m["balanced_accuracy"] == 1.0
    assert m["per_class"]["stain"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert m["classes_scored"] == ["ok", "scratch"]
    # a class the model names without any photo of it: its precision is a real 0 (every such answer wrong)
    named = score(y, _probs([0.1, 0.2, 0.9, 0.8], [1, 1, 2, 1]), CLASSES, "ok", threshold=0.5)
    assert named["per_class"]["stain"]["precision"] == 0.0 and named["per_class"]["stain"]["recall"] is None
    assert named["macro_f1"] < 1.0


def test_ranges_and_uncertain_band() -> None:
    from core.metrics import answers, band_summary, wilson_interval

    y = np.array([0, 0, 0, 1, 2, 1])
    probs = _probs([0.1, 0.48, 0.2, 0.97, 0.53, 0.9], [1, 1, 1, 1, 2, 1])
    m = score(y, probs, CLASSES, "ok", threshold=0.5)
    assert m["ranges"]["catch_rate"] == list(wilson_interval(3, 3))
    low, high = m["ranges"]["roc_auc"]
    assert 0.0 <= low <= m["roc_auc"] <= high <= 1.0
    said = answers(probs, CLASSES, "ok", 0.5, band=0.1)  # scores 0.48 and 0.53 are within 0.05 of 0.5
    assert said == ["good", "uncertain", "good", "defect", "uncertain", "defect"]
    band = band_summary(probs, y, CLASSES, "ok", 0.5, 0.1)
    assert band["sent_to_person"] == 2 and band["share"] == pytest.approx(2 / 6) and band["defects_missed"] == 0
    assert answers(probs, CLASSES, None, 0.5, band=0.0) == ["ok", "ok", "ok", "scratch", "stain", "scratch"]


def test_wilson_is_exact_at_the_ends() -> None:
    from core.metrics import wilson_interval

    assert wilson_interval(60, 60)[1] == 1.0 and wilson_interval(0, 60)[0] == 0.0
