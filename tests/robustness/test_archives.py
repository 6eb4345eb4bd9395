"""Hostile zips: every one is built here, in tmp_path, in well under a second."""

from __future__ import annotations

import io
import stat
import struct
import unicodedata
import zipfile
from pathlib import Path

import pytest

from core import archives
from core.archives import (
    ArchiveError,
    ExtractReport,
    ZipLimits,
    extract_zip,
    is_junk_name,
    safe_extract_zip,
    unwrap_single_folder,
)
from core.errors import GraftError

PNG = b"\x89PNG\r\n\x1a\n fake image bytes"  # extraction never decodes


def _zip(tmp_path: Path, members: dict[str, bytes], name: str = "upload.zip",
         method: int = zipfile.ZIP_DEFLATED) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", method) as zf:
        for member, data in members.items():
            zf.writestr(zipfile.ZipInfo(member), data, compress_type=method)
    return path


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A nested destination parent, so ../../x from dest still lands inside tmp_path."""
    parent = tmp_path / "a" / "b" / "c"
    parent.mkdir(parents=True)
    return parent


def _assert_refused(zip_path: Path, dest: Path, match: str, limits: ZipLimits | None = None) -> None:
    before = _tree(dest.parent)
    with pytest.raises(ArchiveError, match=match):
        safe_extract_zip(zip_path, dest, limits)
    assert not dest.exists()
    assert _tree(dest.parent) == before  # no temp folder left behind


# --- escaping the folder ------------------------------------------------------------------


def test_traversal_names_and_symlinks_stay_inside(tmp_path: Path, work: Path) -> None:
    outside_abs = tmp_path / "abs" / "x.png"
    members = {
        "ok/good.png": PNG,
        "../../x.png": PNG,
        "ok/../../../y.png": PNG,
        str(outside_abs): PNG,
        "..\\z.png": PNG,
        "ok\\..\\..\\w.png": PNG,
        "C:\\win.png": PNG,
        "C:drive-relative.png": PNG,
        "//server/share/u.png": PNG,
    }
    path = _zip(tmp_path, members)
    with zipfile.ZipFile(path, "a") as zf:  # a symlink member pointing outside
        link = zipfile.ZipInfo("ok/link.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../../../../x.png")
    before = _tree(tmp_path)
    dest = work / "dest"
    report = extract_zip(path, dest)
    assert _tree(tmp_path) - before == {"a/b/c/dest", "a/b/c/dest/ok", "a/b/c/dest/ok/good.png"}
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert (dest / "ok" / "good.png").read_bytes() == PNG
    assert len(report.unsafe) == len(members)  # all but good.png, plus the link
    assert report.files == ("ok/good.png",)
    assert any("outside the folder" in note for note in report.notes())


def test_backslash_is_a_separator(tmp_path: Path, work: Path) -> None:
    dest = safe_extract_zip(_zip(tmp_path, {"ok\\a.png": PNG, "bad\\b.png": PNG}), work / "d")
    assert _files(dest) == {"ok/a.png", "bad/b.png"}


# --- zip bombs --------------------------------------------------------------------------


def _zeros_zip(tmp_path: Path, megabytes: int) -> Path:
    return _zip(tmp_path, {"ok/a.png": PNG, "ok/bomb.bmp": bytes(megabytes * 1024 * 1024)})


def test_ratio_bomb_refused_before_writing(tmp_path: Path, work: Path) -> None:
    _assert_refused(_zeros_zip(tmp_path, 50), work / "d", "zip bombs")


def test_limits_stop_on_bytes_actually_read(tmp_path: Path, work: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Ignore the declared sizes entirely: the streaming counters alone must stop it.
    monkeypatch.setattr(archives, "_check_declared", lambda *a: None)
    reads: list[int] = []
    real_copy = archives._copy_member

    def spy(archive, info, target, *rest):  # type: ignore[no-untyped-def]
        try:
            return real_copy(archive, info, target, *rest)
        finally:
            reads.append(target.stat().st_size if target.exists() else 0)

    monkeypatch.setattr(archives, "_copy_member", spy)
    path = _zeros_zip(tmp_path, 20)
    small = ZipLimits(max_member_bytes=3 * 1024 * 1024, max_ratio=1e9)
    _assert_refused(path, work / "d", "more than 3 MB", small)
    assert max(reads) <= 3 * 1024 * 1024  # stopped before writing past the limit
    reads.clear()
    _assert_refused(path, work / "d", "zip bombs", ZipLimits(max_ratio=200))
    with zipfile.ZipFile(path) as zf:
        compressed = zf.getinfo("ok/bomb.bmp").compress_size
    assert 0 < max(reads) <= 200 * compressed < 20 * 1024 * 1024
    total = ZipLimits(max_total_bytes=2 * 1024 * 1024, max_ratio=1e9)
    _assert_refused(path, work / "d", "more than 2 MB", total)


def test_lying_header_is_caught(tmp_path: Path, work: Path) -> None:
    """Declared size 1 KB, real data 20 MB: zipfile stops at the declared size and the CRC fails."""
    path = _zeros_zip(tmp_path, 20)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("ok/bomb.bmp")
    for sig, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(sig, start)) >= 0:
            if struct.unpack_from("<I", data, start + size_at)[0] == info.file_size:
                struct.pack_into("<I", data, start + size_at, 1024)
            start += 4
    path.write_bytes(bytes(data))
    _assert_refused(path, work / "d", "damaged")


def test_total_declared_too_large(tmp_path: Path, work: Path) -> None:
    path = _zip(tmp_path, {f"ok/{i}.png": bytes(600_000) for i in range(4)})
    _assert_refused(path, work / "d", "more than 2 MB.*", ZipLimits(max_total_bytes=2 * 1024 * 1024))
    with pytest.raises(ArchiveError) as info:
        safe_extract_zip(path, work / "d", ZipLimits(max_total_bytes=2 * 1024 * 1024))
    assert "GRAFT_ZIP_MAX_BYTES" in info.value.hint


def test_too_many_members(tmp_path: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _zip(tmp_path, {f"ok/{i}.png": PNG for i in range(11)})
    monkeypatch.setattr(archives, "_write_all", lambda *a: pytest.fail("extracted anyway"))
    _assert_refused(path, work / "d", "11 files; the limit is 10", ZipLimits(max_members=10))


def test_limits_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFT_ZIP_MAX_MEMBERS", raising=False)
    monkeypatch.delenv("GRAFT_ZIP_MAX_BYTES", raising=False)
    assert ZipLimits.from_env() == ZipLimits()
    monkeypatch.setenv("GRAFT_ZIP_MAX_MEMBERS", "50")
    monkeypatch.setenv("GRAFT_ZIP_MAX_BYTES", "1000000")
    assert ZipLimits.from_env() == ZipLimits(max_members=50, max_total_bytes=1_000_000)
    monkeypatch.setenv("GRAFT_ZIP_MAX_BYTES", "-3")
    with pytest.raises(GraftError, match="GRAFT_ZIP_MAX_BYTES"):
        ZipLimits.from_env()


# --- what is kept ----------------------------------------------------------------------


def test_nested_zip_not_recursed_and_other_files_skipped(tmp_path: Path, work: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("ok/inner.png", PNG)
    path = _zip(tmp_path, {"ok/a.png": PNG, "ok/more.zip": inner.getvalue(), "labels.csv": b"image,label\n",
                           "readme.txt": b"hi", "run.exe": b"MZ", "ok/b.JPEG": PNG})
    report = extract_zip(path, work / "d")
    assert _files(report.root) == {"ok/a.png", "ok/b.JPEG", "labels.csv"}
    assert report.skipped == 3


def test_junk_names_ignored(tmp_path: Path, work: Path) -> None:
    path = _zip(tmp_path, {"ok/a.png": PNG, "__MACOSX/ok/._a.png": b"x", "ok/._a.png": b"x",
                           "ok/.DS_Store": b"x", "ok/Thumbs.db": b"x", "desktop.ini": b"x"})
    report = extract_zip(path, work / "d")
    assert _files(report.root) == {"ok/a.png"} and report.junk == 5


@pytest.mark.parametrize(
    ("name", "junk"),
    [("__MACOSX/a/b.png", True), ("x/__MACOSX/b.png", True), ("ok/._b.png", True),
     (".DS_Store", True), ("ok\\Thumbs.db", True), ("DESKTOP.INI", True),
     ("ok/b.png", False), ("ok/.hidden.png", False), ("macosx/b.png", False)],
)
def test_is_junk_name(name: str, junk: bool) -> None:
    assert is_junk_name(name) is junk


def test_cp437_name(tmp_path: Path, work: Path) -> None:
    """A name written without the UTF-8 flag (old Windows zippers) decodes as cp437."""
    path = _zip(tmp_path, {"ok/cafX.png": PNG})
    raw = path.read_bytes()
    assert raw.count(b"cafX.png") == 2  # local header and central directory
    path.write_bytes(raw.replace(b"cafX.png", b"caf\x82.png"))  # 0x82 is é in cp437
    dest = safe_extract_zip(path, work / "d")
    assert _files(dest) == {"ok/café.png"}


def test_case_and_normalisation_clashes_keep_every_file(tmp_path: Path, work: Path) -> None:
    nfd = unicodedata.normalize("NFD", "café.png")
    members = {"ok/A.png": b"1", "ok/a.png": b"2", f"ok/{nfd}": b"3", "ok/café.png": b"4",
               "OK/x.png": b"5", "ok/x.png": b"6"}
    report = extract_zip(_zip(tmp_path, dict(reversed(members.items()))), work / "d")
    expected = {"OK/x.png": b"5", "ok (2)/A.png": b"1", "ok (2)/a (2).png": b"2",
                "ok (2)/café.png": b"3", "ok (2)/café (2).png": b"4", "ok (2)/x.png": b"6"}
    got = {rel: (report.root / rel).read_bytes() for rel in _files(report.root)}
    assert {unicodedata.normalize("NFC", k): v for k, v in got.items()} == expected
    assert all(unicodedata.is_normalized("NFC", k) for k in got)
    # Same zip, other member order: same result.
    again = extract_zip(_zip(tmp_path, members, "again.zip"), work / "d2")
    assert {rel: (again.root / rel).read_bytes() for rel in _files(again.root)} == got
    assert len(report.renamed) == 5  # everything under ok (2)/ and the suffixed files


def test_duplicate_member_names(tmp_path: Path, work: Path) -> None:
    path = tmp_path / "dup.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/a.png", b"first")
        with pytest.warns(UserWarning):
            zf.writestr("ok/a.png", b"second")
    dest = safe_extract_zip(path, work / "d")
    assert _files(dest) == {"ok/a.png", "ok/a (2).png"}


# --- damaged and refused zips ----------------------------------------------------------


def _patch_flag(path: Path, bit: int) -> None:
    data = bytearray(path.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(sig, start)) >= 0:
            struct.pack_into("<H", data, start + flag_at, struct.unpack_from("<H", data, start + flag_at)[0] | bit)
            start += 4
    path.write_bytes(bytes(data))


def test_encrypted_member(tmp_path: Path, work: Path) -> None:
    path = _zip(tmp_path, {"ok/a.png": PNG})
    _patch_flag(path, 0x1)
    _assert_refused(path, work / "d", "password-protected")


def test_bad_crc(tmp_path: Path, work: Path) -> None:
    payload = b"STORED-IMAGE-DATA" * 100
    path = _zip(tmp_path, {"ok/a.png": PNG, "ok/b.png": payload}, method=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    at = data.index(payload) + 50
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    _assert_refused(path, work / "d", "damaged")


def test_corrupt_deflate_stream(tmp_path: Path, work: Path) -> None:
    path = _zip(tmp_path, {"ok/a.png": bytes(range(256)) * 64})
    data = bytearray(path.read_bytes())
    header = data.index(b"PK\x03\x04")
    name_len, extra_len = struct.unpack_from("<HH", data, header + 26)
    body = header + 30 + name_len + extra_len
    data[body : body + 40] = b"\xff" * 40
    path.write_bytes(bytes(data))
    _assert_refused(path, work / "d", "damaged")


def test_text_file_renamed_zip(tmp_path: Path, work: Path) -> None:
    path = tmp_path / "notes.zip"
    path.write_text("just some notes, not a zip\n")
    _assert_refused(path, work / "d", "not a zip file")


def test_empty_file_and_missing_file(tmp_path: Path, work: Path) -> None:
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    _assert_refused(empty, work / "d", "not a zip file")
    _assert_refused(tmp_path / "missing.zip", work / "d", "not found")


def test_zip_without_images(tmp_path: Path, work: Path) -> None:
    _assert_refused(_zip(tmp_path, {"docs/readme.txt": b"hi", "__MACOSX/._x.png": b"x"}), work / "d",
                    "contains no images")


def test_dest_must_not_exist(tmp_path: Path, work: Path) -> None:
    (work / "d").mkdir()
    (work / "d" / "keep.png").write_bytes(b"x")
    with pytest.raises(ArchiveError, match="already exists"):
        safe_extract_zip(_zip(tmp_path, {"ok/a.png": PNG}), work / "d")
    assert _files(work / "d") == {"keep.png"}


def test_dest_appearing_during_extraction(tmp_path: Path, work: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = archives._write_all

    def racing(archive, members, tmp, *rest):  # type: ignore[no-untyped-def]
        real_write(archive, members, tmp, *rest)
        (work / "d" / "other").mkdir(parents=True)  # a concurrent extraction finished first

    monkeypatch.setattr(archives, "_write_all", racing)
    with pytest.raises(ArchiveError, match="already exists"):
        safe_extract_zip(_zip(tmp_path, {"ok/a.png": PNG}), work / "d")
    assert _tree(work) == {"d", "d/other"}


def test_failure_midway_leaves_nothing(tmp_path: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _zip(tmp_path, {f"ok/{i}.png": PNG for i in range(5)})
    calls = []
    real_copy = archives._copy_member

    def fail_third(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_copy(*args)

    monkeypatch.setattr(archives, "_copy_member", fail_third)
    before = _tree(work)
    with pytest.raises(KeyboardInterrupt):
        safe_extract_zip(path, work / "d")
    assert _tree(work) == before


# --- success path and unwrap ---------------------------------------------------------------


def test_success_creates_parent_and_returns_dest(tmp_path: Path) -> None:
    dest = tmp_path / "new" / "deeper" / "ds"
    result = safe_extract_zip(_zip(tmp_path, {"mydata/ok/a.png": PNG, "mydata/scratch/b.png": PNG}), str(dest))
    assert result == dest and isinstance(result, Path)
    assert _files(dest) == {"mydata/ok/a.png", "mydata/scratch/b.png"}  # wrapper left as is
    assert [p.name for p in dest.parent.iterdir()] == ["ds"]
    assert unwrap_single_folder(dest) == dest / "mydata"
    assert isinstance(extract_zip(_zip(tmp_path, {"ok/a.png": PNG}, "b.zip"), tmp_path / "e"), ExtractReport)


def test_unwrap_single_folder(tmp_path: Path) -> None:
    def make(*files: str) -> Path:
        root = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        for rel in files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"x")
        return root

    nested = make("a/b/ok/1.png", "a/b/scratch/2.png", "a/.DS_Store", "__MACOSX/a/._b")
    assert unwrap_single_folder(nested) == nested / "a" / "b"
    flat = make("ok/1.png", "scratch/2.png")
    assert unwrap_single_folder(flat) == flat
    one_class = make("mydata/ok/1.png")
    assert unwrap_single_folder(one_class) == one_class / "mydata"  # not into the class folder
    with_image = make("loose.png", "inner/ok/1.png")
    assert unwrap_single_folder(with_image) == with_image
    with_csv = make("labels.csv", "images/x/1.png")
    assert unwrap_single_folder(with_csv) == with_csv
