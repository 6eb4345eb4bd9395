"""The stakeholder report: one self-contained HTML file that explains a run in business words.

Everything is inlined (plotly's JavaScript once, photos as data URIs), so the file opens offline
and can be mailed as it is. The verdict and its reason open the report (id ``verdict``), above the
numbers; sections carry ids (``problem``, ``approach``, ``training``, ``results``, ``confusion``,
``examples``, ``baseline``) so the app and the tests can find them. The numbers are the held-out
figures training recorded, with the same 95% ranges as the app; a threshold saved later is shown
beside them, labelled optimistic when it was chosen on the same photos. Every piece of text that
comes from the user's files is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import PIL.Image
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from . import __version__
from .backbones import CURATED, parse_start
from .config import Strategy
from .decision import Decision, read_decision
from .errors import GraftError
from .explain import explain
from .export import test_images
from .images import UnreadableImage
from .jsonio import read_json, read_jsonl
from .numbers import DASH, fmt_pct, fmt_range, fmt_score
from .predict import Predictor
from .runs import read_status
from .verdict import Verdict, held_out_words, judge

__all__ = ["build_report", "load_run", "RunData", "find_scratch_baseline", "SECTION_IDS", "REPORT_FILE",
           "STRATEGY_WORDS"]

REPORT_FILE = "report.html"
SECTION_IDS = ("problem", "approach", "training", "results", "confusion", "examples", "baseline")
_ACCENT, _GREY, _RED = "#1f4e79", "#9aa5b1", "#b03a2e"
_PLOT_CONFIG = {"displayModeBar": False, "responsive": True}

STRATEGY_WORDS = {
    Strategy.FEATURE_EXTRACTION.value: (
        "The pretrained network was used as it is, as a fixed 'eye' that describes each photo; only a small final "
        "layer learned your classes. Fast, and hard to over-fit on few photos."),
    Strategy.FINE_TUNE.value: (
        "First only a small final layer learned your classes; then the whole network was adjusted gently to your "
        "photos, with the earliest (most general) layers changed least."),
    Strategy.PROGRESSIVE.value: (
        "The network was unlocked step by step: first the final layer, then one block of layers more each round, "
        "from the last towards the first. The pretrained knowledge is kept as long as possible."),
    Strategy.MULTI_TASK.value: (
        "One network learned several related questions at once (for example 'ok or defect?' and 'which defect?'); "
        "the answers are combined into one verdict per photo."),
    Strategy.SCRATCH.value: (
        "The network started from random weights and learned only from your photos, with no prior knowledge. "
        "This is the baseline that transfer learning should beat."),
}


@dataclass
class RunData:
    """Everything the report reads from one run folder."""

    path: Path
    config: dict[str, Any]
    status: dict[str, Any]
    metrics: dict[str, Any]
    check: dict[str, Any]
    spec: dict[str, Any]
    epochs: list[dict[str, Any]] = field(default_factory=list)
    decision: Decision = field(default_factory=Decision)

    @property
    def classes(self) -> list[str]:
        return list(self.metrics.get("classes") or self.spec.get("classes") or [])

    @property
    def good(self) -> str | None:
        return self.metrics.get("good_class") or self.spec.get("good_class")


def load_run(run_dir: str | Path) -> RunData:
    """Read a finished run; a run without metrics or model is a plain user error."""
    path = Path(run_dir)
    metrics = read_json(path / "metrics.json")
    spec = read_json(path / "model" / "model.json")
    if not isinstance(metrics, dict) or not isinstance(spec, dict):
        raise GraftError("This run has no finished model yet.", hint="Pick a run that finished training.")
    events = read_jsonl(path / "events.jsonl")
    last_fit = [e for e in events if e.get("event") == "epoch" and e.get("stage") in (None, "final")]
    epochs = last_fit or [e for e in events if e.get("event") == "epoch"]
    return RunData(path, read_json(path / "config.json", {}) or {}, read_status(path), metrics,
                   read_json(path / "check.json", {}) or {}, spec, epochs, read_decision(path))


def build_report(run_dir: str | Path, out: str | Path | None = None, *, max_examples: int = 6) -> Path:
    """Write the stakeholder report of a finished run.

    Args:
        run_dir: the run folder.
        out: the HTML file to write; default ``RUN_DIR/report.html``.
        max_examples: photos shown per group (wrong predictions, right predictions).

    Returns:
        The path of the written file.

    Raises:
        GraftError: the run has no finished model yet.
    """
    run = load_run(run_dir)
    sections = [_problem(run), _approach(run), _training(run), _results(run), _confusion(run),
                _examples(run, max_examples), _baseline(run)]
    out = Path(out) if out else run.path / REPORT_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(_page(run, sections), encoding="utf-8")
    os.replace(tmp, out)
    return out


# --- small helpers -------------------------------------------------------------------------

def _e(value: Any) -> str:
    """HTML-escape anything (user text: class names, file names, paths)."""
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return fmt_pct(value, 0 if value in (0, 1) else 1)


def _range(run: "RunData", key: str) -> str:
    """The 95% range of a headline number, as the app shows it (``"21%–94%"``), or ``""``."""
    found = (run.metrics.get("ranges") or {}).get(key)
    return f"95% range {fmt_range(*found)}" if found else ""


def _section(sid: str, title: str, body: str, lead: str = "") -> str:
    intro = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{intro}{body}</section>'


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table whose cells are already-safe HTML."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(fig: go.Figure, height: int = 320, margin: dict[str, int] | None = None) -> str:
    """A plotly figure as a div; plotly.js itself is inlined once in the page head."""
    fig.update_layout(template="simple_white", height=height, margin=margin or dict(l=50, r=20, t=40, b=45),
                      font=dict(family="Segoe UI, Helvetica, Arial, sans-serif", size=12, color="#222"))
    return '<div class="figure">' + fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG) + "</div>"


def _data_uri(image: PIL.Image.Image, display: int = 224) -> str:
    """A JPEG data URI, upscaled to ``display`` px when the model's view is smaller (sharper print)."""
    if image.width < display:
        image = image.resize((display, display * image.height // image.width), PIL.Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _dataset_name(run: RunData) -> str:
    data = str(run.config.get("data", "") or run.spec.get("info", {}).get("dataset", ""))
    return Path(data).stem or data or "the dataset"


def _duration(run: RunData) -> float | None:
    started, ended = run.status.get("started"), run.status.get("ended")
    if started and ended:
        return float(ended) - float(started)
    return float(run.epochs[-1].get("elapsed_s", 0)) if run.epochs else None


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"



# --- sections ------------------------------------------------------------------------------

def _problem(run: RunData) -> str:
    counts: dict[str, int] = run.check.get("counts") or {}
    good = run.good
    rows = [[_e(c) + (' <span class="tag">good part</span>' if c == good else ""), str(counts.get(c, "–"))]
            for c in run.classes]
    rows.append(["<strong>Total</strong>", f"<strong>{sum(counts.values()) if counts else '–'}</strong>"])
    kind = (f"; <strong>{_e(good)}</strong> is a good part, every other class is a kind of defect" if good else "")
    lead = f"Sort photos from <em>{_e(_dataset_name(run))}</em> into {len(run.classes)} classes{kind}."
    return _section("problem", "The problem", _table(["Class", "Photos"], rows, "narrow") + _split_text(run), lead)


def _split_text(run: RunData) -> str:
    sp, m = run.metrics.get("splits") or {}, run.metrics
    held = m.get("evaluated_on", "test")
    choose = "the best version of the model" + (" and the alarm threshold" if run.good else "")
    cv = m.get("crossval") or {}
    if held == "oof":
        text = (f"The photos were divided into {cv.get('folds')} groups (folds) keeping each class's share, with "
                "copies of a photo always in the same fold. Each fold was scored by a model trained on the other "
                "folds only, so every photo's score comes from a model that never saw it; each fold's alarm "
                "threshold was chosen on the other folds' scores. The model delivered was then trained on every "
                f"photo for {cv.get('final_epochs')} round(s), the same training the folds went through.")
    else:
        text = (f"The photos were divided at random, keeping each class's share: <strong>{sp.get('train', '–')}"
                f"</strong> to learn from, <strong>{sp.get('val', '–')}</strong> to choose {choose}, and "
                f"<strong>{sp.get('test', '–')}</strong> kept aside for the numbers below.")
        if held != "test":
            text += (" There were too few photos for a separate test set, so the numbers use the checking photos, "
                     "which also chose the model: they are a little optimistic.")
        elif cv.get("stopped_in_fold"):
            text += (f" (Training was stopped during fold {cv['stopped_in_fold']} of a {cv.get('folds')}-fold "
                     "cross-validation; these are that fold's photos.)")
    issues = [f"{len(run.check.get(k) or [])} {label}" for k, label in
              (("unreadable", "unreadable files were skipped"), ("duplicates", "duplicate photos were found"),
               ("near_duplicates", "set(s) of near-copies were kept together"))
              if run.check.get(k)]
    return f"<p>{text}</p>" + (f'<p class="note">{_e("; ".join(issues))}.</p>' if issues else "")


def _backbone_words(name: str) -> str:
    arch = name.split(".")[0]
    info = next((b for b in CURATED if b.name == name or b.name.split(".")[0] == arch), None)
    if info is None:
        return f"<strong>{_e(name)}</strong>"
    return f"<strong>{_e(info.label)}</strong> <span class=\"muted\">({_e(name)})</span>: {_e(info.blurb)}"


def _start_words(run: RunData) -> str:
    strategy = run.config.get("strategy") or run.spec.get("info", {}).get("strategy", "")
    start = "scratch" if strategy == Strategy.SCRATCH.value else str(run.config.get("start") or "imagenet")
    try:
        point = parse_start(start)
    except GraftError:
        return _e(start)
    if point.kind == "imagenet":
        return ("ImageNet pretrained: the network had already learned to see edges, textures and shapes on "
                "1.2 million everyday photos.")
    words = point.describe()
    return _e(words[:1].upper() + words[1:]) + "."


def _approach(run: RunData) -> str:
    strategy = str(run.config.get("strategy") or run.spec.get("info", {}).get("strategy", ""))
    size = run.spec.get("image_size", "–")
    best, rounds = run.metrics.get("best_epoch"), run.metrics.get("epochs_run")
    cv = run.metrics.get("crossval") or {}
    training = f"{rounds or len(run.epochs)} rounds (epochs) over the training photos in {_minutes(_duration(run))}"
    if best:
        training += f"; the version from round {best} was kept because it did best on the checking photos"
    if cv.get("completed"):
        training = (f"{cv.get('folds')} models for the cross-validation, then the delivered model: "
                    f"{rounds} rounds (epochs) over every photo; {_minutes(_duration(run))} in all")
    shape = ("the whole photo, squashed, nothing cropped away" if run.spec.get("resize", "squash") == "squash" else
             "the whole photo, its shape kept and the rest padded, nothing cropped away")
    bits = f" 16-bit photos read on a {run.spec['bit_depth']}-bit scale." if run.spec.get("bit_depth") else ""
    rows = [("Starting network", _backbone_words(str(run.spec.get("backbone", "")))),
            ("Starting point", _start_words(run)),
            ("How it learned", _e(STRATEGY_WORDS.get(strategy, strategy))),
            ("Photo size", f"{size}×{size} pixels: {shape}.{bits}"),
            ("Training", _e(training) + "."),
            ("Computer", _e(f"{str(run.status.get('device', 'cpu')).upper()}, "
                            f"{run.status.get('precision', 'fp32')} arithmetic"))]
    body = "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"
    return _section("approach", "The approach", body)


def _training(run: RunData) -> str:
    if not run.epochs:
        return _section("training", "Training", "<p>No training rounds were recorded.</p>")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Error (lower is better)", "Accuracy (higher is better)"),
                        horizontal_spacing=0.12)
    x = [e["epoch"] for e in run.epochs]
    for col, key, fmt in ((1, "loss", None), (2, "acc", ".0%")):
        for split, name, color, dash in (("train", "training photos", _GREY, "dash"),
                                         ("val", "checking photos", _ACCENT, "solid")):
            fig.add_trace(go.Scatter(x=x, y=[e.get(f"{split}_{key}") for e in run.epochs], name=name,
                                     mode="lines+markers", line=dict(color=color, dash=dash), legendgroup=split,
                                     showlegend=col == 1), row=1, col=col)
        fig.update_yaxes(tickformat=fmt, row=1, col=col)
    fig.update_xaxes(title_text="round (epoch)", dtick=max(1, len(x) // 10))
    best = run.metrics.get("best_epoch")
    if best:
        fig.add_vline(x=best, line=dict(color=_RED, dash="dot", width=2), opacity=0.8, row="all", col="all",
                      annotation_text="kept", annotation_position="top right", annotation_font_color=_RED)
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0.5, xanchor="center"))
    lead = ("Each round the model sees every training photo once. The dotted red line marks the round whose model "
            "was kept." if best else "Each round the model sees every training photo once.")
    return _section("training", "Training", _figure(fig, 340), lead)


def _cards(cards: list[tuple[str, str, str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{_e(t)}</div><div class="value">{_e(v)}</div>'
        f'<div class="sub">{_e(s)}</div><div class="range">{_e(r)}</div></div>' for t, v, s, r in cards) + "</div>"


def _results(run: RunData) -> str:
    m = run.metrics
    n = int(m.get("n", 0))
    correct = sum(row[k] for k, row in enumerate(m.get("confusion") or []))
    cards = [("Accuracy", _pct(m.get("accuracy")), f"{correct} of {n} photos classified correctly",
              _range(run, "accuracy"))]
    if run.good:
        cards.append(("Defects caught", _pct(m.get("catch_rate")),
                      f"{m.get('defects_caught', 0)} of {m.get('defects', 0)} defective parts flagged",
                      _range(run, "catch_rate")))
        cards.append(("False alarms", _pct(m.get("false_alarm_rate")),
                      f"{m.get('false_alarms', 0)} of {m.get('good_parts', 0)} good parts flagged",
                      _range(run, "false_alarm_rate")))
        if m.get("evaluated_on") == "oof":
            rule = (f"A part is flagged when the model is at least that sure it shows a defect: the delivered model "
                    f"from {fmt_score(m.get('threshold'))} up; each fold's photos were judged with a threshold "
                    "chosen on the other folds only.")
        else:
            rule = (f"A part is flagged when the model is at least {fmt_score(m.get('threshold'))} sure it shows a "
                    "defect; that threshold was picked on the checking photos.")
        lead = (f"{rule} Measured on {_e(held_out_words(m))}. The 95% ranges say where the true rates could lie.")
    else:
        cards.append(("Balanced accuracy", _pct(m.get("balanced_accuracy")),
                      "the average of each class's share found; every class counts equally",
                      _range(run, "balanced_accuracy")))
        lead = ("No class was marked as the good part, so every class counts the same; the verdict is the most "
                f"likely class. Measured on {_e(held_out_words(m))}.")
    body = _cards(cards) + _band(run) + _later_threshold(run) + _warnings(run) + _per_class(run)
    return _section("results", "Headline numbers", body, lead)


def _band(run: RunData) -> str:
    """What the uncertain band costs: the share of photos sent to a person, at the model's current settings."""
    from .results import band_at, load_predictions

    band = run.decision.uncertain_band
    if band <= 0:
        return ""
    try:
        summary = band_at(load_predictions(run.path), band=band)
    except GraftError:
        return ""
    if not summary.get("n"):
        return ""
    text = (f"Uncertain answers go to a person: with a band of {band:.2f} around the threshold, "
            f"{summary['sent_to_person']} of {summary['n']} photos ({_pct(summary['share'])}) would be sent to a "
            "person instead of being decided")
    if run.good and summary.get("defects"):
        text += (f"; outside the band, {summary['defects_missed']} defective part(s) would pass and "
                 f"{summary['false_alarms']} good part(s) would be flagged")
    return f'<p class="note">{_e(text)}.</p>'


def _later_threshold(run: RunData) -> str:
    """A threshold saved after training, with its figures on the same photos (optimistic if chosen on them)."""
    from .results import at_threshold, is_optimistic, load_predictions

    d = run.decision
    trained = d.threshold_from_training
    if not run.good or trained is None or abs(d.threshold - trained) < 1e-12:
        return ""
    try:
        preds = load_predictions(run.path)
    except GraftError:
        return ""
    point = at_threshold(preds, d.threshold)
    label = (f"tuned on the {'test' if preds.split == 'test' else 'same'} photos: optimistic"
             if is_optimistic(preds, d.chosen_on) else f"chosen on {d.chosen_on or 'another set of photos'}")
    text = (f"The model now uses the threshold {fmt_score(d.threshold)} (saved {d.saved or 'later'}; {label}). On the "
            f"same photos it would catch {point.caught.k} of {point.caught.n} defects ({_pct(point.caught.value)}) "
            f"with {point.false_alarms.k} of {point.false_alarms.n} false alarms ({_pct(point.false_alarms.value)}). "
            "The numbers above stay those measured at training's threshold.")
    return f'<p class="note">{_e(text)}</p>'


def _warnings(run: RunData) -> str:
    m, notes = run.metrics, []
    predicted = m.get("predicted_classes") or []
    if len(predicted) == 1 and len(run.classes) > 1:
        notes.append(f"The model gives the same answer ('{predicted[0]}') for every photo: it has not learned to "
                     "tell the classes apart yet. Add photos, train longer or try another strategy.")
    n = int(m.get("n", 0))
    if 0 < n < 50:
        notes.append(f"These numbers come from only {n} photos, so one photo moves the accuracy by "
                     f"{fmt_pct(1 / n)}. Treat them as a first indication.")
    return "".join(f'<p class="warning">{_e(t)}</p>' for t in notes)


def _per_class(run: RunData) -> str:
    per = run.metrics.get("per_class") or {}
    rows = [[_e(c), str(per[c].get("support", 0)), _pct(per[c].get("recall")), _pct(per[c].get("precision"))]
            for c in run.classes if c in per]
    held = {"oof": "Photos scored", "val": "Checking photos"}.get(run.metrics.get("evaluated_on"), "Test photos")
    header = ["Class", held, "Found (recall)", "Right when it says so (precision)"]
    note = (f'<p class="note">{DASH}: no photos of that class were scored, so there is nothing to measure.</p>'
            if any(not per[c].get("support") for c in run.classes if c in per) else "")
    return "<h3>Per class</h3>" + _table(header, rows) + note


def _confusion(run: RunData) -> str:
    z, classes = run.metrics.get("confusion") or [], run.classes
    if not z:
        return _section("confusion", "Where it goes wrong", "<p>No test photos were scored.</p>")
    labels = [html.escape(c, quote=False) for c in classes]  # plotly reads labels as HTML-ish text
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, colorscale="Blues", showscale=False, text=z,
                               texttemplate="%{text}", textfont=dict(size=14), xgap=2, ygap=2,
                               hovertemplate="actual %{y}, model said %{x}: %{z}<extra></extra>"))
    fig.update_xaxes(title_text="the model said", side="bottom", type="category")
    fig.update_yaxes(title_text="actual class", autorange="reversed", type="category")
    size = 180 + 45 * len(classes)
    fig.update_layout(width=size + 120)
    lead = ("Each row is what the photo really shows; each column is what the model said. The diagonal holds the "
            "right answers; every other number is a mistake of that kind.")
    return _section("confusion", "Where it goes wrong", _figure(fig, size, dict(l=130, r=20, t=20, b=70)), lead)


def _examples(run: RunData, max_examples: int) -> str:
    title = "Examples, with where the model looked"
    pairs = test_images(run.path)
    if not pairs:
        where = _e(run.config.get("data", "its dataset"))
        return _section("examples", title, f'<p class="note">The test photos are no longer at {where}, so no '
                                           "examples can be shown.</p>")
    predictor = Predictor.load(run.path / "model")
    wrong = [p for p in pairs if p[0].get("correct") != "True"]
    right = [p for p in pairs if p[0].get("correct") == "True"]
    body = ""
    for label, group, ok in (("Mistakes", wrong, False), ("Right answers", right, True)):
        cards = [_example(predictor, row, path, ok) for row, path in _spread(group, max_examples)]
        cards = [c for c in cards if c]
        if cards:
            body += f'<h3>{label}</h3><div class="examples">{"".join(cards)}</div>'
    if not wrong:
        body = '<p class="note">The model got every test photo right.</p>' + body
    lead = ("Left: the photo as the model sees it. Right: the same photo with a heatmap of what the model looked "
            "at most for its answer (red and yellow = most important). A mistake with the heat on the background, "
            "a label or a fixture, not on the part, means the model learned a shortcut.")
    return _section("examples", title, body, lead)


def _spread(group: list[tuple[dict[str, str], Path]], n: int) -> list[tuple[dict[str, str], Path]]:
    """Up to ``n`` photos, taking the actual classes in turn, most confident answers first."""
    by_class: dict[str, list[tuple[dict[str, str], Path]]] = {}
    for row, path in sorted(group, key=lambda p: -_confidence(p[0])):
        by_class.setdefault(row.get("label", ""), []).append((row, path))
    out: list[tuple[dict[str, str], Path]] = []
    while len(out) < n and any(by_class.values()):
        for items in by_class.values():
            if items and len(out) < n:
                out.append(items.pop(0))
    return out


def _confidence(row: dict[str, str]) -> float:
    try:
        return float(row.get(f"p_{row.get('predicted', '')}", 0.0))
    except ValueError:
        return 0.0


def _example(predictor: Predictor, row: dict[str, str], path: Path, ok: bool) -> str:
    try:
        view = PIL.Image.fromarray(predictor.preprocess(path))
        heat, cam = explain(predictor, path, target=row.get("predicted") or None)
    except (UnreadableImage, GraftError):
        return ""  # a photo that vanished or changed since training is simply not shown
    flat = '<br><span class="muted">No single area stood out.</span>' if float(cam.max()) <= 0 else ""
    badge = '<span class="badge ok">Right</span>' if ok else '<span class="badge bad">Wrong</span>'
    said = f"model said <strong>{_e(row.get('predicted'))}</strong> ({fmt_pct(_confidence(row))} sure)"
    return (f'<figure class="example"><div class="pair"><img src="{_data_uri(view)}" alt="photo">'
            f'<img src="{_data_uri(heat)}" alt="heatmap"></div><figcaption>{badge} Actually '
            f'<strong>{_e(row.get("label"))}</strong>, {said}{flat}<br><span class="file">{_e(row.get("image"))}</span>'
            "</figcaption></figure>")


# --- the scratch baseline ------------------------------------------------------------------

def find_scratch_baseline(run_dir: str | Path) -> Path | None:
    """The newest finished run in the same runs folder trained from scratch on the same dataset."""
    run_dir = Path(run_dir)
    data = (read_json(run_dir / "config.json", {}) or {}).get("data")
    if not data or not run_dir.parent.is_dir():
        return None
    found = []
    for other in run_dir.parent.iterdir():
        config = read_json(other / "config.json", {}) if other.is_dir() and other != run_dir else None
        if (isinstance(config, dict) and config.get("strategy") == Strategy.SCRATCH.value
                and _same_path(config.get("data"), data) and (other / "metrics.json").is_file()
                and read_status(other).get("state") == "done"):
            found.append((float(read_status(other).get("ended") or 0), other.name, other))
    return max(found)[2] if found else None


def _same_path(a: Any, b: Any) -> bool:
    try:
        return bool(a) and Path(str(a)).resolve() == Path(str(b)).resolve()
    except (OSError, RuntimeError):
        return False


def _baseline(run: RunData) -> str:
    title = "Compared with learning from scratch"
    if run.config.get("strategy") == Strategy.SCRATCH.value:
        return _section("baseline", title, "<p>This run is itself trained from scratch: it is the baseline other "
                                           "runs on the same photos are compared with.</p>")
    path = find_scratch_baseline(run.path)
    if path is None:
        return _section("baseline", title, '<p class="note">No finished run trained from scratch on the same photos '
                                           "was found next to this one. Train one (strategy 'scratch') to see what "
                                           "starting from a pretrained network adds.</p>")
    base = load_run(path)
    lead = (f"The same photos, the same test set, but a network that started from random weights "
            f"(run <em>{_e(path.name)}</em>). The gap is what the pretrained starting point brings.")
    return _section("baseline", title, _baseline_table(run, base) + _baseline_chart(run, base), lead)


def _baseline_rows(run: RunData) -> list[tuple[str, float | None, bool]]:
    """(name, value, higher is better) of the numbers both runs are compared on."""
    m = run.metrics
    rows = [("Accuracy", m.get("accuracy"), True)]
    if run.good:
        rows += [("Defects caught", m.get("catch_rate"), True), ("False alarms", m.get("false_alarm_rate"), False)]
    return rows + [("Balanced score (macro-F1)", m.get("macro_f1"), True)]


def _baseline_table(run: RunData, base: RunData) -> str:
    rows = []
    for (name, ours, higher), (_, theirs, _) in zip(_baseline_rows(run), _baseline_rows(base)):
        gap = "–"
        if ours is not None and theirs is not None:
            points = (ours - theirs) * 100
            tone = "" if abs(points) < 0.05 else "better" if (points > 0) == higher else "worse"
            gap = f'<span class="{tone}">{points:+.1f} pts</span>'
        rows.append([_e(name), _pct(ours), _pct(theirs), gap])
    rows.append(["Training time", _minutes(_duration(run)), _minutes(_duration(base)), ""])
    return _table(["", "This model", "From scratch", "Difference"], rows)


def _baseline_chart(run: RunData, base: RunData) -> str:
    names = [n for n, _, _ in _baseline_rows(run)][:3]
    fig = go.Figure()
    for label, data, color in (("This model", run, _ACCENT), ("From scratch", base, _GREY)):
        values = [v or 0.0 for _, v, _ in _baseline_rows(data)][:3]
        fig.add_trace(go.Bar(x=names, y=values, name=label, marker_color=color, texttemplate="%{y:.0%}",
                             textposition="outside"))
    fig.update_yaxes(tickformat=".0%", range=[0, 1.15])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.12, x=0.5, xanchor="center"))
    return _figure(fig, 300)


# --- the page ------------------------------------------------------------------------------

def _verdict(run: RunData) -> Verdict:
    """The verdict with the targets saved with the run (the one training recorded if they are unchanged)."""
    if run.metrics.get("ranges") is not None:
        return judge(run.metrics, run.decision.targets)
    stored = run.metrics.get("verdict") or {}
    return Verdict(stored.get("level", "promising"), stored.get("reason", "")) if stored else judge(run.metrics)


def _verdict_box(run: RunData) -> str:
    verdict = _verdict(run)
    t = run.decision.targets
    targets = (f"Targets: catch at least {fmt_pct(t.catch_rate)} of defects with at most "
               f"{fmt_pct(t.false_alarm_rate)} false alarms." if run.good else
               f"Target: every class found at least {fmt_pct(t.catch_rate)} of the time.")
    return (f'<section id="verdict" class="verdict {verdict.level}"><div class="level">{_e(verdict.title)}</div>'
            f'<p>{_e(verdict.reason)}</p><p class="muted">{_e(targets)}</p></section>')


def _summary(run: RunData) -> str:
    m = run.metrics
    text = f"On {held_out_words(m)}, the model was right {_pct(m.get('accuracy'))} of the time."
    if run.good and m.get("catch_rate") is not None:
        text += (f" It caught {_pct(m.get('catch_rate'))} of defective parts"
                 + (f" and raised a false alarm on {_pct(m.get('false_alarm_rate'))} of good parts."
                    if m.get("false_alarm_rate") is not None else "."))
    if run.status.get("state") not in (None, "done"):
        text += f" Note: training ended as '{run.status.get('state')}'; this is the best model it reached."
    return _e(text)


def _page(run: RunData, sections: list[str]) -> str:
    title = f"Inspection model report: {_dataset_name(run)}"
    created = run.spec.get("info", {}).get("created") or time.strftime("%Y-%m-%d %H:%M")
    nav = "".join(f'<a href="#{sid}">{name}</a>' for sid, name in zip(SECTION_IDS, (
        "Problem", "Approach", "Training", "Numbers", "Mistakes", "Examples", "Baseline")))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body><main>
<header><div class="brand">Graft · model report</div><h1>{_e(title)}</h1>
<p class="meta">Run {_e(run.path.name)} · model saved {_e(created)} · {len(run.classes)} classes</p></header>
{_verdict_box(run)}
<div class="summary">{_summary(run)}</div>
<nav>{nav}</nav>
{"".join(sections)}
<footer>Made with Graft {_e(__version__)} on {time.strftime("%Y-%m-%d")}. The numbers are measured on
{_e(held_out_words(run.metrics))}. Ranges: 95% (Wilson for rates, bootstrap for ROC AUC and balanced accuracy).
Heatmaps: Grad-CAM.</footer>
</main></body></html>
"""


_CSS = """
:root { --ink:#1d2733; --muted:#5f6b7a; --line:#d9dee4; --accent:#1f4e79; --soft:#f3f6f9;
        --good:#1e7b4f; --bad:#b03a2e; }
* { box-sizing: border-box; }
body { margin:0; background:#eef1f4; color:var(--ink);
       font:15px/1.55 "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width:960px; margin:24px auto; background:#fff; padding:40px 48px;
       box-shadow:0 1px 4px rgba(0,0,0,.08); }
header { border-bottom:3px solid var(--accent); padding-bottom:12px; }
.brand { color:var(--accent); font-weight:600; letter-spacing:.06em; text-transform:uppercase; font-size:12px; }
h1 { margin:6px 0 4px; font-size:26px; font-weight:600; }
h2 { font-size:19px; margin:0 0 10px; color:var(--accent); font-weight:600; }
h3 { font-size:15px; margin:18px 0 8px; }
.meta, .muted, .file { color:var(--muted); }
.meta { margin:0; font-size:13px; }
.summary { margin:20px 0 8px; padding:14px 18px; background:var(--soft); border-left:4px solid var(--accent);
           font-size:16px; }
nav { margin:10px 0 6px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:16px; }
section { padding:22px 0 10px; border-top:1px solid var(--line); margin-top:18px; }
.lead { color:var(--muted); margin:0 0 12px; }
table { border-collapse:collapse; width:100%; margin:6px 0 12px; font-size:14px; }
table.narrow { width:auto; min-width:320px; }
th, td { text-align:left; padding:6px 12px; border-bottom:1px solid var(--line); }
th { background:var(--soft); font-weight:600; }
td:not(:first-child), th:not(:first-child) { text-align:right; }
dl { display:grid; grid-template-columns:170px 1fr; gap:8px 16px; margin:0; }
dt { font-weight:600; } dd { margin:0; }
.tag { display:inline-block; font-size:11px; padding:1px 7px; border-radius:9px; background:#e3f1e9;
       color:var(--good); margin-left:6px; }
.cards { display:flex; gap:14px; flex-wrap:wrap; margin:8px 0 10px; }
.card { flex:1 1 200px; border:1px solid var(--line); border-radius:6px; padding:14px 16px; }
.card .label { font-size:12px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); }
.card .value { font-size:32px; font-weight:600; color:var(--accent); line-height:1.2; }
.card .sub { font-size:13px; color:var(--muted); }
.card .range { font-size:12px; color:var(--muted); margin-top:2px; }
.verdict { margin:20px 0 4px; padding:14px 18px; border-radius:6px; border-left:6px solid; border-top:none; }
.verdict .level { font-size:20px; font-weight:600; }
.verdict p { margin:4px 0 0; }
.verdict.not_usable { background:#fbeaea; border-color:var(--bad); }
.verdict.promising { background:#fdf3e7; border-color:#d98a1f; }
.verdict.ready { background:#e3f1e9; border-color:var(--good); }
.note { color:var(--muted); font-style:italic; }
.warning { background:#fdf3e7; border-left:4px solid #d98a1f; padding:8px 12px; margin:10px 0; }
.examples { display:grid; grid-template-columns:repeat(auto-fill, minmax(270px, 1fr)); gap:14px; }
.example { margin:0; border:1px solid var(--line); border-radius:6px; padding:8px; break-inside:avoid; }
.pair { display:flex; gap:6px; }
.pair img { width:50%; aspect-ratio:1; object-fit:fill; border-radius:3px; display:block; }
figcaption { font-size:13px; margin-top:6px; line-height:1.45; }
.file { font-size:11px; word-break:break-all; }
.badge { display:inline-block; font-size:11px; font-weight:600; padding:1px 7px; border-radius:9px; color:#fff; }
.badge.ok { background:var(--good); } .badge.bad { background:var(--bad); }
span.better { color:var(--good); font-weight:600; } span.worse { color:var(--bad); font-weight:600; }
.figure { margin:4px 0 8px; }
footer { margin-top:28px; padding-top:12px; border-top:1px solid var(--line); font-size:12px; color:var(--muted); }
@media print {
  body { background:#fff; font-size:12px; }
  main { box-shadow:none; margin:0; padding:0; max-width:none; }
  nav { display:none; }
  section { break-inside:avoid-page; }
  #examples { break-inside:auto; }
}
"""
