"""Smoke test of the benchmark: every section runs at the tiniest size and the report has its parts.

No timing is asserted: the numbers of the tiny profile mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import bench
from bench.profiles import PROFILES
from bench.realdata import shared_root


def test_every_section_runs_and_the_report_is_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # one torch thread: on a shared CPU, two threads wait on each other at every tiny op
    monkeypatch.setattr("core.device.physical_cores", lambda: 1)
    out = tmp_path / "docs" / "benchmarks.md"
    sections, text = bench.run_all(PROFILES["tiny"], out, log=lambda _: None)

    assert [s.key for s in sections] == list(bench.SECTIONS)
    assert out.read_text(encoding="utf-8") == text
    for heading in ("# Graft benchmarks", "## Machine", "## Goals", "native bf16"):
        assert heading in text
    for s in sections:
        assert f"## {s.title}" in text
        assert s.tables and all(t.rows for t in s.tables)
        for link in s.plots:
            assert (out.parent / link).is_file() and link in text
        for g in s.goals:
            assert g.verdict() in text

    by_key = {s.key: s for s in sections}
    assert set(by_key["speed"].data["results"]["test_resnet"]) == {"train_fp32", "train_bf16", "infer_fp32",
                                                                   "infer_bf16"}
    assert "'test_resnet': (" in by_key["speed"].code  # the literal to paste into CURATED
    assert {g.name.split(" ")[0] for g in by_key["features"].goals} == {"Embeddings", "Head-only"}
    assert by_key["features"].data["warm"]["cached"] is True  # the retrain reused the cached features
    assert set(by_key["transfer"].data["accuracy"]) == {"feature-extraction", "scratch"}
    assert len(by_key["transfer"].goals) == 1
    memory = by_key["memory"].data["results"]
    assert any(r["memmap"] for r in memory.values()) and any(not r["memmap"] for r in memory.values())
    assert all(len(s.goals) >= 1 for k, s in by_key.items()
               if k not in ("speed", "real", "ddp", "anomaly", "firstpaint"))
    assert by_key["firstpaint"].tables[0].headers == ["skipped"]  # a browser and fresh servers: not in the tiny run
    anomaly = by_key["anomaly"]
    if shared_root() is None:
        assert anomaly.tables[0].headers == ["skipped"]
    else:  # issue 11: both start points trained through train_run and scored on MVTec's test photos
        assert len(anomaly.goals) == 5 and set(anomaly.data["results"]) == {"imagenet", "random"}
    real = by_key["real"]
    if shared_root() is None:
        assert real.tables[0].headers == ["skipped"]
    else:  # every method of the tiny profile ran on real photos, and the four goals are judged
        assert len(real.goals) == 4 and len(real.tables) == 2
        assert {k.split("|")[0] for k in real.data["neu"]} == {"probe", "plain", "feature-extraction", "fine-tune"}
        assert set(real.data["bottle"]) == {"probe", "fine-tune"}
        assert "core.evidence.MEASURED" in real.code


def test_a_rerun_section_replaces_its_old_self_and_its_goals() -> None:
    from bench.merge import merge_reports

    old = ("# Graft benchmarks\n\nintro\n\n## Machine\n\nmachine\n\n## Goals\n\n| section | goal | result |\n|---|---|---|\n"
           "| 2. Two | fast | met |\n| 7. Real | good | MISSED |\n\nSection times: two 1 s.\n\n"
           "## 2. Two\n\nold two\n\n## 7. Real\n\nold real\n")
    new = ("# Graft benchmarks\n\nother intro\n\n## Machine\n\nnew machine\n\n## Goals\n\n| section | goal | result |\n"
           "|---|---|---|\n| 7. Real | good | met |\n| 8. Anomaly | auc | met |\n\n"
           "## 8. Anomaly\n\nnew anomaly\n\n## 7. Real\n\nnew real\n")
    merged = merge_reports(old, new)
    assert merged.startswith("# Graft benchmarks\n\nintro\n\n## Machine\n\nmachine\n\n## Goals")
    assert "| 2. Two | fast | met |\n| 7. Real | good | met |\n| 8. Anomaly | auc | met |\n" in merged
    assert "MISSED" not in merged and "old real" not in merged and "old two" in merged
    assert merged.index("## 2. Two") < merged.index("## 7. Real") < merged.index("## 8. Anomaly")
    assert "Section times: two 1 s." in merged and "Rerun alone" in merged.split("## 7. Real")[1]


def test_finished_real_photo_fits_are_kept_for_the_next_run_with_the_same_settings(tmp_path: Path) -> None:
    import dataclasses

    from bench.profiles import RealCfg
    from bench.realfit import Score
    from bench.realphotos import Job
    from bench.realstore import FitStore, settings_key

    sizes = {"neu": 224, "bottle": 224}
    key = settings_key(RealCfg(), sizes, "fine-tune")
    assert key == settings_key(RealCfg(workers=1, budget_s=0), sizes, "fine-tune")  # how it runs: same
    assert key == settings_key(RealCfg(seeds=(0,), methods=("fine-tune",)), sizes, "fine-tune")  # plan size: same
    assert key != settings_key(RealCfg(epochs=3), sizes, "fine-tune")  # what it measures: not
    assert key != settings_key(RealCfg(), sizes, "probe")  # Graft's views reach Graft's fits only
    probe_key = settings_key(RealCfg(), sizes, "probe")
    assert probe_key != settings_key(RealCfg(plain_epochs=3), sizes, "probe")
    store = FitStore(tmp_path / "fits.jsonl", RealCfg(), sizes)
    job, score = Job("neu", "probe", "imagenet", 20, 0), Score(0.975, None, 12.0, 6, {"C": 1.0})
    store.add(job, score)
    with open(store.path, "a", encoding="utf-8") as fh:
        fh.write('{"key": "cut sho')  # a line left by a killed run
    assert store.load() == {dataclasses.astuple(job): score}
    assert FitStore(store.path, RealCfg(plain_epochs=3), sizes).load() == {}
