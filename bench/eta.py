"""Section 9: the whole run's time left (issue 12), and how fast a run shows that it started.

Real runs start the way the Start button starts them (:func:`core.runs.launch_run`: a detached
``python -m core train``), on NEU steel photos with the shared ImageNet weights (generated photos and
random weights when ``../shared`` is absent). From each run's ``events.jsonl``: the time left it
reported at 25% and 50% of its wall time against the time it really took, the time from launch to
the first progress event and to the first curve point (the first one the live chart draws), and where the
start-up time went.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import Context, Goal, Section, Table, fmt
from .profiles import EtaCfg
from .realdata import neu_split, shared_root

__all__ = ["run", "eta_error", "startup"]

TITLE = "9. Whole-run time left and start-up"
INTRO = ("Runs launched as the Start button launches them (`core.runs.launch_run`: `python -m core train`, "
         "detached). The time left (`eta_s`, the whole run: `core.eta.RunClock`) that the run reported at 25% and "
         "50% of its wall time, counted down by the seconds since it was reported, against the time the run "
         "really had left; and how soon a run shows progress and its first curve point.")
ETA_GOAL, FIRST_EVENT_GOAL_S, CURVE_MARGIN_S = 0.20, 3.0, 5.0


@dataclass
class Measured:
    """One run: what it was, its events, and when it was launched."""

    label: str
    photos: int
    launched: float
    events: list[dict[str, Any]]
    load: float
    warm: bool = True

    @property
    def end(self) -> float:
        return next(e["time"] for e in reversed(self.events) if e["event"] == "run_end")

    @property
    def wall(self) -> float:
        return self.end - self.launched


def eta_error(events: list[dict[str, Any]], launched: float, share: float) -> float | None:
    """|reported − true time left| / true time left at ``share`` of the run's wall time (None: nothing reported)."""
    end = next(e["time"] for e in reversed(events) if e["event"] == "run_end")
    at = launched + share * (end - launched)
    seen = [e for e in events if e.get("eta_s") is not None and e["time"] <= at and e["event"] != "run_end"]
    if not seen:
        return None
    last = seen[-1]
    predicted = max(0.0, float(last["eta_s"]) - (at - last["time"]))
    return abs(predicted - (end - at)) / max(end - at, 1e-9)


def startup(events: list[dict[str, Any]], launched: float) -> dict[str, float | None]:
    """Seconds from launch to: the first progress event, the check's first event, run_start, the first
    training progress and the first epoch; and the first epoch's own length."""
    def first(pred) -> float | None:
        found = next((e for e in events if pred(e)), None)
        return found["time"] - launched if found else None

    epoch = next((e for e in events if e["event"] == "epoch"), None)
    return {"progress": first(lambda e: e["event"] == "progress"),
            "check": first(lambda e: e.get("phase") == "check"),
            "run_start": first(lambda e: e["event"] == "run_start"),
            "train": first(lambda e: e.get("phase") == "train" or e["event"] == "epoch"),
            "point": first(_drawn),
            "curve": first(lambda e: e["event"] == "epoch"),
            "epoch_s": float(epoch["epoch_s"]) if epoch and epoch.get("epoch_s") is not None else None}


def _drawn(e: dict[str, Any]) -> bool:
    """An event the live learning curve draws (ui.charts): an epoch, or a batch's running training loss."""
    return e["event"] == "epoch" or (e.get("phase") == "train" and e.get("loss") is not None
                                     and int(e.get("batch") or 0) < int(e.get("batches") or 0))


def _train_ratio(events: list[dict[str, Any]], batch: int) -> float | None:
    """A training step's cost over (batch × one photo of the first pass over the photos), both measured in
    this run; the pass without its first report (warm-up), as the run's clock times it."""
    start = next((e for e in events if e["event"] == "run_start"), {})
    photos = sum((start.get("splits") or {}).values()) or float("inf")
    feats = []
    for e in events[next((i for i, e in enumerate(events) if e.get("phase") == "features"), len(events)):]:
        if e.get("phase") != "features" or e["done"] > photos:
            break  # the first pass over the photos only (the probe's views come from a folded copy)
        feats.append(e)
    speeds = [e["images_per_s"] for e in events if e["event"] == "epoch" and e.get("images_per_s")]
    if len(feats) < 2 or not speeds:
        return None
    forward_ips = (feats[-1]["done"] - feats[0]["done"]) / max(feats[-1]["time"] - feats[0]["time"], 1e-9)
    return forward_ips / speeds[-1]


def _dataset(ctx: Context, cfg: EtaCfg, per_class: int, root: Path | None) -> tuple[Path, int]:
    """NEU photos (hard links in the bench's throwaway folder), else generated photos."""
    folder = ctx.subdir("eta") / f"data-{per_class}"
    if root is None:
        from .data import defect_photos

        if not folder.is_dir() or not any(folder.iterdir()):
            defect_photos(folder, per_class, cfg.generated_size, seed=3)
        return folder, len(list(folder.glob("*/*.jpg")))
    photos = neu_split(root, per_class, seed=0).train
    for path, label, _ in photos:
        (folder / label).mkdir(parents=True, exist_ok=True)
        link = folder / label / Path(path).name
        if not link.exists():
            try:
                os.link(path, link)
            except OSError:
                shutil.copyfile(path, link)
    return folder, len(photos)


def _launch(ctx: Context, cfg: EtaCfg, spec: tuple[str, int, int, int, int], root: Path | None, n: int,
            warm: bool = True) -> Measured:
    """One run as the Start button launches it: handed to the warm training process that the Model and
    Train pages keep ready (core/standby.py), or, ``warm=False``, a process started for it."""
    from core.config import RunConfig
    from core.executors.local import LocalExecutor
    from core.runs import FINAL_STATES, RunFolder, pid_alive, read_status

    strategy, per_class, epochs, size, folds = spec
    data, photos = _dataset(ctx, cfg, per_class, root)
    weights = root / cfg.weights if root else None
    start = f"file:{weights}" if weights and weights.is_file() else "scratch"
    backbone = cfg.backbone if start != "scratch" else cfg.fallback_backbone
    out = ctx.work / "eta" / f"run-{n}"
    shutil.rmtree(out, ignore_errors=True)
    workspace = ctx.work / "eta" / f"workspace-{n}"  # of its own: no earlier run's speed, only the standby's folder
    config = RunConfig(data=str(data), out=str(out), backbone=backbone, start=start, strategy=strategy, epochs=epochs,
                       image_size=size, batch_size=cfg.batch, folds=folds, seed=0, workspace=str(workspace))
    saved = {k: os.environ.get(k) for k in ("GRAFT_CACHE_DIR", "GRAFT_STANDBY")}
    os.environ.update(GRAFT_CACHE_DIR=str(out.parent / f"cache-{n}"), GRAFT_STANDBY="1" if warm else "0")
    try:  # the child process takes this environment: a first run, nothing decoded or cached yet
        if warm:
            _warm_up(workspace, cfg.timeout_s)
        load = os.getloadavg()[0]
        launched = time.time()
        LocalExecutor().launch(config)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    deadline = launched + cfg.timeout_s
    while time.time() < deadline and read_status(out).get("state") not in FINAL_STATES:
        time.sleep(0.2)
    pid = read_status(out).get("pid")
    while time.time() < deadline and pid_alive(pid):  # the next run starts on a free CPU
        time.sleep(0.2)
    label = f"{strategy}, {backbone.split('.')[0]}, {size} px, {epochs} epoch(s)" + (f", {folds} folds" if folds > 1
                                                                                      else "")
    return Measured(label + ("" if warm else ", cold start"), photos, launched, RunFolder(out).events(), load, warm)


def _warm_up(workspace: Path, timeout_s: float) -> None:
    """What opening the Model page does: a standby loads PyTorch; then the CPU settles, as while the user reads."""
    from core.standby import ensure_standby, ready_standby

    ensure_standby(workspace)
    deadline = time.time() + timeout_s
    while ready_standby(workspace) is None:
        if time.time() > deadline:
            raise RuntimeError("the warm training process never got ready")
        time.sleep(0.2)
    time.sleep(2.0)


def run(cfg: EtaCfg, ctx: Context) -> Section:
    root = None if cfg.generated else shared_root()
    results = []
    plan = [(spec, True) for _ in range(cfg.repeats) for spec in cfg.runs] + [(cfg.runs[k], False) for k in cfg.cold]
    for n, (spec, warm) in enumerate(plan):  # the repeats take turns, so a slow spell hits several runs
        ctx.log(f"  eta: {spec}" + ("" if warm else " (cold start)"))
        m = _launch(ctx, cfg, spec, root, n, warm)
        if not any(e["event"] == "run_end" for e in m.events):
            raise RuntimeError(f"bench run {spec} did not finish")
        results.append(m)
    return _section(cfg, results, root is not None)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _measure(cfg: EtaCfg, runs: list[Measured]) -> dict[str, Any]:
    """One run's numbers over its repeats: the median of each, and the worst ETA errors."""
    errs = [[eta_error(m.events, m.launched, share) for share in (0.25, 0.5)] for m in runs]
    starts = [startup(m.events, m.launched) for m in runs]
    return {"label": runs[0].label, "photos": runs[0].photos, "repeats": len(runs), "warm": runs[0].warm,
            "wall_s": _median([m.wall for m in runs]), "load": _median([m.load for m in runs]),
            "eta_error": [_median([e[k] for e in errs]) for k in (0, 1)],
            "eta_error_worst": [max((e[k] for e in errs if e[k] is not None), default=None) for k in (0, 1)],
            "eta_errors": errs, "startup": {key: _median([s[key] for s in starts]) for key in starts[0]},
            "train_ratio": _median([_train_ratio(m.events, cfg.batch) for m in runs])}


def _section(cfg: EtaCfg, results: list[Measured], real: bool) -> Section:
    groups: dict[str, list[Measured]] = {}
    for m in results:
        groups.setdefault(m.label, []).append(m)
    data = [_measure(cfg, runs) for runs in groups.values()]
    rows, starts = [], []
    for d in data:
        s, errs, worst = d["startup"], d["eta_error"], d["eta_error_worst"]
        cells = [_pct(e) + (f" ({_pct(w)})" if d["repeats"] > 1 else "") for e, w in zip(errs, worst)]
        rows.append([d["label"], str(d["photos"]), str(d["repeats"]), fmt(d["wall_s"], 0), *cells,
                     fmt(s["progress"]), fmt(s["point"]), f"{fmt(s['curve'])} ({fmt(s['epoch_s'])})",
                     fmt(d["train_ratio"]), fmt(d["load"], 2)])
        starts.append([d["label"], fmt(s["progress"]), fmt(s["check"]), fmt(s["run_start"]), fmt(s["train"]),
                       fmt(s["curve"])])
    table = Table(["run", "photos", "runs", "wall s", "ETA error at 25% (worst run)", "at 50% (worst run)",
                   "first progress s", "first curve point s", "first epoch's point s (its epoch s)",
                   "train step ÷ (batch × forward)", "load before"], rows)
    when = Table(["run", "first progress event", "check starts (engine loaded)", "run_start "
                  "(checked, model built, decoded)", "training starts (features, probe)", "first epoch"], starts)
    return Section("eta", TITLE, INTRO, [table, when], _goals(data), _notes(cfg, data, real), data={"runs": data})


def _goals(data: list[dict[str, Any]]) -> list[Goal]:
    data = [d for d in data if d.get("warm", True)]  # as the app starts runs; the cold start is reported beside
    errs = [e for d in data for e in d["eta_error"] if e is not None]
    worst = max(errs) if errs else float("nan")
    first = max((d["startup"]["progress"] or float("inf")) for d in data)
    late = [(d["startup"].get("point") or float("inf")) - (d["startup"]["epoch_s"] or 0.0) for d in data
            if not d["label"].startswith("feature-extraction")] or [float("nan")]
    return [Goal("ETA error at 25% and 50% of every run (median of its repeats; worst run)", f"≤ {ETA_GOAL:.0%}",
                 f"{worst:.0%}",
                 worst <= ETA_GOAL),
            Goal("Start to first progress event (slowest run)", f"≤ {FIRST_EVENT_GOAL_S:.0f} s", f"{first:.1f} s",
                 first <= FIRST_EVENT_GOAL_S),
            Goal("Start to first curve point, beyond one epoch's time (slowest run)", f"≤ {CURVE_MARGIN_S:.0f} s",
                 f"{max(late):.1f} s", max(late) <= CURVE_MARGIN_S)]


def _notes(cfg: EtaCfg, data: list[dict[str, Any]], real: bool) -> list[str]:
    ratios = [d["train_ratio"] for d in data if d["train_ratio"]]
    where = ("NEU steel photos of `../shared` (seeded draw per class) and its ImageNet weights for "
             f"`{cfg.backbone}`" if real else "generated photos (`core.synth`) and random weights (`../shared` "
             "absent)")
    notes = [f"Photos: {where}; batch {cfg.batch}; one run at a time, each with an empty cache folder (nothing decoded, no features cached: a first run).",
             f"Each run was made {cfg.repeats} time(s), the repeats taking turns; the table gives the median over "
             "them and, in brackets, the worst single run. On this shared 2-core machine the same 30-60 s run "
             "speeds up and slows down from one try to the next and within a try, which no estimate from the "
             "run's own past can foresee.",
             "Load average (1 minute) before each run is in the table (the warm training process has just loaded "
             "PyTorch then, and the load average still counts it).",
             "Runs start as the app starts them: handed to the warm training process that the Model and Train "
             "pages keep ready (`core/standby.py`: it has loaded PyTorch, timm and scikit-learn and waits), and "
             "the goals count those. A row marked cold start is the same run in a process started for it, as "
             "`python -m core train` from the command line, or Start pressed within seconds of opening the app: "
             "its start-up includes those imports.",
             "The first progress event is written by `python -m core train` before it imports PyTorch "
             "(`core.callbacks.announce_start`); the columns of the second table are seconds after launch.",
             "The first curve point is the first one the live chart draws: the running training loss after the "
             "first batch (the chart plots the epoch in progress, dotted, up to its end point). Feature "
             "extraction has no learning curve (its one `epoch` event is the final score), so the curve goal "
             "counts the other runs. Before the first batch of the other strategies come the start trunk's "
             "features of every photo, 7 extra views of the training photos (read by a copy of the trunk with its "
             "BatchNorms folded: `core/batchnorm_fold.py`), and the logistic-regression probe (LP-FT): that "
             "preparation, not the start-up, is the wait before the curve; the first epoch's own point comes one "
             "epoch later."]
    loads = [d["load"] for d in data]
    if loads and max(loads) > 2 * (os.cpu_count() or 2):
        notes.append(f"**Taken under heavy load** (load average {min(loads):.1f}–{max(loads):.1f} on "
                     f"{os.cpu_count()} cores before the runs): the runs trained several times slower than on a quiet "
                     "machine and their speed swung while they ran, so these errors say more about the load than "
                     "about the clock. Rerun with `python -m bench --only eta --merge` on a quiet machine.")
    if ratios:
        notes.append("A training step cost " + ", ".join(fmt(r) for r in ratios) + " times batch × one photo's "
                     "forward pass in these runs (`core.eta.TRAIN_RATIO` is the prior for backbones the curated list "
                     "has no speeds for; the run's own measurement replaces it once training starts).")
    return notes
