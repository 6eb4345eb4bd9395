"""The verdict: each level from real held-out figures (core.metrics.score), with and without a good class."""

from __future__ import annotations

import numpy as np
import pytest

from core.decision import Targets
from core.metrics import score
from core.verdict import WIDE_RANGE, judge, held_out_words

CLASSES = ["ok", "scratch", "stain"]


def _probs(defect_scores: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    out = np.zeros((len(defect_scores), 3))
    out[:, 0] = 1 - defect_scores
    out[np.arange(len(kinds)), kinds] += defect_scores
    return out


def _case(n_good: int, n_defect: int, good_scores, defect_scores, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    y = np.array([0] * n_good + [1 + (i % 2) for i in range(n_defect)])
    scores = np.concatenate([good_scores(rng, n_good), defect_scores(rng, n_defect)]).clip(0, 1)
    kinds = np.where(y == 0, 1, y)
    return score(y, _probs(scores, kinds), CLASSES, "ok", threshold=0.5)


def test_one_answer_for_every_photo_is_not_usable() -> None:
    m = _case(40, 40, lambda r, n: r.uniform(0, 0.4, n), lambda r, n: r.uniform(0, 0.45, n))
    assert m["predicted_classes"] == ["ok"]
    v = judge(m)
    assert v.level == "not_usable" and "every part" in v.reason
    flags_all = _case(40, 40, lambda r, n: r.uniform(0.6, 1, n), lambda r, n: r.uniform(0.6, 1, n))
    assert judge(flags_all).level == "not_usable"


def test_a_strong_model_is_ready() -> None:
    m = _case(60, 60, lambda r, n: r.uniform(0.0, 0.3, n), lambda r, n: r.uniform(0.7, 1.0, n))
    assert m["catch_rate"] == 1.0 and m["false_alarm_rate"] == 0.0
    v = judge(m)
    assert v.level == "ready", v
    assert "100%" in v.reason and "95%" in v.reason


def test_a_weak_model_is_promising() -> None:
    # better than guessing (AUC well above 0.5) but far from the targets
    m = _case(60, 60, lambda r, n: r.uniform(0.0, 0.7, n), lambda r, n: r.uniform(0.3, 1.0, n))
    assert m["ranges"]["roc_auc"][0] > 0.5
    v = judge(m)
    assert v.level == "promising", v


def test_a_coin_flip_is_not_usable() -> None:
    m = _case(40, 40, lambda r, n: r.uniform(0, 1, n), lambda r, n: r.uniform(0, 1, n), seed=3)
    assert m["ranges"]["roc_auc"][0] <= 0.5 <= m["ranges"]["roc_auc"][1]
    v = judge(m)
    assert v.level == "not_usable" and "guessing" in v.reason


def test_catching_no_defect_is_not_usable() -> None:
    # it flags some good parts but not one defect
    m = _case(30, 30, lambda r, n: np.r_[r.uniform(0.6, 0.9, 3), r.uniform(0, 0.3, n - 3)],
              lambda r, n: r.uniform(0.35, 0.45, n))
    assert m["defects_caught"] == 0 and m["false_alarms"] == 3
    v = judge(m)
    assert v.level == "not_usable" and "none of the 30" in v.reason


def test_perfect_on_a_handful_of_photos_is_promising_not_ready() -> None:
    m = _case(8, 8, lambda r, n: r.uniform(0.0, 0.2, n), lambda r, n: r.uniform(0.8, 1.0, n))
    assert m["catch_rate"] == 1.0
    width = m["ranges"]["catch_rate"][1] - m["ranges"]["catch_rate"][0]
    assert width > WIDE_RANGE
    v = judge(m)
    assert v.level == "promising" and "anywhere between" in v.reason


def test_targets_decide_between_promising_and_ready() -> None:
    m = _case(60, 60, lambda r, n: r.uniform(0.0, 0.55, n), lambda r, n: r.uniform(0.45, 1.0, n))
    strict, lenient = Targets(), Targets(catch_rate=0.5, false_alarm_rate=0.5)
    assert judge(m, strict).level == "promising"
    assert judge(m, lenient).level == "ready"


def test_nothing_held_out_to_judge_on() -> None:
    y = np.zeros(10, dtype=int)
    m = score(y, _probs(np.full(10, 0.1), np.ones(10, dtype=int)), CLASSES, "ok", 0.5)
    assert judge(m).level == "not_usable" and "No defective photos" in judge(m).reason


def test_without_a_good_class() -> None:
    y = np.repeat([0, 1, 2], 40)
    rng = np.random.default_rng(0)
    strong = np.eye(3)[y] * 0.9 + 0.1 / 3
    assert judge(score(y, strong, CLASSES)).level == "ready"
    one = np.tile([0.5, 0.3, 0.2], (len(y), 1))
    assert judge(score(y, one, CLASSES)).level == "not_usable"
    noise = rng.dirichlet(np.ones(3), len(y))
    assert judge(score(y, noise, CLASSES)).level == "not_usable"  # balanced accuracy's range reaches 1/3
    weak = np.eye(3)[y] * 0.3 + rng.dirichlet(np.ones(3), len(y)) * 0.7
    v = judge(score(y, weak, CLASSES))
    assert v.level == "promising", v


def test_held_out_words_never_claim_unseen_for_validation() -> None:
    assert "never saw" in held_out_words({"n": 9, "evaluated_on": "test"})
    val = held_out_words({"n": 9, "evaluated_on": "val"})
    assert "never" not in val and "optimistic" in val
    assert "5-fold" in held_out_words({"n": 90, "evaluated_on": "oof", "crossval": {"folds": 5}})


@pytest.mark.parametrize("level", ["not_usable", "promising", "ready"])
def test_verdict_dict_is_the_interface(level: str) -> None:
    from core.verdict import LEVELS, Verdict

    v = Verdict(level, "Because.")
    assert v.to_dict() == {"level": level, "reason": "Because."} and level in LEVELS
    assert v.text().startswith(v.title + ": ")


def test_a_model_right_on_every_class_says_so_in_plain_words() -> None:
    y = np.array([0, 1, 2] * 40)
    m = score(y, np.eye(3)[y] * 0.9 + 0.03, CLASSES, None)
    v = judge(m)
    assert v.level == "ready", v
    assert "recognises every class every time" in v.reason and "at least 100%" not in v.reason


def test_perfect_on_a_handful_of_photos_without_a_good_class_is_promising_not_ready() -> None:
    y = np.array([0, 1, 2] * 2)  # 2 photos per class, every one right
    m = score(y, np.eye(3)[y] * 0.9 + 0.03, CLASSES, None)
    lo, hi = m["ranges"]["balanced_accuracy"]
    assert hi == 1.0 and lo < 0.75  # not the [100%, 100%] a bootstrap alone gives
    assert judge(m).level == "promising"
