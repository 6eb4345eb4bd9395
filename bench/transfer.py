"""Section 5: the value of transfer, offline: pretrain on some surfaces, transfer to a new one with few photos."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from core.config import STRATEGY_DEFAULTS, Strategy
from core.evaluate import evaluate_model
from core.jsonio import read_json
from core.package import resolve_model_dir

from .common import Context, Goal, Section, Table, fmt
from .data import defect_photos
from .plots import line_chart
from .profiles import TransferCfg
from .runs import train

__all__ = ["run"]

GAP_GOAL = 20.0  # accuracy points at the fewest photos per class


def _options(cfg: TransferCfg, strategy: str, pretrained: str) -> dict:
    opts = dict(backbone=cfg.backbone, strategy=strategy, image_size=cfg.size, batch_size=32, seed=0,
                val_fraction=0.2, test_fraction=0.0,  # the fixed test set below is the only test
                start="scratch" if strategy == "scratch" else f"run:{pretrained}")
    # feature extraction keeps its default unless told: its head epochs cost milliseconds
    opts["epochs"] = cfg.head_epochs if strategy == "feature-extraction" else cfg.epochs
    if strategy == "multi-task":
        opts["good_class"] = "ok"
    return opts


def pretrain(cfg: TransferCfg, base: Path, ctx: Context) -> tuple[TransferCfg, Path, float, str]:
    """Pretrain through Graft (strategy scratch) on the pretraining surfaces, or reuse ``cfg.pretrained``.

    Returns the config (backbone and size follow a reused package), the run folder, its
    validation accuracy in % and a sentence for the report.
    """
    if cfg.pretrained:
        path = Path(cfg.pretrained)
        spec = read_json(resolve_model_dir(path) / "model.json", {})
        acc = 100 * float((read_json(path / "metrics.json", {}) or {}).get("accuracy", float("nan")))
        cfg = dataclasses.replace(cfg, backbone=spec["backbone"], size=int(spec["image_size"]))
        return cfg, path, acc, (f"Pretraining: reused the Graft run `{path.name}` (`{cfg.backbone}` at {cfg.size} px, "
                                f"{spec.get('info', {}).get('dataset', '?')}): {acc:.0f}% on its validation photos.")
    t0 = time.perf_counter()
    data = defect_photos(base / "pretrain_data", cfg.pretrain_per_class, cfg.size, seed=31,
                         surfaces=cfg.pretrain_surfaces, classes=cfg.pretrain_classes)
    ctx.log(f"  generated pretraining photos ({time.perf_counter() - t0:.0f} s)")
    r = train(data, base / "pretrain", backbone=cfg.backbone, start="scratch", strategy="scratch",
              epochs=cfg.pretrain_epochs, image_size=cfg.size, seed=0, val_fraction=0.15, test_fraction=0.0)
    acc = 100 * r.metrics["accuracy"]
    chance = 100 / len(cfg.pretrain_classes)
    note = (f"Pretraining: `{cfg.backbone}` from scratch at {cfg.size} px on {cfg.pretrain_per_class} photos per "
            f"class × {len(cfg.pretrain_classes)} classes ({', '.join(cfg.pretrain_classes)}) of "
            f"{', '.join(cfg.pretrain_surfaces)}, {cfg.pretrain_epochs} epochs, through `core.pipeline.train_run` "
            f"(strategy scratch), saved as a Graft model package: **{acc:.0f}%** on its validation photos "
            f"(chance {chance:.0f}%), {r.wall_s:.0f} s.")
    if acc < chance + 10:
        note += (" **The pretrained backbone learned little in this budget**, so the strategies below transfer "
                 "a near-random trunk; `python -m bench --pretrained RUN_DIR` reuses a longer pretraining run.")
    return cfg, r.path, acc, note


def run(cfg: TransferCfg, ctx: Context) -> Section:
    base = ctx.subdir("transfer")
    cfg, pre_path, pre_acc, pre_note = pretrain(cfg, base, ctx)
    ctx.log(f"  pretrained {cfg.backbone}: {pre_acc:.0f}% on its own validation photos")
    test = defect_photos(base / "test", cfg.test_per_class, cfg.size, seed=99, surfaces=[cfg.target_surface],
                         classes=cfg.target_classes)
    acc: dict[str, dict[int, float]] = {s: {} for s in cfg.strategies}
    secs: dict[str, dict[int, float]] = {s: {} for s in cfg.strategies}
    for shots in cfg.shots:  # the same photos (hence the same split) for every strategy
        data = defect_photos(base / f"target_{shots}", shots, cfg.size, seed=41, surfaces=[cfg.target_surface],
                             classes=cfg.target_classes)
        for strategy in cfg.strategies:
            r = train(data, base / f"run_{shots}_{strategy}", **_options(cfg, strategy, str(pre_path)))
            acc[strategy][shots] = 100 * evaluate_model(r.path, test)["accuracy"]
            secs[strategy][shots] = r.wall_s
            ctx.log(f"  {shots}/class {strategy}: {acc[strategy][shots]:.0f}% ({r.wall_s:.0f} s)")
    return _section(cfg, ctx, acc, secs, pre_acc, pre_note)


def _section(cfg: TransferCfg, ctx: Context, acc: dict[str, dict[int, float]], secs: dict[str, dict[int, float]],
             pre_acc: float, pre_note: str) -> Section:
    table = Table(["strategy"] + [f"{n}/class: accuracy %" for n in cfg.shots] + ["train time s (sum)"])
    for strategy in cfg.strategies:
        table.rows.append([strategy] + [fmt(acc[strategy][n], 0) for n in cfg.shots]
                          + [fmt(sum(secs[strategy].values()), 0)])
    few = min(cfg.shots)
    transfer = [s for s in cfg.strategies if s != "scratch"]
    goals = []
    if "scratch" in acc and transfer:
        best = max(transfer, key=lambda s: acc[s][few])
        gap = acc[best][few] - acc["scratch"][few]
        measured = f"{gap:+.0f} points ({best} {acc[best][few]:.0f}% against scratch {acc['scratch'][few]:.0f}%)"
        goals.append(Goal(f"Transfer (best strategy) beats scratch by ≥ 20 points at {few} photos per class",
                          "≥ 20 points", measured, gap >= GAP_GOAL))
    path, link = ctx.plot_path("transfer.png")
    line_chart(path, {s: (list(cfg.shots), [acc[s][n] for n in cfg.shots]) for s in cfg.strategies},
               xlabel="training photos per class (new surface)", ylabel="test accuracy %", logx=True,
               title=f"Transfer to {cfg.target_surface}: {cfg.backbone} at {cfg.size} px",
               hline=(100 / len(cfg.target_classes), "chance"), ylim=(0, 100))
    fe_epochs = cfg.head_epochs or STRATEGY_DEFAULTS[Strategy.FEATURE_EXTRACTION]["epochs"]
    notes = [
        pre_note,
        f"Transfer: to **{cfg.target_surface}** (never seen in pretraining), classes "
        f"{', '.join(cfg.target_classes)}; `--start run:PRETRAIN` for every strategy except scratch. Each "
        f"training set is split 80/20 into train/validation with the same seed for every strategy; all "
        f"models are scored with `core.evaluation.evaluate_model` on one fixed test set of "
        f"{cfg.test_per_class} photos per class ({len(cfg.target_classes) * cfg.test_per_class} in all).",
        f"Epochs: {cfg.epochs} for fine-tune, progressive, multi-task and scratch alike (early stopping on); "
        f"feature extraction: {fe_epochs} head epochs at most. Multi-task uses good class 'ok'. "
        f"Chance is {100 / len(cfg.target_classes):.0f}%. One seed: differences of a few points are noise.",
    ]
    return Section("transfer", "5. The value of transfer, offline",
                   "Does a backbone pretrained on other surfaces help when a new surface has only a few photos?",
                   [table], goals, notes, [link],
                   data={"accuracy": acc, "seconds": secs, "pretrain_accuracy": pre_acc})
