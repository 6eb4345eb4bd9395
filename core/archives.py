"""Safe extraction of a user's zip of class folders.

Decisions other modules can rely on:

* Nothing is written outside ``dest``. Members with absolute paths, drive letters, ``..``
  parts, or symlink modes are *skipped* (listed in :class:`ExtractReport.unsafe`),
  not followed; backslashes count as separators. Files are created with
  ``open(..., "xb")``: never through an existing link, never with the zip's permissions.
* Only images (``core.images.IMAGE_EXTENSIONS``) and ``.csv`` files are kept; everything
  else, nested zips included, is skipped without being opened. OS clutter is ignored.
* Zip bombs: the member count and the declared sizes are checked before anything is
  written, then every member is streamed in chunks and the bytes actually read are
  counted against the per-file, total and compression-ratio limits.
* All or nothing: members go to a hidden temp folder next to ``dest`` (same filesystem),
  which is renamed to ``dest`` only when every member is written; on any failure it is
  removed, so ``dest`` never holds a partial dataset.
* Names are decoded as zipfile does (UTF-8 when flagged, else cp437), then normalised to
  Unicode NFC. Members are processed in sorted name order and a path that differs from an
  earlier one only by case or normalisation gets a suffix: ``a.png`` then ``A (2).png``,
  ``OK/`` then ``ok (2)/``, so the result is the same for the same zip on any filesystem.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.errors import GraftError
from core.images import has_image_extension, is_junk_name

__all__ = [
    "ZipLimits",
    "ArchiveError",
    "ExtractReport",
    "is_junk_name",
    "safe_extract_zip",
    "extract_zip",
    "unwrap_single_folder",
]

_log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
# Small members may compress extremely well legitimately (a flat BMP, a CSV);
# the ratio limit only applies once a member has produced this much.
_RATIO_MIN_BYTES = 1024 * 1024
_ENCRYPTED_FLAG = 0x1
_SPLIT_HINT = "Split it into smaller uploads"
_DAMAGE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError)


class ArchiveError(GraftError):
    """A zip Graft refuses to extract; the message says why in plain words."""


@dataclass(frozen=True)
class ZipLimits:
    """Limits that stop zip bombs; :meth:`from_env` applies the environment overrides."""

    max_members: int = 20_000
    max_total_bytes: int = 4 * 1024**3
    max_member_bytes: int = 256 * 1024**2
    max_ratio: float = 200.0

    @classmethod
    def from_env(cls) -> ZipLimits:
        """Defaults, with ``GRAFT_ZIP_MAX_MEMBERS`` and ``GRAFT_ZIP_MAX_BYTES`` applied.

        Raises:
            GraftError: a variable is set but is not a positive whole number.
        """
        return cls(
            max_members=_env_int("GRAFT_ZIP_MAX_MEMBERS", cls.max_members),
            max_total_bytes=_env_int("GRAFT_ZIP_MAX_BYTES", cls.max_total_bytes),
        )


@dataclass(frozen=True)
class ExtractReport:
    """What :func:`extract_zip` did, for telling the user.

    Attributes:
        root: the extracted folder (``dest``).
        files: relative POSIX paths written, in order.
        renamed: ``(name in the zip, name written)`` for case/normalisation clashes.
        unsafe: member names skipped because they point outside the folder or are links.
        skipped: count of other files skipped (not an image or CSV; nested zips too).
        junk: count of OS clutter entries ignored (``__MACOSX/``, ``._*``, ``.DS_Store``...).
    """

    root: Path
    files: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    unsafe: tuple[str, ...] = ()
    skipped: int = 0
    junk: int = 0

    def notes(self) -> list[str]:
        """Plain sentences about anything left out or renamed (empty when nothing was)."""
        notes = []
        if self.unsafe:
            notes.append(f"{len(self.unsafe)} file(s) were skipped because their names point "
                         f"outside the folder or they are links: {', '.join(self.unsafe[:3])}.")
        if self.skipped:
            notes.append(f"{self.skipped} file(s) that are not images or CSV were skipped.")
        if self.renamed:
            notes.append(f"{len(self.renamed)} file(s) were renamed because their names differ "
                         "only by upper/lower case or accents.")
        return notes


@dataclass
class _Plan:
    members: list[tuple[zipfile.ZipInfo, str]] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    skipped: int = 0
    junk: int = 0


def safe_extract_zip(
    zip_path: str | Path, dest: str | Path, limits: ZipLimits | None = None
) -> Path:
    """Extract a zip of class folders into ``dest`` (which must not exist yet).

    See :func:`extract_zip`; this returns only the folder.

    Returns:
        ``dest`` as a ``Path``.
    """
    return extract_zip(zip_path, dest, limits).root


def extract_zip(
    zip_path: str | Path, dest: str | Path, limits: ZipLimits | None = None
) -> ExtractReport:
    """Extract images and CSV files from an untrusted zip, all or nothing.

    Args:
        zip_path: the uploaded zip.
        dest: folder to create; its parent is created if needed.
        limits: zip-bomb limits; default :meth:`ZipLimits.from_env`.

    Returns:
        An :class:`ExtractReport` whose ``root`` is ``dest``.

    Raises:
        ArchiveError: not a zip, damaged, encrypted, over a limit, no images, or ``dest``
            already exists. ``dest`` then does not exist and no temp folder remains.
    """
    limits = limits or ZipLimits.from_env()
    zip_path, dest = Path(zip_path), Path(dest)
    label = zip_path.name
    if dest.exists():
        raise _dest_exists(label, dest)
    with _open_zip(zip_path) as archive:
        plan = _plan(archive.infolist(), limits, label)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
        try:
            _write_all(archive, plan.members, tmp, limits, zip_path.stat().st_size)
            _move_into_place(tmp, dest, label)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    for name in plan.unsafe:
        _log.warning("skipped unsafe zip member %r in %s", name, label)
    return ExtractReport(
        root=dest, files=tuple(rel for _, rel in plan.members), renamed=tuple(plan.renamed),
        unsafe=tuple(plan.unsafe), skipped=plan.skipped, junk=plan.junk,
    )


def unwrap_single_folder(root: str | Path) -> Path:
    """Descend through wrapper folders, e.g. ``root/mydata/{ok,scratch}`` -> ``root/mydata``.

    A folder is a wrapper when it holds exactly one sub-folder (hidden and junk ones don't
    count), no images or CSV files, and that sub-folder has sub-folders of its own.
    The last condition keeps a one-class dataset (``root/ok/*.png``) from being unwrapped
    into its class folder.

    Args:
        root: the folder to start from.

    Returns:
        The innermost folder that is not a wrapper (``root`` itself when it is not one).
    """
    root = Path(root)
    while True:
        folders, has_data = _folder_contents(root)
        if len(folders) != 1 or has_data or not _folder_contents(folders[0])[0]:
            return root
        root = folders[0]


# --- planning (nothing written yet) ---------------------------------------------------


@contextmanager
def _open_zip(zip_path: Path) -> Iterator[zipfile.ZipFile]:
    label = zip_path.name
    if not zip_path.is_file():
        raise ArchiveError(f"{label} was not found.")
    try:
        if not zipfile.is_zipfile(zip_path):
            raise ArchiveError(f"{label} is not a zip file.",
                               hint="Upload a .zip made with your computer's 'Compress' command.")
        archive = zipfile.ZipFile(zip_path)
    except (*_DAMAGE_ERRORS, UnicodeDecodeError, NotImplementedError):
        raise ArchiveError(f"{label} is damaged and can't be opened.",
                           hint="Create or download the zip again.") from None
    with archive:
        yield archive


def _plan(infos: list[zipfile.ZipInfo], limits: ZipLimits, label: str) -> _Plan:
    """Decide what to extract and under which names; refuse before writing anything."""
    if len(infos) > limits.max_members:
        raise ArchiveError(
            f"{label} holds {len(infos):,} files; the limit is {limits.max_members:,}.",
            hint=f"{_SPLIT_HINT} or raise GRAFT_ZIP_MAX_MEMBERS.")
    plan, namer = _Plan(), _Namer()
    # Sorted so suffixes for clashing names don't depend on the zip's member order.
    for name, info in sorted(((_nfc(i.filename), i) for i in infos), key=_sort_key):
        if info.is_dir():
            continue
        if is_junk_name(name):
            plan.junk += 1
        elif (parts := _safe_parts(name)) is None or _is_link(info):
            plan.unsafe.append(info.filename)
        elif not _wanted(parts[-1]):
            plan.skipped += 1
        else:
            if info.flag_bits & _ENCRYPTED_FLAG:
                raise ArchiveError(f"{label} is password-protected.",
                                   hint="Create the zip again without a password.")
            rel = namer.assign(parts)
            if rel != "/".join(parts):
                plan.renamed.append((info.filename, rel))
            plan.members.append((info, rel))
    _check_declared(plan.members, limits, label)
    if not any(has_image_extension(rel) for _, rel in plan.members):
        raise ArchiveError(f"{label} contains no images.",
                           hint="Use JPEG, PNG, BMP, TIFF or WebP files in class folders.")
    return plan


def _sort_key(item: tuple[str, zipfile.ZipInfo]) -> tuple[str, str]:
    return item[0], item[1].filename  # raw name breaks NFC/NFD ties stably


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _safe_parts(name: str) -> list[str] | None:
    """Path parts of a member name, or None when it could escape the folder."""
    path = name.replace("\\", "/")
    if path.startswith("/"):
        return None  # absolute, or a UNC path like //server/share
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or ":" in parts[0]:
        return None  # ":" in the first part: a drive (C:) or drive-relative path (C:x)
    if any("\0" in p or len(p.encode("utf-8")) > 255 for p in parts):
        return None
    return parts


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _wanted(basename: str) -> bool:
    return has_image_extension(basename) or basename.lower().endswith(".csv")


def _check_declared(
    members: list[tuple[zipfile.ZipInfo, str]], limits: ZipLimits, label: str
) -> None:
    """Refuse early on the sizes the zip declares (reading enforces them again)."""
    total = 0
    for info, _ in members:
        _check_member(info.filename, info.file_size, info.compress_size, limits)
        total += info.file_size
    _check_total(total, limits, label)


def _check_member(name: str, size: int, compressed: int, limits: ZipLimits) -> None:
    if size > limits.max_member_bytes:
        raise ArchiveError(
            f"{name} in the zip would unpack to more than {_human(limits.max_member_bytes)}.",
            hint="No single image should be that large; check the file.")
    if size > _RATIO_MIN_BYTES and size > limits.max_ratio * max(compressed, 1):
        raise ArchiveError(
            f"{name} in the zip expands more than {limits.max_ratio:g} times its compressed "
            "size, which is how zip bombs work; the zip was not extracted.")


def _check_total(total: int, limits: ZipLimits, label: str) -> None:
    if total > limits.max_total_bytes:
        raise ArchiveError(
            f"{label} would unpack to more than {_human(limits.max_total_bytes)}.",
            hint=f"{_SPLIT_HINT} or raise GRAFT_ZIP_MAX_BYTES.")


class _Namer:
    """Assigns each member a path unique even on case-insensitive filesystems."""

    def __init__(self) -> None:
        self._folders: dict[tuple[str, str], str] = {}
        self._taken: set[str] = set()

    def assign(self, parts: list[str]) -> str:
        parent = ""
        for part in parts[:-1]:
            key = (parent, part)  # same exact spelling -> same folder
            if key not in self._folders:
                self._folders[key] = self._unique(parent, part, part, "")
            parent = self._folders[key]
        stem, suffix = _split_suffix(parts[-1])
        return self._unique(parent, parts[-1], stem, suffix)

    def _unique(self, parent: str, name: str, stem: str, suffix: str) -> str:
        candidate, n = name, 2
        while _fold(_join(parent, candidate)) in self._taken:
            candidate, n = f"{stem} ({n}){suffix}", n + 1
        path = _join(parent, candidate)
        self._taken.add(_fold(path))
        return path


def _split_suffix(name: str) -> tuple[str, str]:
    suffix = PurePosixPath(name).suffix
    return (name[: -len(suffix)], suffix) if suffix else (name, "")


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _fold(path: str) -> str:
    return _nfc(path.casefold())


# --- writing --------------------------------------------------------------------------


def _write_all(
    archive: zipfile.ZipFile,
    members: list[tuple[zipfile.ZipInfo, str]],
    tmp: Path,
    limits: ZipLimits,
    zip_size: int,
) -> None:
    label = Path(archive.filename or "the zip").name
    total = 0
    for info, rel in members:
        target = tmp.joinpath(*rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            total += _copy_member(archive, info, target, limits, total, zip_size)
        except _DAMAGE_ERRORS:
            raise ArchiveError(f"{label} is damaged: {info.filename} fails its integrity check.",
                               hint="Create or download the zip again.") from None
        except NotImplementedError:
            raise ArchiveError(f"{info.filename} in {label} uses a compression method Graft "
                               "can't unpack.", hint="Create the zip again with standard "
                               "(Deflate) compression.") from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ArchiveError(f"The disk is full while extracting {label}.",
                                   hint="Free some space and try again.") from None
            raise


def _copy_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    limits: ZipLimits,
    total_before: int,
    zip_size: int,
) -> int:
    """Stream one member to ``target``, counting the bytes actually read; return the count."""
    label = Path(archive.filename or "the zip").name
    # zipfile reads at most compress_size bytes, and never more than the file holds.
    compressed = min(info.compress_size, zip_size)
    done = 0
    with archive.open(info) as src, open(target, "xb") as dst:
        while chunk := src.read(_CHUNK):
            done += len(chunk)
            _check_member(info.filename, done, compressed, limits)
            _check_total(total_before + done, limits, label)
            dst.write(chunk)
    return done


def _move_into_place(tmp: Path, dest: Path, label: str) -> None:
    try:
        os.rename(tmp, dest)  # atomic on one filesystem
    except OSError:
        if dest.exists():  # another extraction won the race; never merge into it
            raise _dest_exists(label, dest) from None
        raise


def _dest_exists(label: str, dest: Path) -> ArchiveError:
    return ArchiveError(f"Can't extract {label}: the folder {dest.name} already exists.")


# --- helpers --------------------------------------------------------------------------


def _folder_contents(folder: Path) -> tuple[list[Path], bool]:
    """(visible sub-folders, whether it holds images or CSV files) of one folder."""
    folders, has_data = [], False
    for entry in folder.iterdir():
        if is_junk_name(entry.name) or entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            folders.append(entry)
        elif entry.is_file() and _wanted(entry.name):
            has_data = True
    return sorted(folders), has_data


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace(",", "").replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise GraftError(f"{name} must be a positive whole number, not {raw!r}.",
                         hint=f"Unset it to use the default of {default:,}.")
    return value


def _human(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
