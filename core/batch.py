"""Batch tests of many photos: folders a user may name, table rows, counts, and, when the photos sit in
class folders, how the model did against those labels (with 95% ranges)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Sequence

from .errors import GraftError
from .metrics import DEFECT_ANSWER, GOOD_ANSWER, UNCERTAIN_ANSWER, wilson_interval

__all__ = ["folder_in_workspace", "batch_rows", "batch_summary", "labels_from_folders", "batch_score",
           "per_class_found", "write_rows_csv", "rows_csv"]


def folder_in_workspace(root: str | Path, text: str) -> Path:
    """A folder the user typed, accepted only when it lies inside the workspace (the app may be shared).

    Args:
        root: the workspace folder.
        text: an absolute path, or a path relative to the workspace.

    Raises:
        GraftError: empty, outside the workspace, or not a folder.
    """
    text = (text or "").strip().strip('"')
    if not text:
        raise GraftError("Type the path of a folder of photos.")
    base = Path(root).resolve()
    path = Path(text).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    if path != base and base not in path.parents:
        raise GraftError("That folder is outside the workspace.",
                         hint=f"Copy the photos into a folder inside {base} first, or upload them as a zip.")
    if not path.is_dir():
        raise GraftError(f"There is no folder '{text}' in the workspace.")
    return path


def labels_from_folders(files: Sequence[str | Path], root: str | Path | None,
                        classes: Sequence[str]) -> list[str | None]:
    """The true class of each photo from its class folder under ``root`` (``root/scratch/a.png`` -> ``scratch``).

    The outermost folder named like one of the model's classes counts, so a zip that wraps its class
    folders in one more folder (``batch/scratch/a.png``) is labelled too. A photo in no such folder gets
    None (unlabelled).
    """
    if root is None:
        return [None] * len(files)
    known, out = set(classes), []
    for f in files:
        try:
            parts = Path(f).resolve().relative_to(Path(root).resolve()).parts
        except ValueError:
            parts = ()
        out.append(next((p for p in parts[:-1] if p in known), None))
    return out


def _verdict(p: Any, good_class: str | None) -> str | None:
    if p.error:
        return None
    if getattr(p, "verdict", None):
        return p.verdict
    if good_class is None:
        return p.label
    return GOOD_ANSWER if p.label == good_class else DEFECT_ANSWER


def batch_rows(predictions: Sequence[Any], good_class: str | None, root: str | Path | None = None,
               labels: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
    """Table rows for a batch test: photo, verdict, predicted class, confidence, defect score, flagged, problem.

    Args:
        predictions: :class:`core.predict.Prediction` objects.
        good_class: the model's good class (None: no flagged column).
        root: folder the photo names are shown relative to.
        labels: the true class per photo (e.g. from :func:`labels_from_folders`); adds ``label`` and
            ``correct`` columns.
    """
    rows = []
    for n, p in enumerate(predictions):
        name = p.source
        if root is not None:
            try:
                name = Path(p.source).relative_to(root).as_posix()
            except ValueError:
                pass
        row: dict[str, Any] = {"photo": name, "verdict": _verdict(p, good_class), "predicted": p.label,
                               "confidence": None if p.error else p.confidence}
        if good_class is not None:
            row["defect_score"] = p.defect_score
            row["flagged"] = None if p.error else p.label != good_class
        if labels is not None:
            row["label"] = labels[n]
            row["correct"] = None if p.error or labels[n] is None else p.label == labels[n]
        row["problem"] = p.error
        rows.append(row)
    return rows


def batch_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts for a batch: photos, readable, unreadable, per predicted class, flagged as defects."""
    readable = [r for r in rows if not r.get("problem")]
    per_class: dict[str, int] = {}
    for r in readable:
        per_class[str(r["predicted"])] = per_class.get(str(r["predicted"]), 0) + 1
    flagged = sum(1 for r in readable if r.get("flagged")) if any("flagged" in r for r in rows) else None
    return {"photos": len(rows), "readable": len(readable), "unreadable": len(rows) - len(readable),
            "per_class": dict(sorted(per_class.items(), key=lambda kv: -kv[1])), "flagged": flagged}


def _rate(k: int, n: int) -> dict[str, Any] | None:
    if not n:
        return None
    return {"k": int(k), "n": int(n), "value": k / n, "range": list(wilson_interval(k, n))}


def batch_score(rows: Sequence[dict[str, Any]], classes: Sequence[str], good_class: str | None) -> dict[str, Any]:
    """How the batch did against its labels: accuracy, catch rate and false alarms, each with a 95% range.

    Only readable photos with a label count. Catch rate and false alarms are decided by the threshold
    (as the ``predicted`` column); ``sent_to_person`` is the share the uncertain band would send to a person.

    Returns:
        ``n`` and, each as ``{"k", "n", "value", "range"}`` (None when nothing to count):
        ``accuracy``, ``catch_rate``, ``false_alarm_rate`` (with a good class), ``sent_to_person``.
    """
    scored = [r for r in rows if not r.get("problem") and r.get("label") in classes]
    out: dict[str, Any] = {"n": len(scored), "accuracy": _rate(sum(r["predicted"] == r["label"] for r in scored),
                                                                 len(scored)),
                           "sent_to_person": _rate(sum(r.get("verdict") == UNCERTAIN_ANSWER for r in scored),
                                                   len(scored))}
    if good_class is not None:
        defects = [r for r in scored if r["label"] != good_class]
        good = [r for r in scored if r["label"] == good_class]
        out["catch_rate"] = _rate(sum(r["predicted"] != good_class for r in defects), len(defects))
        out["false_alarm_rate"] = _rate(sum(r["predicted"] != good_class for r in good), len(good))
    return out


def per_class_found(rows: Sequence[dict[str, Any]], classes: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Per class of the model: how many of the batch's labelled photos of it the model named right.

    Returns:
        ``{class: {"k", "n", "value", "range"}}``, None for a class with no labelled photos (shown "–").
    """
    scored = [r for r in rows if not r.get("problem") and r.get("label") in classes]
    return {c: _rate(sum(r["predicted"] == c for r in scored if r["label"] == c),
                     sum(r["label"] == c for r in scored)) for c in classes}


def _fields(rows: Sequence[dict[str, Any]]) -> list[str]:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    return fields


def _write_rows(fh: Any, rows: Sequence[dict[str, Any]]) -> None:
    writer = csv.DictWriter(fh, fieldnames=_fields(rows))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else ("" if v is None else v) for k, v in r.items()})


def rows_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV text, numbers at full precision (as :func:`write_rows_csv`), e.g. for a download."""
    buf = io.StringIO(newline="")
    _write_rows(buf, rows)
    return buf.getvalue()


def write_rows_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rows as CSV; numbers at full precision (``repr``), so a score and its verdict never disagree."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        _write_rows(fh, rows)
    os.replace(tmp, path)
