"""The dataset check: what is there, what is wrong, and what blocks training, in plain words."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from statistics import median

from PIL import Image

from .datasets import Dataset
from .images import UnreadableImage, content_hash, open_rgb
from .parallel import ProgressFn, imap_progress

__all__ = ["CheckReport", "check_dataset", "MIN_PER_CLASS", "IMBALANCE_WARN"]

MIN_PER_CLASS = 2  # one photo to learn from, one to check on
FEW_PER_CLASS = 10
IMBALANCE_WARN = 5.0


@dataclass
class CheckReport:
    """Everything the check found. ``problems`` block training; ``warnings`` don't."""

    counts: dict[str, int]
    unreadable: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    conflicts: list[dict[str, object]] = field(default_factory=list)
    sizes: dict[str, float] = field(default_factory=dict)
    imbalance: float = 1.0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # rel -> content hash, readable images only

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self, with_hashes: bool = False) -> dict[str, object]:
        d = asdict(self)
        if not with_hashes:
            d.pop("hashes")
        d["ok"], d["total"] = self.ok, self.total
        return d


def _inspect(path: str) -> tuple[str, tuple[int, int] | None, str]:
    """(content hash, original size, error reason) of one file."""
    try:
        open_rgb(path, draft=(64, 64))  # a full (shrunk) decode: truncated files fail here
        with Image.open(path) as header:  # draft() shrinks JPEGs, so read the size from the header
            size = header.size
        return content_hash(path), size, ""
    except UnreadableImage as exc:
        return "", None, exc.reason if hasattr(exc, "reason") else str(exc)
    except OSError as exc:
        return "", None, f"can't be opened ({exc.strerror or exc})"


def check_dataset(ds: Dataset, progress: ProgressFn | None = None) -> CheckReport:
    """Open every image once and report counts, unreadable files, duplicates and balance."""
    results = list(imap_progress(_inspect, [s.path for s in ds.samples], len(ds.samples), progress))
    report = CheckReport(counts={c: 0 for c in ds.classes})
    by_hash: dict[str, list[int]] = defaultdict(list)
    widths, heights = [], []
    for i, (digest, size, reason) in enumerate(results):
        sample = ds.samples[i]
        if reason:
            report.unreadable.append({"image": sample.rel, "reason": reason})
            continue
        report.counts[sample.label] += 1
        report.hashes[sample.rel] = digest
        by_hash[digest].append(i)
        widths.append(size[0])
        heights.append(size[1])
    _duplicates(ds, by_hash, report)
    if widths:
        report.sizes = {"min_width": min(widths), "max_width": max(widths), "median_width": median(widths),
                        "min_height": min(heights), "max_height": max(heights), "median_height": median(heights)}
    _judge(ds, report)
    return report


def _duplicates(ds: Dataset, by_hash: dict[str, list[int]], report: CheckReport) -> None:
    for digest, idx in by_hash.items():
        if len(idx) < 2:
            continue
        rels = [ds.samples[i].rel for i in idx]
        labels = sorted({ds.samples[i].label for i in idx})
        report.duplicates.append(rels)
        if len(labels) > 1:
            report.conflicts.append({"images": rels, "labels": labels})


def _judge(ds: Dataset, report: CheckReport) -> None:
    counts = {c: n for c, n in report.counts.items() if n > 0}
    if len(counts) < 2:
        found = f"only '{next(iter(counts))}'" if counts else "no readable images"
        report.problems.append(f"Training needs at least 2 classes with photos; this dataset has {found}.")
    for cls, n in report.counts.items():
        if n < MIN_PER_CLASS:
            report.problems.append(f"Class '{cls}' has {n} readable photo(s); it needs at least {MIN_PER_CLASS} "
                                   "so one can be kept aside for checking. Add photos or remove the class.")
        elif n < FEW_PER_CLASS:
            report.warnings.append(f"Class '{cls}' has only {n} photos; results will be shaky below {FEW_PER_CLASS}.")
    if len(counts) >= 2:
        report.imbalance = max(counts.values()) / min(counts.values())
        if report.imbalance > IMBALANCE_WARN:
            big, small = max(counts, key=counts.get), min(counts, key=counts.get)
            report.warnings.append(f"Classes are unbalanced ({report.imbalance:.0f}:1 between '{big}' and "
                                   f"'{small}'); Graft weights the rare classes up, but more '{small}' photos would help.")
    if report.unreadable:
        report.warnings.append(f"{len(report.unreadable)} file(s) can't be read and will be skipped.")
    if report.conflicts:
        report.warnings.append(f"{len(report.conflicts)} photo(s) appear under two different labels; fix the label.")
    elif report.duplicates:
        report.warnings.append(f"{len(report.duplicates)} photo(s) appear more than once; copies are kept in one split.")
