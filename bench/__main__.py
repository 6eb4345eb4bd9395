"""``python -m bench [--quick] [--out docs/benchmarks.md] [--only SECTION,... [--merge]]``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import SECTIONS, run_all  # noqa: E402
from bench.merge import merge_reports  # noqa: E402
from bench.profiles import PROFILES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Graft's benchmark (writes a Markdown report)")
    parser.add_argument("--quick", action="store_true", help="small settings, about 2 minutes")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="report file (plots go next "
                        "to it in bench/)")
    parser.add_argument("--only", default="", help=f"comma-separated sections: {','.join(SECTIONS)} (the report "
                        "then holds only these; use another --out to keep the full one)")
    parser.add_argument("--merge", action="store_true", help="with --only: put the rerun sections into the existing "
                        "report (replacing them and their goals) instead of writing a report of only these")
    parser.add_argument("--pretrained", default=None, metavar="RUN_DIR",
                        help="section 5: transfer from this finished Graft run instead of pretraining within the "
                        "time budget")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()] or None
    unknown = sorted(set(only or []) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    t0 = time.perf_counter()
    profile = PROFILES["quick" if args.quick else "full"]
    if args.pretrained:
        profile = dataclasses.replace(profile, transfer=dataclasses.replace(profile.transfer,
                                                                              pretrained=args.pretrained))
    out = Path(args.out)
    merge = args.merge and only and out.is_file()
    target = out.with_name(out.stem + ".rerun.md") if merge else out
    sections, text = run_all(profile, target, only)
    if merge:
        out.write_text(merge_reports(out.read_text(encoding="utf-8"), text), encoding="utf-8")
        target.unlink()
    missed = [f"{s.title}: {g.name}: {g.verdict()}" for s in sections for g in s.goals if not g.met]
    print(f"Wrote {args.out} in {time.perf_counter() - t0:.0f} s.")
    for line in missed:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
