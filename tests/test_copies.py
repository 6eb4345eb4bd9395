"""Copies can't inflate the score: near-copies (re-saved JPEG, resized copy) are found and kept in one
split and one fold; a CSV that splits them is named; CSV labels can't collide with Graft's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.check import check_dataset
from core.config import RunConfig
from core.copies import look_of, near_copy_pairs
from core.crossval import assign_folds, fold_splits
from core.datasets import load_dataset
from core.errors import GraftError
from core.pipeline import prepare
from core.runs import RunFolder
from core.split import split_indices
from tests.conftest import draw_easy, make_dataset


def _with_copies(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """An ok/scratch dataset where two photos also appear as a re-saved JPEG and as a resized copy."""
    data = make_dataset(root, {"ok": 14, "scratch": 14}, size=96)
    copies = {}
    for label, n in (("ok", 3), ("scratch", 5)):
        src = data / label / f"{label}_{n:03d}.png"
        image = Image.open(src).convert("RGB")
        image.save(data / label / f"resaved_{n}.jpg", quality=55)
        image.resize((48, 48), Image.Resampling.BILINEAR).save(data / label / f"small_{n}.png")
        copies[label] = [f"{label}/{label}_{n:03d}.png", f"{label}/resaved_{n}.jpg", f"{label}/small_{n}.png"]
    return data, copies


@pytest.fixture(scope="module")
def copies_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    return _with_copies(tmp_path_factory.mktemp("copies") / "parts")


def test_near_copies_are_found_and_distinct_photos_are_not(copies_data) -> None:
    data, copies = copies_data
    report = check_dataset(load_dataset(data))
    found = sorted(sorted(group) for group in report.near_duplicates)
    assert found == sorted(sorted(group) for group in copies.values())
    groups = report.groups
    for group in copies.values():
        assert len({groups[rel] for rel in group}) == 1
    assert len(set(groups.values())) == 28  # 32 photos, two sets of three
    assert any("near-copy" in w for w in report.warnings)


def test_the_look_ignores_recompression_but_not_content() -> None:
    rng = np.random.default_rng(1)
    a, b = draw_easy("scratch", 96, rng), draw_easy("scratch", 96, rng)
    import io

    buf = io.BytesIO()
    a.save(buf, "JPEG", quality=40)
    resaved = Image.open(io.BytesIO(buf.getvalue()))
    assert near_copy_pairs([look_of(a), look_of(resaved), look_of(b)]) == [(0, 1)]


def test_split_and_folds_keep_copies_together(copies_data, tmp_path: Path) -> None:
    data, copies = copies_data
    config = RunConfig(data=str(data), out=str(tmp_path / "run"), good_class="ok")
    run = RunFolder(config.out)
    run.path.mkdir()
    prep = prepare(config, run)
    index = {s.rel: i for i, s in enumerate(prep.ds.samples)}
    for seed in range(4):
        splits = split_indices(prep.ds, list(range(len(prep.ds.samples))), prep.report.groups, seed=seed)
        where = {i: name for name, idx in splits.items() for i in idx}
        for group in copies.values():
            assert len({where[index[rel]] for rel in group}) == 1
        folds = assign_folds(prep, 4, seed)
        assert sorted(set(folds)) == [1, 2, 3, 4]
        for group in copies.values():
            assert len({folds[index[rel]] for rel in group}) == 1
        for fold in range(1, 5):  # and inside a fold, its validation share keeps them together too
            inner = fold_splits(prep, folds, fold, config)
            side = {i: name for name, idx in inner.items() for i in idx}
            for group in copies.values():
                assert len({side[index[rel]] for rel in group}) == 1


def test_a_csv_that_splits_copies_is_warned_about_by_name(copies_data, tmp_path: Path) -> None:
    data, copies = copies_data
    rows = ["image,label,split"]
    for f in sorted(data.rglob("*.*")):
        if f.suffix not in (".png", ".jpg"):
            continue
        rel = f.relative_to(data).as_posix()
        split = "test" if rel == copies["ok"][1] else "train"  # the re-saved copy is a test photo
        rows.append(f"{rel},{f.parent.name},{split}")
    (data / "fixed.csv").write_text("\n".join(rows))
    report = check_dataset(load_dataset(data / "fixed.csv"))
    leak = [w for w in report.warnings if "different splits" in w]
    assert leak and copies["ok"][1] in leak[0] and copies["ok"][0] in leak[0]
    assert not any("copies are kept in one split" in w for w in report.warnings)
    assert report.split_leaks[0]["splits"].count("test") == 1
    (data / "fixed.csv").unlink()


def test_csv_same_file_name_in_two_folders_keeps_both(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for line, label in (("lineA", "ok"), ("lineB", "scratch")):
        (tmp_path / line).mkdir()
        draw_easy(label, 40, rng).save(tmp_path / line / "0001.png")
    (tmp_path / "labels.csv").write_text("image,label\nlineA/0001.png,ok\nlineB/0001.png,scratch\n")
    ds = load_dataset(tmp_path / "labels.csv")
    assert [(s.rel, s.label) for s in ds.samples] == [("lineA/0001.png", "ok"), ("lineB/0001.png", "scratch")]
    report = check_dataset(ds)
    assert set(report.hashes) == {"lineA/0001.png", "lineB/0001.png"}


def test_csv_import_same_name_in_two_folders_keeps_both(tmp_path: Path) -> None:
    from core.workspace import Workspace
    from tests.conftest import png_bytes

    ws = Workspace(tmp_path / "ws")
    csv = b"image,label\nlineA/0001.png,ok\nlineB/0001.png,scratch\n"
    uploads = [("lineA/0001.png", png_bytes("ok", seed=1)), ("lineB/0001.png", png_bytes("scratch", seed=2))]
    info = ws.import_csv(csv, uploads, name="lines")
    assert info.counts == {"ok": 1, "scratch": 1}
    ds = load_dataset(info.path)
    by_label = {s.label: Path(s.path).read_bytes() for s in ds.samples}
    assert by_label["ok"] == uploads[0][1] and by_label["scratch"] == uploads[1][1]
    with pytest.raises(GraftError, match="only one photo called '0001.png'"):  # names alone can't tell them apart
        ws.import_csv(csv, [("0001.png", png_bytes("ok", seed=1))], name="ambiguous")


@pytest.mark.parametrize(("header", "words"), [
    ("image,label,defect", "'defect' has the name of a question Graft asks itself"),
    ("image,label,defect_type", "'defect_type'"),
    ("image,label,surface,Surface", "'surface' more than once"),
    ("image,label,label", "'label' more than once"),
])
def test_csv_label_columns_that_clash_are_refused(tmp_path: Path, header: str, words: str) -> None:
    from core.workspace import Workspace

    make_dataset(tmp_path / "d", {"ok": 2}, size=24)
    extra = ",x" * (len(header.split(",")) - 2)
    (tmp_path / "d" / "labels.csv").write_text(f"{header}\nok/ok_000.png,ok{extra}\n")
    with pytest.raises(GraftError, match=words):
        load_dataset(tmp_path / "d" / "labels.csv")
    with pytest.raises(GraftError, match=words):
        Workspace(tmp_path / "ws").import_csv(f"{header}\nok_000.png,ok{extra}\n".encode(),
                                              [("ok_000.png", (tmp_path / "d" / "ok" / "ok_000.png").read_bytes())])
