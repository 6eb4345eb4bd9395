"""The dataset check: what is there, what is wrong, and what blocks training, in plain words."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from statistics import median
from typing import NamedTuple

from PIL import Image

from .copies import Look, copy_groups, look_of, members, near_copy_pairs
from .datasets import Dataset
from .images import HIGH_BIT_MODES, UnreadableImage, content_hash, high_bit_max, open_rgb
from .parallel import ProgressFn, imap_progress
from .preprocess import choose_bit_depth, choose_resize

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
    near_duplicates: list[list[str]] = field(default_factory=list)  # sets joined by near-copies, not only exact ones
    split_leaks: list[dict[str, object]] = field(default_factory=list)  # copies the CSV puts in different splits
    aspect: dict[str, float] = field(default_factory=dict)  # width / height: min, max, median, spread (max / min)
    resize: str = "squash"  # the resize method the photos' shapes call for (see core.preprocess.choose_resize)
    high_bit: dict[str, int] = field(default_factory=dict)  # 16-bit photos: photos, max_value, bit_depth
    hashes: dict[str, str] = field(default_factory=dict)  # rel -> content hash, readable images only
    groups: dict[str, int] = field(default_factory=dict)  # rel -> copy group (exact and near-copies), readable only
    looks: dict[str, str] = field(default_factory=dict)  # rel -> perceptual hash (hex), readable only

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def bit_depth(self) -> int | None:
        """The scale for this dataset's 16-bit photos (None: there are none)."""
        return self.high_bit.get("bit_depth") if self.high_bit else None

    def to_dict(self, with_hashes: bool = False) -> dict[str, object]:
        d = asdict(self)
        if not with_hashes:
            for key in ("hashes", "groups", "looks"):
                d.pop(key)
        d["ok"], d["total"] = self.ok, self.total
        return d


class _Facts(NamedTuple):
    digest: str
    size: tuple[int, int] | None
    reason: str
    look: Look | None = None
    raw_max: int | None = None  # the largest value of a 16-bit photo


def _inspect(path: str) -> _Facts:
    """Content hash, upright size, look and 16-bit maximum of one file, or why it can't be read."""
    try:
        image = open_rgb(path, draft=(64, 64))  # a full (shrunk) decode: truncated files fail here
        with Image.open(path) as header:  # draft() shrinks JPEGs, so read the size from the header
            size = header.size
            raw_max = high_bit_max(header) if header.mode in HIGH_BIT_MODES else None
        if raw_max is not None:  # on its own scale, so a 12-bit photo's look isn't near-black (all "copies")
            image = open_rgb(path, draft=(64, 64), bit_depth=choose_bit_depth(raw_max))
        if size[0] != size[1] and (image.width > image.height) != (size[0] > size[1]):
            size = (size[1], size[0])  # EXIF turned it upright
        return _Facts(content_hash(path), size, "", look_of(image), raw_max)
    except UnreadableImage as exc:
        return _Facts("", None, exc.reason if hasattr(exc, "reason") else str(exc))
    except OSError as exc:
        return _Facts("", None, f"can't be opened ({exc.strerror or exc})")


def check_dataset(ds: Dataset, progress: ProgressFn | None = None, good_only: str | None = None) -> CheckReport:
    """Open every image once and report counts, unreadable files, copies, shapes, bit depth and balance.

    Args:
        good_only: the good class, for good-parts-only (anomaly) training: then one class is enough,
            the other classes are optional, and fewer than 10 good photos only warn.
    """
    results = list(imap_progress(_inspect, [s.path for s in ds.samples], len(ds.samples), progress))
    report = CheckReport(counts={c: 0 for c in ds.classes})
    readable: list[int] = []
    for i, facts in enumerate(results):
        sample = ds.samples[i]
        if facts.reason:
            report.unreadable.append({"image": sample.rel, "reason": facts.reason})
            continue
        report.counts[sample.label] += 1
        report.hashes[sample.rel] = facts.digest
        report.looks[sample.rel] = facts.look.hex
        readable.append(i)
    _copies(ds, readable, results, report)
    _shapes([results[i] for i in readable], report)
    _judge(ds, report, good_only)
    return report


def _copies(ds: Dataset, readable: list[int], results: list[_Facts], report: CheckReport) -> None:
    """Exact copies, near-copies, conflicting labels, and copies a fixed split puts on both sides."""
    digests = [results[i].digest for i in readable]
    near = near_copy_pairs([results[i].look for i in readable])
    groups = copy_groups(len(readable), digests, near)
    for k, i in enumerate(readable):
        report.groups[ds.samples[i].rel] = readable[groups[k]]
    by_hash: dict[str, list[int]] = defaultdict(list)
    for k, digest in enumerate(digests):
        by_hash[digest].append(readable[k])
    for idx in by_hash.values():
        if len(idx) > 1:
            rels = [ds.samples[i].rel for i in idx]
            report.duplicates.append(rels)
            labels = sorted({ds.samples[i].label for i in idx})
            if len(labels) > 1:
                report.conflicts.append({"images": rels, "labels": labels})
    for idx in members(groups).values():
        samples = [ds.samples[readable[k]] for k in idx]
        if len({results[readable[k]].digest for k in idx}) > 1:
            report.near_duplicates.append([s.rel for s in samples])
        fixed = sorted({s.split for s in samples if s.split})
        if len(fixed) > 1:
            report.split_leaks.append({"images": [s.rel for s in samples if s.split],
                                       "splits": [s.split for s in samples if s.split]})


def _shapes(found: list[_Facts], report: CheckReport) -> None:
    """Sizes, the spread of aspect ratios (and the resize it calls for), and the 16-bit scale."""
    if not found:
        return
    widths, heights = [f.size[0] for f in found], [f.size[1] for f in found]
    report.sizes = {"min_width": min(widths), "max_width": max(widths), "median_width": median(widths),
                    "min_height": min(heights), "max_height": max(heights), "median_height": median(heights)}
    ratios = [w / h for w, h in zip(widths, heights) if h]
    report.aspect = {"min": min(ratios), "max": max(ratios), "median": median(ratios),
                     "spread": max(ratios) / min(ratios)}
    report.resize = choose_resize(report.aspect["min"], report.aspect["max"])
    high = [f.raw_max for f in found if f.raw_max is not None]
    if high:
        report.high_bit = {"photos": len(high), "max_value": max(high), "bit_depth": choose_bit_depth(max(high))}


def _judge(ds: Dataset, report: CheckReport, good_only: str | None = None) -> None:
    if good_only is not None:
        _judge_good_parts(report, good_only)
    else:
        _judge_classes(report)
    _judge_files(report)


def _judge_good_parts(report: CheckReport, good: str) -> None:
    """Good-parts-only mode learns from the good class alone; defect classes are only for checking."""
    n = report.counts.get(good, 0)
    if n < MIN_PER_CLASS:
        found = f"has {n} readable photo(s) in '{good}'" if good in report.counts else f"has no class '{good}'"
        report.problems.append(f"Good-parts-only mode learns from photos of good parts, and this dataset {found}. "
                               f"Put at least {MIN_PER_CLASS} photos of good parts (better 10 or more) in a "
                               "folder for the good class and name it as the good class.")
    elif n < FEW_PER_CLASS:
        report.warnings.append(f"Only {n} photos of good parts: the threshold that decides 'defect' is set on a few "
                               f"of them and will be shaky below {FEW_PER_CLASS}. Add good photos.")


def _judge_classes(report: CheckReport) -> None:
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


def _judge_files(report: CheckReport) -> None:
    if report.unreadable:
        report.warnings.append(f"{len(report.unreadable)} file(s) can't be read and will be skipped.")
    if report.conflicts:
        report.warnings.append(f"{len(report.conflicts)} photo(s) appear under two different labels; fix the label.")
    _copy_warnings(report)
    if report.resize == "pad":
        report.warnings.append(f"The photos have different shapes (width / height from {report.aspect['min']:.2f} "
                               f"to {report.aspect['max']:.2f}); Graft pads them to squares instead of squashing, "
                               "so a scratch keeps its shape.")


def _copy_warnings(report: CheckReport) -> None:
    if report.split_leaks:
        shown = "; ".join(" and ".join(f"{img} ({sp})" for img, sp in zip(leak["images"], leak["splits"]))
                          for leak in report.split_leaks[:3])
        more = f" and {len(report.split_leaks) - 3} more" if len(report.split_leaks) > 3 else ""
        report.warnings.append(f"{len(report.split_leaks)} set(s) of copies sit in different splits fixed by the "
                               f"CSV, which flatters the test score: {shown}{more}. Put each set in one split.")
    sets = len(report.duplicates) + len(report.near_duplicates)
    if sets and not report.conflicts:
        kept = ("Graft keeps each set in one split (or fold) wherever the CSV leaves the split free"
                if report.split_leaks else "Graft keeps each set in one split (or fold)")
        kinds = [f"{len(report.duplicates)} exact" if report.duplicates else "",
                 f"{len(report.near_duplicates)} near-copy" if report.near_duplicates else ""]
        report.warnings.append(f"{sets} set(s) of photos appear more than once ({' and '.join(k for k in kinds if k)}"
                               f"; near-copies are e.g. re-saved or resized copies); {kept}.")
