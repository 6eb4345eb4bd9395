"""``python -m core``: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from .errors import GraftError
from .numbers import fmt_pct, fmt_range

__all__ = ["main"]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a dataset")
    p.add_argument("data", nargs="?", help="folder of class folders, .zip or labels CSV")
    p.add_argument("--out", help="run folder to create")
    p.add_argument("--config", help="a config.json written by the app (instead of the options)")
    p.add_argument("--backbone", default=None)
    p.add_argument("--start", default=None, help="imagenet | scratch | file:PATH | run:RUN_DIR")
    p.add_argument("--strategy", default=None,
                   help="feature-extraction | fine-tune | progressive | multi-task | scratch | anomaly (good parts "
                        "only: learns from photos of the good class alone; needs --good-class)")
    p.add_argument("--good-class", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--workspace", default=None, help="share the training queue of this workspace")
    p.add_argument("--folds", type=int, default=None,
                   help="K >= 2: K-fold cross-validation (every photo scored by a model that didn't train on it; "
                        "the model that ships trains on all); 1: one train/val/test split. Default: 5 folds for "
                        "300 photos or fewer, else one split")
    p.add_argument("--resize", choices=["squash", "pad"], default=None,
                   help="squash the whole photo to a square, or pad it (keeps shapes); default from the photos' shapes")
    p.add_argument("--views", type=int, choices=[1, 4, 8], default=None,
                   help="how many ways the model checks each photo: 8 (default) mirrored and turned, answers averaged "
                        "(steadier, about 8x slower to predict); 4 mirrored only; 1 once, as it is")
    p.add_argument("--false-alarm-target", type=float, default=None,
                   help="anomaly: the share of good parts the threshold may flag (default 0.01: about 1 in 100 good "
                        "parts is sent for a second look)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint "
                   "(cross-validation: from its last finished fold)")
    p.add_argument("--processes", type=int, default=None,
                   help="train this one run on N processes of this computer (one per GPU) with torch DDP, "
                        "through torchrun; recorded in the config as extra.processes (docs/scale-out.md)")
    _add_executor_options(p)
    p.add_argument("--follow", action="store_true",
                   help="with --executor ray: follow the run's job again (e.g. after this computer restarted)")
    p.add_argument("--standby", default=None, metavar="FOLDER",
                   help="load PyTorch now and wait in FOLDER for a run the app hands over (core/standby.py)")


def _add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where runs train (core/executors): this computer, or a Ray cluster."""
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="local (this computer, default) or ray (a Ray cluster); also GRAFT_EXECUTOR")
    p.add_argument("--ray-address", default=None, help="the cluster's dashboard, e.g. http://head:8265; "
                                                      "also GRAFT_RAY_ADDRESS")
    p.add_argument("--gpus", type=float, default=None, help="GPUs each run reserves on the cluster")
    p.add_argument("--cpus", type=float, default=None, help="CPUs each run reserves on the cluster (default 1)")
    p.add_argument("--shared-fs", choices=["yes", "no"], default=None,
                   help="yes: the cluster reads and writes this computer's paths (shared storage); "
                        "no: inputs are sent with the run and its folder comes back (default)")
    p.add_argument("--cluster-name", default=None, help="a name for the cluster, shown where a run trains")
    p.add_argument("--ray-resources", default=None, type=json.loads,
                   help='custom Ray resources each run reserves, as JSON, e.g. \'{"line3_gpu": 1}\'')


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train one run per strategy and learning rate, and mark the best")
    p.add_argument("data", help="folder of class folders, .zip or labels CSV")
    p.add_argument("--out", required=True, help="a new folder for the sweep (sweep.json, study, runs/)")
    p.add_argument("--strategies", nargs="+", required=True)
    p.add_argument("--lrs", nargs="+", type=float, required=True)
    p.add_argument("--trials", type=int, default=None, help="how many combinations to try (default all)")
    p.add_argument("--parallel", type=int, default=None, help="runs at once (default 1 here, 4 on a cluster)")
    p.add_argument("--runs-dir", default=None, help="where the trial run folders go (default OUT/runs)")
    p.add_argument("--name", default="")
    for flag, kind in (("--backbone", str), ("--start", str), ("--good-class", str), ("--epochs", int),
                       ("--image-size", int), ("--batch-size", int), ("--seed", int), ("--patience", int),
                       ("--workspace", str)):
        p.add_argument(flag, type=kind, default=None)
    _add_executor_options(p)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Graft: transfer learning for inspection photos")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="check a dataset and report problems")
    p.add_argument("data")
    p.add_argument("--json", action="store_true")
    _add_train(sub)
    _add_sweep(sub)
    p = sub.add_parser("predict", help="score photos with a trained model")
    p.add_argument("model", help="a run folder or its model/ folder")
    p.add_argument("images", nargs="+", help="photos or folders; a folder of class folders is scored against them")
    p.add_argument("--csv", default=None, help="write one row per photo (with a verdict column: good, defect, "
                   "uncertain, or the class without a good class)")
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
                                                "batch_size", "lr", "seed", "patience", "workspace", "folds",
                                                "resize", "views")
                 if getattr(args, k) is not None}
    if args.out and args.config:
        overrides["out"] = args.out
    extra = dict(config.extra)
    if getattr(args, "processes", None) is not None:
        extra["processes"] = args.processes
    if getattr(args, "false_alarm_target", None) is not None:
        extra["false_alarm_target"] = args.false_alarm_target
    if extra != config.extra:
        overrides["extra"] = extra
    return config.replace(**overrides) if overrides else config


def _executor(args: argparse.Namespace, workspace: str | None):
    from .executors import executor_settings, get_executor

    shared = None if args.shared_fs is None else args.shared_fs == "yes"
    return get_executor(executor_settings(workspace, name=args.executor, ray_address=args.ray_address,
                                          gpus=args.gpus, cpus=args.cpus, shared_fs=shared,
                                          cluster_name=args.cluster_name, resources=args.ray_resources))


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .runs import read_status

    warm = bool(args.standby)
    if warm:
        from .standby import wait_for_run

        handed = wait_for_run(args.standby)
        if handed is None:  # nobody needed it
            return 0
        args = _parser().parse_args(["train", *handed])
    config = _train_config(args)
    executor = _executor(args, config.workspace)
    if args.follow:
        if executor.name != "ray":
            raise GraftError("--follow is for runs on a Ray cluster (--executor ray).")
        code = executor.follow(Path(config.out))
    else:
        if executor.name == "local" and "RANK" not in os.environ:  # before torch loads (seconds): the run shows at once
            from .callbacks import announce_start

            announce_start(config, warm=warm)
        code = executor.run(config, resume=args.resume)
    if os.environ.get("RANK", "0") != "0" or os.environ.get("GRAFT_DDP_PARENT"):  # DDP: one report, not N
        return code
    status = read_status(config.out)
    print(f"{status.get('state')}: {status.get('message', '')}")
    if code == 2 and executor.name != "local":  # the run's own user error, reported like a local one
        print(f"error: {status.get('message', '')}", file=sys.stderr)
    return code


def cmd_sweep(args: argparse.Namespace) -> int:
    from .config import RunConfig
    from .sweeps import SweepSpec, run_sweep

    base = {k: getattr(args, k) for k in ("backbone", "start", "good_class", "epochs", "image_size", "batch_size",
                                          "seed", "patience", "workspace") if getattr(args, k) is not None}
    spec = SweepSpec(RunConfig(data=args.data, out="", **base), tuple(args.strategies), tuple(args.lrs),
                     trials=args.trials, name=args.name)
    executor = _executor(args, args.workspace)
    parallel = args.parallel or (1 if executor.name == "local" else 4)

    def report(record: dict) -> None:
        done = [t for t in record["trials"] if t["state"] != "queued"]
        print(f"{len(done)}/{record['trials_planned']} trials ended; {len(record['trials']) - len(done)} in flight",
              flush=True)

    record = run_sweep(spec, args.out, runs_root=args.runs_dir, executor=executor, parallel=parallel,
                       on_change=report)
    best = record["best"]
    if not best:
        print("No trial finished an epoch, so there is no best run.", file=sys.stderr)
        return 1
    params = best["params"]
    print(f"Best: trial {best['number']} ({params['strategy']}, lr {params['lr']:g}), "
          f"validation score {best['value']:.3f}: {best['run']}")
    return 0


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
    from .batch import batch_rows, batch_score, labels_from_folders, write_rows_csv
    from .predict import Predictor, list_images

    predictor = Predictor.load(args.model)
    files = list_images(args.images)
    results = predictor.predict(files)
    root = args.images[0] if len(args.images) == 1 and Path(args.images[0]).is_dir() else None
    labels = labels_from_folders(files, root, _folder_classes(predictor, root)) if root else None
    if labels is not None and predictor.spec.anomaly:  # good parts only: every other folder holds defects
        labels = [None if x is None else x if x == predictor.spec.good_class else "defect" for x in labels]
    rows = batch_rows(results, predictor.spec.good_class, root, labels)
    if predictor.spec.anomaly:  # good parts only: the normalised defect score, 0.5 at the threshold
        rows = [{**row, "score": p.defect_score} for row, p in zip(rows, results)]
    if args.csv:
        write_rows_csv(args.csv, [{**row, **{f"p_{c}": v for c, v in p.scores.items()}}
                                  for row, p in zip(rows, results)])
    for r in rows:
        extra = f"  ({r['problem']})" if r.get("problem") else f"  {fmt_pct(r['confidence'], 1)}"
        if r.get("score") is not None and not r.get("problem"):
            extra = f"  score {r['score']:.2f} (threshold 0.50)"
        print(f"{r['photo']}: {r['verdict'] or r['predicted']}{extra}")
    if labels is not None and any(labels):
        print(_score_lines(batch_score(rows, predictor.classes, predictor.spec.good_class)))
    return 0


def _folder_classes(predictor, root: str) -> list[str]:
    """The class folders to read labels from: the model's classes (a good-parts-only model: every folder)."""
    if not predictor.spec.anomaly:
        return predictor.classes
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir())


def _score_lines(scored: dict) -> str:
    """The batch's figures against its folders' labels, with 95% ranges."""
    lines = [f"Against the class folders ({scored['n']} labelled photos):"]
    for key, words in (("accuracy", "right"), ("catch_rate", "defects caught"), ("false_alarm_rate", "false alarms"),
                       ("sent_to_person", "sent to a person (uncertain)")):
        rate = scored.get(key)
        if rate:
            lines.append(f"  {words}: {fmt_pct(rate['value'])} ({rate['k']} of {rate['n']}; 95% range "
                         f"{fmt_range(*rate['range'])})")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_model

    metrics = evaluate_model(args.model, args.data)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    overlap = metrics.get("overlap") or {}
    if overlap.get("training_photos"):
        print(f"Warning: {overlap['training_photos']} of {overlap['photos']} photos were training photos of this "
              f"model (same content), e.g. {', '.join(overlap['examples'])}. They are left out of the numbers "
              "below and reported separately.", file=sys.stderr)
    if not metrics.get("n"):
        print("Every photo of this dataset was a training photo of the model: there is nothing fresh to measure.")
    else:
        print(_evaluate_lines(metrics, "photos the model did not train on"))
    if overlap.get("metrics_training_photos"):
        print(_evaluate_lines(overlap["metrics_training_photos"], "of its training photos (optimistic)"))
    return 0


def _evaluate_lines(m: dict, what: str) -> str:
    ranges = m.get("ranges") or {}
    line = (f"Accuracy {fmt_pct(m['accuracy'], 1)} ({fmt_range(*(ranges.get('accuracy') or (None, None)))}), "
            f"macro-F1 {m['macro_f1']:.3f} on {m['n']} {what}.")
    if m.get("catch_rate") is not None:
        line += (f"\nDefects caught {fmt_pct(m['catch_rate'], 1)} ({fmt_range(*ranges['catch_rate'])})"
                 + (f", false alarms {fmt_pct(m['false_alarm_rate'], 1)} ({fmt_range(*ranges['false_alarm_rate'])})."
                    if m.get("false_alarm_rate") is not None else "."))
    elif m.get("false_alarm_rate") is not None:  # good photos only (a good-parts-only model)
        line += f"\nFalse alarms {fmt_pct(m['false_alarm_rate'], 1)} ({fmt_range(*ranges['false_alarm_rate'])})."
    if m.get("verdict"):
        line += f"\n{m['verdict']['title']}: {m['verdict']['reason']}"
    return line


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
    "check": cmd_check, "train": cmd_train, "sweep": cmd_sweep, "predict": cmd_predict, "evaluate": cmd_evaluate,
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
