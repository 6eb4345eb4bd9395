"""Splice freshly run sections into an existing report, so one section can be rerun alone.

``python -m bench --only real --merge`` reruns section 7 and replaces it (and its rows of the goals
table) in ``docs/benchmarks.md``, keeping every other section as it was measured.
"""

from __future__ import annotations

import re
import time

__all__ = ["merge_reports"]

_HEADING = re.compile(r"^## (\d+)\. ", re.M)


def _sections(text: str) -> dict[str, str]:
    """Numbered ``## N. Title`` blocks by their title line."""
    starts = [m.start() for m in _HEADING.finditer(text)] + [len(text)]
    return {text[a:b].split("\n", 1)[0]: text[a:b].rstrip() + "\n" for a, b in zip(starts, starts[1:])}


def _goal_rows(text: str) -> list[str]:
    block = text.split("## Goals", 1)[1] if "## Goals" in text else ""
    return [line for line in block.split("\n## ", 1)[0].splitlines() if line.startswith("| ")
            and not line.startswith("| section |")]


def _title(row: str) -> str:
    return row.split("|")[1].strip()


def _number(heading: str) -> int:
    return int(_HEADING.match(heading + " ").group(1))  # type: ignore[union-attr]


def merge_reports(old: str, new: str) -> str:
    """``old`` with the numbered sections of ``new`` put in (replaced or added) and the goals table updated."""
    fresh = _sections(new)
    titles = {h[3:] for h in fresh}
    stamp = time.strftime("%Y-%m-%d")
    fresh = {h: body.rstrip() + f"\n- Rerun alone with `python -m bench --only ... --merge` on {stamp}.\n"
             for h, body in fresh.items()}
    sections = {**_sections(old), **fresh}
    rows = [r for r in _goal_rows(old) if _title(r) not in titles] + _goal_rows(new)
    rows.sort(key=lambda r: int(_title(r).split(".")[0]) if _title(r)[:1].isdigit() else 0)
    head = old.split("## Goals", 1)[0] if "## Goals" in old else old.split("\n## ", 1)[0] + "\n"
    goals = "## Goals\n\n| section | goal | result |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
    first = _HEADING.search(old)
    between = old[old.index("## Goals"):first.start()] if "## Goals" in old and first else ""
    parts = between.split("\n\n", 2)  # "## Goals", its table, then the load warning and section times
    notes = parts[2] if len(parts) == 3 else ""
    body = "\n".join(sections[h] for h in sorted(sections, key=_number))
    return head + goals + (notes.rstrip() + "\n\n" if notes.strip() else "") + body
