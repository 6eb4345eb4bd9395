"""The "Transfer on real photos" section's tables, plot, goals and the evidence literal for core.evidence."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .common import Context, Goal, Section, Table, fmt
from .plots import line_chart
from .profiles import RealCfg
from .realfit import Score

__all__ = ["section", "goals"]

Results = dict[tuple[str, str, int], list[Score]]
GRAFT = ("feature-extraction", "fine-tune", "progressive", "multi-task", "scratch")


# The fits last deleted from the store and measured again, after a change the settings key doesn't see.
REMEASURED = ("Measured again on 2026-12-02, after the probe's extra views moved to a BatchNorm-folded copy of "
              "the trunk (`core/batchnorm_fold.py`): Graft feature extraction, fine-tune and progressive on NEU "
              "20/class (seeds 0-2) and multi-task (seed 0), with the ImageNet weights. Graft's other rows (5, 10 "
              "and 50 per class, random weights, bottle) and the views table were measured before that change.")

def _acc(scores: list[Score] | None) -> float:
    return 100 * statistics.mean(s.accuracy for s in scores) if scores else float("nan")


def _cell(scores: list[Score] | None) -> str:
    if not scores:
        return ""
    if len(scores) == 1:
        return fmt(_acc(scores), 1)
    values = [100 * s.accuracy for s in scores]
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def _secs(scores: list[Score] | None) -> str:
    return fmt(statistics.mean(s.seconds for s in scores), 0) if scores else ""


def _label(method: str, start: str) -> str:
    from .realphotos import LABELS

    return LABELS[method] + (", random weights" if start == "random" and method not in ("plain-scratch", "scratch")
                             else "")


def goals(neu: Results, shots: int) -> list[Goal]:
    """The four goals of issue 10 at ``shots`` per class (mean of the seeds, shared weights)."""
    get = lambda m: _acc(neu.get((m, "imagenet", shots)))  # noqa: E731
    probe, fe, ft, plain = get("probe"), get("feature-extraction"), get("fine-tune"), get("plain")
    best_name = max((m for m in GRAFT if (m, "imagenet", shots) in neu and m != "scratch"), key=get, default="")
    best = get(best_name) if best_name else float("nan")
    scratch, plain_scratch = _acc(neu.get(("scratch", "imagenet", shots))), get("plain-scratch")
    collapsed = [s for s in neu.get(("scratch", "imagenet", shots), []) if s.predicted_classes < 2]
    at = f"NEU {shots}/class"
    return [
        Goal(f"{at}: Graft feature extraction ≥ linear probe − 1 point", f"≥ {probe - 1:.1f}%",
             f"{fe:.1f}% (probe {probe:.1f}%)", fe >= probe - 1),
        Goal(f"{at}: Graft's best strategy ≥ linear probe + 2 points", f"≥ {probe + 2:.1f}%",
             f"{best:.1f}% ({best_name}; probe {probe:.1f}%)", best >= probe + 2),
        Goal(f"{at}: Graft fine-tune ≥ the plain fine-tune script", f"≥ {plain:.1f}%",
             f"{ft:.1f}% (plain script {plain:.1f}%)", ft >= plain),
        Goal(f"{at}: Graft from scratch ≥ the plain script from scratch, never one class for everything",
             f"≥ {plain_scratch:.1f}%, no collapse", f"{scratch:.1f}% (plain script {plain_scratch:.1f}%; "
             f"{len(collapsed)} collapsed)", scratch >= plain_scratch and not collapsed),
    ]


def _goal_table(cfg: RealCfg, neu: Results, bottle: Results) -> Table:
    seeds = len(cfg.seeds)
    table = Table(["method", "start", f"NEU {cfg.goal_shots}/class: accuracy % ({seeds} seeds)", "seconds per fit",
                   "bottle: accuracy %", "bottle: ROC AUC", "bottle: seconds"])
    order = ["probe", "plain", "plain-scratch", *GRAFT]
    for start in ("imagenet", "random"):
        for method in order:
            scores, b = neu.get((method, start, cfg.goal_shots)), bottle.get((method, start, 0)) or []
            if not scores and not b:
                continue
            auc = statistics.mean(s.auc for s in b) if b and b[0].auc is not None else float("nan")
            table.rows.append([_label(method, start), "random" if method in ("plain-scratch", "scratch") or
                               start == "random" else "ImageNet file", _cell(scores), _secs(scores), _cell(b),
                               fmt(auc, 3), _secs(b)])
    return table


def _curve(cfg: RealCfg, ctx: Context, neu: Results) -> tuple[Table, str]:
    keys = sorted({(m, s) for m, s, _ in neu}, key=lambda k: (k[1] != "imagenet", list(neu).index(next(
        x for x in neu if x[:2] == k))))
    table = Table(["method"] + [f"{n}/class" for n in cfg.shots])
    lines = {}
    for method, start in keys:
        xs = [n for n in cfg.shots if (method, start, n) in neu]
        if len(xs) > 1:
            lines[_label(method, start)] = (xs, [_acc(neu[(method, start, n)]) for n in xs])
        table.rows.append([_label(method, start)] + [_cell(neu.get((method, start, n))) for n in cfg.shots])
    path, link = ctx.plot_path("real_neu.png")
    line_chart(path, lines, xlabel="training photos per class (NEU)", ylabel="test accuracy % (600 photos)",
               title=f"NEU: {cfg.backbone}, shared ImageNet weights", logx=True,
               dashed=[label for label in lines if "scratch" in label or "random" in label], hline=(100 / 6, "chance"))
    return table, link


_VIEW_ROWS = [  # (method, head/view set in real_views.jsonl, how it was scored)
    ("feature-extraction", "final/plain", "once"), ("feature-extraction", "final/flips", "4 mirrorings"),
    ("feature-extraction", "final/views", "8 views"), ("fine-tune", "final/plain", "once"),
    ("fine-tune", "final/flips", "4 mirrorings"), ("fine-tune", "final/views", "8 views"),
    ("fine-tune", "trained/views", "8 views, head as trained (before the refit)"),
    ("fine-tune", "mean/views", "8 views, mean of the trained and the refitted head"),
]


def views_table(path: Path) -> Table | None:
    """The test-time views experiment (``python -m bench.realviews``): one fit per seed, scored every way."""
    if not path.is_file():
        return None
    recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seeds = sorted({r["seed"] for r in recs})
    table = Table(["test-time views experiment: method", "scored"] + [f"seed {s}" for s in seeds] + ["mean ± sd"])
    for method, key, words in _VIEW_ROWS:
        values = {r["seed"]: 100 * r["accuracy"][key] for r in recs if r["method"] == method and key in r["accuracy"]}
        if len(values) < 2:
            continue
        mean, sd = statistics.mean(values.values()), statistics.stdev(values.values())
        table.rows.append([_label(method, "imagenet"), words] + [fmt(values.get(s, float("nan")), 1) for s in seeds]
                          + [f"{mean:.1f} ± {sd:.1f}"])
    return table


VIEWS_NOTES = [
    "Test-time views: surface photos mean the same mirrored or turned, so every Graft model checks each photo in "
    "its 8 mirrored / quarter-turned views and averages the class probabilities (`views` in `model.json`, "
    "`--views 1|4|8`, \"Check each photo 8 ways\" on the Model page). The Graft rows above are scored that way. "
    "The experiment table trained each fit once and scored it every way (`python -m bench.realviews`, "
    "`docs/bench/real_views.jsonl`): its \"once\" rows equal the fits measured before the views shipped.",
    "Tried and not adopted: averaging feature-extraction and fine-tune probabilities (99.4% with 8 views, below "
    "fine-tune alone, for two fits' cost); the mean of the trained and the refitted fine-tune head changes the "
    "recipe and sits within one seed's noise of the refitted head.",
    "Cost of the views: prediction does 8 passes per photo (section 4); a run scores its validation and test "
    "photos 8 ways too, which is in the seconds per fit above.",
]


def _evidence(cfg: RealCfg, neu: Results, bottle: Results) -> str:
    rows = []
    for method in GRAFT:
        scores = neu.get((method, "imagenet", cfg.goal_shots))
        b = bottle.get((method, "imagenet", 0))
        if scores:
            rows.append(f"    Strategy.{method.upper().replace('-', '_')}: ({_acc(scores) / 100:.3f}, "
                        f"{statistics.mean(s.seconds for s in scores):.0f}, "
                        f"{(_acc(b) / 100) if b else float('nan'):.3f}),")
    return "# core.evidence.MEASURED: {strategy: (NEU 20/class accuracy, seconds per fit, bottle accuracy)}\n{\n" + \
        "\n".join(rows) + "\n}"


def section(cfg: RealCfg, ctx: Context, neu: Results, bottle: Results, neu_size: int, bottle_size: int,
            seconds: float) -> Section:
    from .realphotos import INTRO, TITLE

    curve, link = _curve(cfg, ctx, neu)
    views = views_table(ctx.plots / "real_views.jsonl")
    notes = [
        f"NEU: a fixed test set of {cfg.test_per_class} photos per class ({6 * cfg.test_per_class} in all); training "
        f"sets of {', '.join(map(str, cfg.shots))} photos per class drawn from the other photos per seed "
        f"(seeds {', '.join(map(str, cfg.seeds))}; the sets of one seed are nested). Photos are 200 px: "
        f"Graft's default image size for them is {neu_size} px (`core.imagesize.choose_image_size`).",
        f"Bottle: 229 good photos (train/good and test/good pooled) and 63 defects, split once with seed 0 into "
        f"90 good + 10 of each defect type to learn from and 139 good + 33 defects to test. Photos are 384 px: "
        f"{bottle_size} px. Multi-task learns the defect types as its second question.",
        f"Graft: `core.fitting.Fitter.fit` on every training photo, no validation split, the strategies' default "
        f"epochs; multi-task on NEU uses '{'rolled-in_scale'}' as its good class. Linear probe: logistic regression "
        f"on frozen pooled features (fp32), C from 13 values by 5-fold CV. Plain script: timm model, AdamW 3e-4, "
        f"cosine per step, random flips, batch 32, {cfg.plain_epochs} epochs, BatchNorm in train mode.",
        "Seconds are wall time per fit on this CPU (two fits side by side, one thread each), including feature "
        "extraction where a recipe needs it. Every fit is kept in `docs/bench/real_fits.jsonl` and reused by later "
        "runs while the settings it depends on hold (`bench.realstore`), so a row's seconds come from the run that "
        "measured it, at that run's load.",
        REMEASURED,
    ] + (VIEWS_NOTES if views else [])
    tables = [_goal_table(cfg, neu, bottle), curve] + ([views] if views else [])
    return Section("real", TITLE, INTRO, tables, goals(neu, cfg.goal_shots), notes,
                   [link], code=_evidence(cfg, neu, bottle),
                   data={"neu": {f"{m}|{s}|{n}": [x.accuracy for x in v] for (m, s, n), v in neu.items()},
                         "bottle": {m: [(x.accuracy, x.auc) for x in v] for (m, _, _), v in bottle.items()},
                         "neu_size": neu_size, "bottle_size": bottle_size, "seconds": seconds})
