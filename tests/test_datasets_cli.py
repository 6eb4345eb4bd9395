"""Dataset forms, the check, splitting, and the CLI's plain errors."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from core.check import check_dataset
from core.cli import main
from core.datasets import load_dataset
from core.split import split_indices
from tests.conftest import ROOT, make_dataset


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("counts, phrase", [
    ({"ok": 5}, "at least 2 classes"),
    ({"ok": 5, "scratch": 1}, "needs at least 2"),
    ({}, "no readable images"),
])
def test_blocking_problems_exit_2_plainly(tmp_path: Path, counts: dict, phrase: str) -> None:
    data = make_dataset(tmp_path / "d", counts, size=24)
    if not counts:
        for label in ("ok", "dent"):
            (data / label).mkdir(parents=True)
            (data / label / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = _cli("train", str(data), "--out", str(tmp_path / "run"), "--backbone", "test_resnet", "--start", "scratch")
    assert result.returncode == 2
    assert phrase in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_dataset_and_unknown_backbone(tmp_path: Path, easy_data: Path) -> None:
    r = _cli("check", str(tmp_path / "nope"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = _cli("train", str(easy_data), "--out", str(tmp_path / "r"), "--backbone", "resnet18x", "--start", "scratch")
    assert r.returncode == 2 and "Unknown backbone" in r.stderr and "resnet18" in r.stderr


def test_offline_imagenet_fails_fast_with_alternatives(tmp_path: Path, easy_data: Path) -> None:
    r = _cli("train", str(easy_data), "--out", str(tmp_path / "r"), "--backbone", "resnet18")
    assert r.returncode == 2 and "offline" in r.stderr and "scratch" in r.stderr


def test_check_report(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", {"ok": 12, "scratch": 2}, size=24)
    (data / "ok" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (data / "scratch" / "copy.png").write_bytes((data / "ok" / "ok_000.png").read_bytes())
    report = check_dataset(load_dataset(data))
    assert report.counts == {"ok": 12, "scratch": 3}
    assert [u["image"] for u in report.unreadable] == ["ok/broken.png"]
    assert report.conflicts and report.conflicts[0]["labels"] == ["ok", "scratch"]
    assert any("unbalanced" in w for w in report.warnings) is False  # 4:1 is below the 1:5 warning
    assert report.sizes["median_width"] == 24


def test_zip_with_wrapper_and_junk(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", {"ok": 3, "dent": 3}, size=24)
    archive = tmp_path / "parts.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in data.rglob("*.png"):
            zf.write(f, f"wrapper/{f.relative_to(data).as_posix()}")
        zf.writestr("__MACOSX/wrapper/ok/._ok_000.png", b"junk")
        zf.writestr("wrapper/ok/.DS_Store", b"junk")
    ds = load_dataset(archive)
    assert ds.counts() == {"dent": 3, "ok": 3}


def test_csv_with_split_and_confinement(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", {"ok": 4, "dent": 4}, size=24)
    rows = ["image,label,split,surface"] + [f"{f.relative_to(data).as_posix()},{f.parent.name},{'test' if i % 4 == 0 else ''},metal"
                                         for i, f in enumerate(sorted(data.rglob("*.png")))]
    (data / "labels.csv").write_text("\n".join(rows))
    ds = load_dataset(data / "labels.csv")
    assert ds.extra_columns == ("surface",)
    report = check_dataset(ds)
    splits = split_indices(ds, list(range(len(ds.samples))), report.hashes, seed=1)
    forced = [i for i, s in enumerate(ds.samples) if s.split == "test"]
    assert set(forced) <= set(splits["test"])
    (data / "evil.csv").write_text("image,label\n../../etc/passwd,ok\n")
    from core.errors import GraftError
    with pytest.raises(GraftError, match="outside"):
        load_dataset(data / "evil.csv")


def test_split_is_stratified_and_keeps_small_classes_training(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", {"ok": 40, "dent": 2}, size=24)
    ds = load_dataset(data)
    report = check_dataset(ds)
    splits = split_indices(ds, list(range(len(ds.samples))), report.hashes, seed=0)
    labels = {k: [ds.samples[i].label for i in v] for k, v in splits.items()}
    assert labels["train"].count("dent") >= 1
    assert 5 <= labels["test"].count("ok") <= 7 and 5 <= labels["val"].count("ok") <= 7


def test_import_core_does_not_import_streamlit() -> None:
    code = "import sys, core; assert 'streamlit' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_cli_predict_writes_csv(tmp_path: Path, easy_data: Path, tiny_args: list[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", str(easy_data), "--out", str(run), *tiny_args, "--epochs", "1"]) == 0
    out_csv = tmp_path / "preds.csv"
    assert main(["predict", str(run), str(easy_data / "ok"), "--csv", str(out_csv)]) == 0
    assert len(out_csv.read_text().strip().splitlines()) == 21
    assert main(["evaluate", str(run), str(easy_data)]) == 0
