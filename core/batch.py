"""Batch tests of many photos: folders a user may name, table rows and counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .errors import GraftError

__all__ = ["folder_in_workspace", "batch_rows", "batch_summary"]


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


def batch_rows(predictions: Sequence[Any], good_class: str | None, root: str | Path | None = None) -> list[dict[str, Any]]:
    """Table rows for a batch test: photo, verdict, confidence, defect score, flagged, problem.

    Args:
        predictions: :class:`core.predict.Prediction` objects.
        good_class: the model's good class (None: no flagged column).
        root: folder the photo names are shown relative to.
    """
    rows = []
    for p in predictions:
        name = p.source
        if root is not None:
            try:
                name = Path(p.source).relative_to(root).as_posix()
            except ValueError:
                pass
        row: dict[str, Any] = {"photo": name, "predicted": p.label, "confidence": None if p.error else p.confidence}
        if good_class is not None:
            row["defect_score"] = p.defect_score
            row["flagged"] = None if p.error else p.label != good_class
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
