"""One number formatter: no "0.52 is below 0.520", no "100%" for 199 of 200."""

from __future__ import annotations

from core.numbers import fmt_against, fmt_pct, fmt_range, fmt_score


def test_percentages_never_round_to_the_ends() -> None:
    assert fmt_pct(0.934) == "93%" and fmt_pct(1.0) == "100%" and fmt_pct(0.0) == "0%"
    assert fmt_pct(199 / 200) == "99.5%" and fmt_pct(1 / 400) == "0.2%"
    assert fmt_pct(0.99999999) == ">99.99%" and fmt_pct(1e-9) == "<0.01%"
    assert fmt_pct(None) == "–" and fmt_pct(float("nan")) == "–"
    assert fmt_pct(0.1234, 1) == "12.3%"


def test_a_score_and_its_threshold_are_told_apart() -> None:
    assert fmt_against(0.5196, 0.52) == ("0.5196", "0.5200")
    assert fmt_against(0.3, 0.52) == ("0.30", "0.52")
    assert fmt_against(0.52, 0.52) == ("0.52", "0.52")
    value, threshold = fmt_against(0.51999999, 0.52)
    assert value != threshold and float(value) < float(threshold)


def test_ranges_and_scores() -> None:
    assert fmt_range(0.21, 0.94) == "21%–94%" and fmt_range(None, 0.5) == ""
    assert fmt_score(0.43751) == "0.438" and fmt_score(None) == "–"
