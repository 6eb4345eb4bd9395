"""``python -m core``: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from .errors import GraftError

__all__ = ["main"]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a dataset")
    p.add_argument("data", nargs="?", help="folder of class folders, .zip or labels CSV")
    p.add_argument("--out", help="run folder to create")
    p.add_argument("--config", help="a config.json written by the app (instead of the options)")
    p.add_argument("--backbone", default=None)
    p.add_argument("--start", default=None, help="imagenet | scratch | file:PATH | run:RUN_DIR")
    p.add_argument("--strategy", default=None,
                   help="feature-extraction | fine-tune | progressive | multi-task | scratch")
    p.add_argument("--good-class", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--workspace", default=None, help="share the training queue of this workspace")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Graft: transfer learning for inspection photos")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="check a dataset and report problems")
    p.add_argument("data")
    p.add_argument("--json", action="store_true")
    _add_train(sub)
    p = sub.add_parser("predict", help="score photos with a trained model")
    p.add_argument("model", help="a run folder or its model/ folder")
    p.add_argument("images", nargs="+")
    p.add_argument("--csv", default=None)
    p = sub.add_parser("evaluate", help="score a model on a labelled dataset")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--json", action="store_true")
    sub.add_parser("backbones", help="list recommended backbones")
    p = sub.add_parser("synth", help="generate synthetic defect photos")
    p.add_argument("out")
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--surface", action="append", default=None)
    p.add_argument("--classes", nargs="+", default=None)
    p = sub.add_parser("report", help="write a self-contained HTML report of a finished run")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", default=None, help="HTML file to write (default RUN_DIR/report.html)")
    p = sub.add_parser("export", help="export a finished run's model (ONNX) and check it scores the same")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", default=None, help="file to write (default RUN_DIR/model.onnx)")
    _add_weights(sub)
    return parser


def _add_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="check a weights file, or download weights to carry offline")
    verbs = p.add_subparsers(dest="verb", required=True)
    c = verbs.add_parser("check", help="say whether a weights file fits a backbone, in one line")
    c.add_argument("file")
    c.add_argument("--backbone", required=True)
    c.add_argument("--image-size", type=int, default=None, help="default: the backbone's native size")
    d = verbs.add_parser("download", help="write a timm model's pretrained weights to one .safetensors file")
    d.add_argument("name", help="timm model name, e.g. resnet18.a1_in1k")
    d.add_argument("--out", required=True, help="the .safetensors file to write")


def _train_config(args: argparse.Namespace):
    from .config import RunConfig
    from .jsonio import read_json

    if args.config:
        base = read_json(args.config)
        if not isinstance(base, dict):
            raise GraftError(f"Can't read the run config '{args.config}'.")
        config = RunConfig.from_dict(base)
    else:
        if not args.data or not args.out:
            raise GraftError("Name a dataset and a run folder: python -m core train DATA --out RUN_DIR.")
        config = RunConfig(data=args.data, out=args.out)
    overrides = {k: getattr(args, k) for k in ("backbone", "start", "strategy", "good_class", "epochs", "image_size",
                                                "batch_size", "lr", "seed", "patience", "workspace")
                 if getattr(args, k) is not None}
    if args.out and args.config:
        overrides["out"] = args.out
    return config.replace(**overrides) if overrides else config


def cmd_train(args: argparse.Namespace) -> int:
    from .pipeline import train_run

    from .runs import read_status

    config = _train_config(args)
    state = train_run(config, resume=args.resume)
    status = read_status(config.out)
    print(f"{state}: {status.get('message', '')}")
    return 0 if state in ("done", "stopped") else 1


def cmd_check(args: argparse.Namespace) -> int:
    from .check import check_dataset
    from .datasets import load_dataset

    report = check_dataset(load_dataset(args.data))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(_format_report(report))
    if not report.ok:
        print(report.problems[0], file=sys.stderr)
        return 2
    return 0


def _format_report(report) -> str:
    lines = [f"{report.total} readable photos in {len(report.counts)} classes:"]
    lines += [f"  {c}: {n}" for c, n in report.counts.items()]
    lines += [f"Unreadable: {u['image']}: {u['reason']}" for u in report.unreadable]
    lines += [f"Problem: {p}" for p in report.problems] + [f"Warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from .predict import Predictor, list_images

    predictor = Predictor.load(args.model)
    rows = [p.to_row() for p in predictor.predict(list_images(args.images))]
    if args.csv:
        fields = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    for r in rows:
        extra = f"  ({r['error']})" if r.get("error") else f"  {r['confidence']:.1%}"
        print(f"{r['image']}: {r['predicted']}{extra}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_model

    metrics = evaluate_model(args.model, args.data)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"Accuracy {metrics['accuracy']:.1%}, macro-F1 {metrics['macro_f1']:.3f} on {metrics['n']} photos.")
        if metrics.get("catch_rate") is not None:
            print(f"Defects caught {metrics['catch_rate']:.1%}, false alarms {metrics['false_alarm_rate']:.1%}.")
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from .backbones import list_backbones

    for b in list_backbones():
        top1 = f"{b.top1:.1f}%" if b.top1 else "n/a"
        speed = f"train {b.train_ips:3.0f} / predict {b.infer_ips:3.0f} img/s" if b.train_ips and b.infer_ips else ""
        print(f"{b.name:43s} {b.params_m:5.1f}M params  top-1 {top1:6s} {speed}  {b.blurb}")
    print("Speeds: 224 px, bf16, on a 2-core CPU (docs/benchmarks.md). Any other timm model name works too.")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from . import synth

    kwargs = {"per_class": args.per_class, "size": args.size, "seed": args.seed, "surfaces": args.surface}
    if args.classes:
        kwargs["classes"] = args.classes
    out = synth.generate(args.out, **kwargs)
    print(f"Wrote synthetic photos to {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    print(f"Wrote the report to {build_report(args.run_dir, args.out)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    result = export_onnx(args.run_dir, args.out)
    print(f"Wrote {result.path}")
    print(result.summary(), file=sys.stdout if result.passed else sys.stderr)
    return 0 if result.passed else 1


def cmd_weights(args: argparse.Namespace) -> int:
    from .backbones import check_weights_file, download_weights

    if args.verb == "download":
        out = download_weights(args.name, args.out)
        print(f"Wrote {out}. Use it offline with --start file:{out} --backbone {args.name}.")
        return 0
    fit = check_weights_file(args.file, args.backbone, args.image_size)
    print(f"{fit.source} for {args.backbone}: {fit.summary()}")
    return 0 if fit.ok else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": cmd_check, "train": cmd_train, "predict": cmd_predict, "evaluate": cmd_evaluate,
    "backbones": cmd_backbones, "synth": cmd_synth, "report": cmd_report, "export": cmd_export,
    "weights": cmd_weights,
}


def main(argv: list[str] | None = None) -> int:
    """Run a command; user errors print one plain line on stderr and exit 2."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except GraftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
