"""Render the sections as ``docs/benchmarks.md``."""

from __future__ import annotations

from typing import Any

from .common import Section, Table

__all__ = ["render"]

BUSY = 0.5  # load average per core above which timings are flagged as unreliable


def _table(t: Table) -> list[str]:
    lines = ["| " + " | ".join(t.headers) + " |", "|" + "---|" * len(t.headers)]
    lines += ["| " + " | ".join(row) + " |" for row in t.rows]
    return lines + [""]


def _machine(m: dict[str, Any]) -> list[str]:
    return [
        "| | |", "|---|---|",
        f"| date | {m['date']} |",
        f"| CPU | {m['cpu']} |",
        f"| cores | {m['physical_cores']} physical, {m['logical_cores']} logical |",
        f"| native bf16 (`core.device.cpu_supports_bf16()`) | {'yes' if m['bf16'] else 'no'} |",
        f"| RAM | {m['ram_gb']} GB |",
        f"| software | Python {m['python']}, torch {m['torch']}, timm {m['timm']}, {m['os']} |",
        f"| load average at start | {m['load_avg_1m']} (above {BUSY * m['physical_cores']:.1f} means other work "
        "shared the CPU) |",
        "",
    ]


def _goals_summary(sections: list[Section]) -> list[str]:
    lines = ["| section | goal | result |", "|---|---|---|"]
    for s in sections:
        for g in s.goals:
            lines.append(f"| {s.title} | {g.name} | {g.verdict()} |")
    return lines + [""]


def _section(s: Section) -> list[str]:
    lines = [f"## {s.title}", "", s.intro, ""]
    for g in s.goals:
        lines.append(f"- **Goal:** {g.name}: **{g.verdict()}**")
    if s.goals:
        lines.append("")
    for t in s.tables:
        lines += _table(t)
    for link in s.plots:
        lines += [f"![{s.title}]({link})", ""]
    if s.code:
        lines += ["```python", s.code, "```", ""]
    lines += [f"- {n}" for n in s.notes]
    lines += [f"- Section time {s.seconds:.0f} s; load average at its start {s.load_before:.2f}.", ""]
    return lines


def render(sections: list[Section], machine: dict[str, Any], profile: str, total_s: float) -> str:
    """The whole report as Markdown."""
    command = "python -m bench" + (" --quick" if profile == "quick" else "")
    mode = {"full": "", "quick": " Quick settings (small sizes, few repeats): indicative only."}.get(
        profile, f" Profile '{profile}'.")
    lines = ["# Graft benchmarks", "",
             f"Written by `{command}` in {total_s / 60:.1f} min.{mode} "
             "Nothing is downloaded: sections 1-6 start every backbone from random weights on generated photos "
             "(`core.synth`); section 7 uses the real photos and ImageNet weights of `../shared`. Rerun with `python -m bench` on a quiet machine; timings shift when other "
             "programs use the CPU.", "",
             "## Machine", ""] + _machine(machine)
    lines += ["## Goals", ""] + _goals_summary(sections)
    # Only the load before the first section tells of other programs: later readings lag and
    # include the benchmark's own work.
    start_load = machine["load_avg_1m"]
    if start_load > BUSY * machine["physical_cores"]:
        lines += [f"**Other programs were using the CPU when this run started** (1-minute load average "
                  f"{start_load:.1f} on {machine['physical_cores']} cores): the timings and the timing goals above "
                  "may be pessimistic. Rerun on a quiet machine.", ""]
    lines += ["Section times: " + ", ".join(f"{s.key} {s.seconds:.0f} s" for s in sections) + ".", ""]
    for s in sections:
        lines += _section(s)
    return "\n".join(lines).rstrip() + "\n"
