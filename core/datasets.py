"""Datasets: folders of class subfolders, zips of them, or a CSV; with a plain-words check."""

from __future__ import annotations

import csv
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .archives import ArchiveError, safe_extract_zip, unwrap_single_folder
from .errors import GraftError
from .images import content_hash, has_image_extension

__all__ = ["Sample", "Dataset", "load_dataset", "cache_root", "check_csv_header", "SPLITS", "RESERVED_COLUMNS"]

SPLITS = ("train", "val", "test")
# Label columns Graft builds itself for multi-task runs (core.tasks.DEFECT_TASK, TYPE_TASK): a CSV column of
# the same name would be silently overwritten, so it is refused.
RESERVED_COLUMNS = {"defect": "ok vs defect", "defect_type": "which kind of defect"}
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "test": "test", "testing": "test", "holdout": "test"}


@dataclass(frozen=True)
class Sample:
    """One labelled photo. ``rel`` is its path relative to the dataset root, for display."""

    path: str
    rel: str
    label: str
    split: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    def labels(self) -> dict[str, str]:
        return {"label": self.label, **dict(self.extra)}


@dataclass
class Dataset:
    """Samples plus where they came from."""

    root: Path
    samples: list[Sample]
    source: str  # folder | zip | csv
    extra_columns: tuple[str, ...] = ()
    name: str = ""
    ignored: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted({s.label for s in self.samples})

    def counts(self) -> dict[str, int]:
        c = Counter(s.label for s in self.samples)
        return {k: c[k] for k in self.classes}

    def values(self, column: str) -> list[str]:
        """Distinct non-empty values of a label column."""
        return sorted({s.labels().get(column, "") for s in self.samples} - {""})


def cache_root() -> Path:
    """Where derived data (extracted zips, decoded images, features) is kept."""
    base = os.environ.get("GRAFT_CACHE_DIR") or Path.home() / ".cache" / "graft"
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_dataset(path: str | Path) -> Dataset:
    """Open a dataset from a folder of class folders, a ``.zip`` of one, or a labels CSV."""
    path = Path(path)
    if not path.exists():
        raise GraftError(f"The dataset '{path}' does not exist.", hint="Check the path and try again.")
    if path.is_file() and path.suffix.lower() == ".zip":
        ds = load_folder(_extract_cached(path))
        ds.source, ds.name = "zip", path.stem
        return ds
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_csv(path)
    if path.is_dir():
        csvs = [p for p in path.glob("*.csv")]
        if len(csvs) == 1 and not _class_dirs(path):
            return load_csv(csvs[0])
        return load_folder(path)
    raise GraftError(f"'{path.name}' is not a dataset.", hint="Use a folder of class folders, a .zip of one, or a CSV.")


def _extract_cached(zip_path: Path) -> Path:
    """Extract once per zip content; a second process racing on the same zip reuses the result."""
    dest = cache_root() / "zips" / content_hash(zip_path)[:16]
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            safe_extract_zip(zip_path, dest)
        except ArchiveError:
            if not dest.exists():
                raise
    return dest


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX")))


def load_folder(root: str | Path) -> Dataset:
    """Each sub-folder is a class; images anywhere below it belong to it."""
    root = unwrap_single_folder(Path(root))
    samples: list[Sample] = []
    ignored: list[str] = []
    for class_dir in _class_dirs(root):
        label = unicodedata.normalize("NFC", class_dir.name)
        for file in sorted(class_dir.rglob("*")):
            if not file.is_file() or file.is_symlink():
                continue
            rel = file.relative_to(root).as_posix()
            if has_image_extension(file):
                samples.append(Sample(str(file), rel, label))
            elif not file.name.startswith("."):
                ignored.append(rel)
    loose = [p.name for p in root.iterdir() if p.is_file() and has_image_extension(p)]
    if loose and not samples:
        raise GraftError("The images are not in class folders.",
                         hint="Put each class's photos in its own folder (for example ok/ and scratch/).")
    return Dataset(root=root, samples=samples, source="folder", name=root.name, ignored=ignored)


def load_csv(csv_path: str | Path) -> Dataset:
    """Columns ``image`` (relative to the CSV) and ``label``; optional ``split``; others are extra tasks."""
    csv_path = Path(csv_path)
    root = csv_path.parent.resolve()
    rows = _read_csv_rows(csv_path)
    fields = list(rows[0].keys()) if rows else []
    extra = tuple(c for c in fields if c not in ("image", "label", "split"))
    samples = [_csv_sample(root, row, extra, n) for n, row in enumerate(rows, start=2)]
    return Dataset(root=root, samples=samples, source="csv", extra_columns=extra, name=csv_path.stem)


def check_csv_header(fields: list[str]) -> list[str]:
    """The CSV's column names, lower-case; refuses a missing image/label, a duplicate or a reserved name.

    Raises:
        GraftError: in plain words, naming the column.
    """
    names = [(f or "").strip().lower() for f in fields]
    if "image" not in names or "label" not in names:
        raise GraftError("The CSV needs the columns 'image' and 'label'.",
                         hint="Add a header row: image,label (and optionally split).")
    seen = Counter(n for n in names if n)
    twice = sorted(n for n, k in seen.items() if k > 1)
    if twice:
        raise GraftError(f"The CSV has the column '{twice[0]}' more than once.",
                         hint="Give every column its own name (names are compared without case).")
    reserved = [n for n in names if n in RESERVED_COLUMNS]
    if reserved:
        raise GraftError(f"The CSV column '{reserved[0]}' has the name of a question Graft asks itself "
                         f"({RESERVED_COLUMNS[reserved[0]]}).",
                         hint=f"Rename the column (for example '{reserved[0]}_label') and import it again.")
    return names


def _read_csv_rows(csv_path: Path) -> list[dict[str, str]]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            check_csv_header(list(reader.fieldnames or []))
            return [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except UnicodeDecodeError:
        raise GraftError("The CSV is not UTF-8 text.", hint="Save it as 'CSV UTF-8' and try again.") from None
    except csv.Error as exc:
        raise GraftError(f"The CSV can't be read ({exc}).") from None


def _csv_sample(root: Path, row: dict[str, str], extra: tuple[str, ...], line: int) -> Sample:
    rel, label = row.get("image", ""), row.get("label", "")
    if not rel or not label:
        raise GraftError(f"Line {line} of the CSV has no image or no label.")
    path = confined(root, rel, what=f"line {line} of the CSV")
    split = row.get("split") or None
    if split is not None:
        if split.lower() not in _SPLIT_ALIASES:
            raise GraftError(f"Line {line} of the CSV has split '{split}'.", hint="Use train, val or test.")
        split = _SPLIT_ALIASES[split.lower()]
    extras = tuple((c, row.get(c, "")) for c in extra)
    return Sample(str(path), Path(rel).as_posix(), unicodedata.normalize("NFC", label), split, extras)


def confined(root: Path, rel: str, *, what: str) -> Path:
    """Resolve ``rel`` under ``root`` and refuse anything that escapes it (``..``, absolute, links)."""
    candidate = Path(rel.replace("\\", "/"))
    if candidate.is_absolute() or candidate.drive:
        raise GraftError(f"The path in {what} must be relative to the dataset, not absolute.")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise GraftError(f"The path in {what} points outside the dataset's folder.")
    return resolved
