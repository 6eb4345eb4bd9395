"""Views for trying a model on photos (the Test page), plus the cached predictor and heatmaps
that the Evaluate page shares.

Pages stay thin: they call ``render_*`` here. The numbers come from ``core``; this module only lays them out.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.batch import (batch_rows, batch_score, batch_summary, folder_in_workspace, labels_from_folders,
                        per_class_found, rows_csv)
from core.numbers import fmt_against, fmt_range
from ui.anomaly_views import HEATMAP_TOGGLE, anomaly_labels, anomaly_photo_card, is_anomaly
from ui.charts import TEMPLATE, plain
from ui.common import ACCENT, GOOD, MUTED, fmt_pct, md_escape, show_error, workspace

__all__ = ["model_stamp", "load_predictor", "predictor_for", "heatmap_png", "heatmap_view", "heatmap_is_diffuse",
           "photo_grid_rows", "flow", "HEATMAP_LEGEND", "DIFFUSE_NOTE", "confidence_figure", "sureness",
           "verdict_text", "shown_image", "Photo", "photos_from_uploads", "photos_from_paths", "render_photo_results",
           "render_single_test", "render_batch_test", "render_batch_score", "batch_figure"]

HEATMAP_PX = 320  # overlays are small model-sized maps; shown larger for people


def flow() -> Any:
    """A row that wraps: side by side on a wide screen, one under the other at 900 px (sidebar open)."""
    return st.container(horizontal=True, wrap=True, gap="small")


# --- the model, loaded once per (folder, version) and shared by every session ------------------


def model_stamp(run_dir: str | Path) -> tuple[str, float]:
    """(model folder, newest mtime of its files): new decision settings or new weights give a new key."""
    from core import resolve_model_dir

    model_dir = resolve_model_dir(run_dir)
    names = [n for n in ("model.json", "model.safetensors", "decision.json") if (model_dir / n).is_file()]
    stamp = max((model_dir / name).stat().st_mtime for name in names)
    return str(model_dir), stamp


@st.cache_resource(max_entries=4, show_spinner=False)
def load_predictor(model_dir: str, stamp: float) -> Any:
    """A loaded :class:`core.Predictor`; shared across sessions, so it is never mutated after loading."""
    from core import Predictor

    return Predictor.load(model_dir)


def predictor_for(run_dir: str | Path) -> Any:
    """The cached predictor of a run (its model folder and version are the cache key)."""
    model_dir, stamp = model_stamp(run_dir)
    with st.spinner("Loading the model…"):
        return load_predictor(model_dir, stamp)


# in plain words, shown under every set of heatmaps
HEATMAP_LEGEND = ("Heatmaps: red and yellow mark the parts of the photo that pushed the model towards its "
                  "answer; blue parts played little part.")
DIFFUSE_NOTE = "The model is not looking at one place; treat this verdict with care."
_HOT, _DIFFUSE_SHARE, _FLAT = 0.5, 0.45, 0.25


def heatmap_is_diffuse(cam: Any) -> bool:
    """Whether a heatmap (values 0..1) points at no one place: its hot area (at least half the peak) covers
    much of the photo, or it is nearly flat. Such a map can't show what the verdict rests on."""
    import numpy as np

    cam = np.asarray(cam, dtype=float)
    if cam.size == 0:
        return False
    peak, low = float(cam.max()), float(cam.min())
    if peak - low < _FLAT:
        return True
    return float((cam >= low + _HOT * (peak - low)).mean()) > _DIFFUSE_SHARE


@st.cache_data(max_entries=1024, show_spinner=False)
def heatmap_view(model_dir: str, stamp: float, image: str | bytes, target: str | None) -> tuple[bytes | None, bool]:
    """(PNG of the photo with "where the model looked" blended on top, whether that map is diffuse);
    ``(None, False)`` when it can't be made. Cached per model version, photo and explained class."""
    try:
        from core.explain import explain
    except ImportError:  # heatmaps are optional: the page still works without them
        return None, False
    predictor = load_predictor(model_dir, stamp)
    try:
        picture, cam = explain(predictor, image, target)
    except Exception:  # an unreadable photo or a backbone without a map: show the photo alone
        return None, False
    picture = picture.resize((HEATMAP_PX, HEATMAP_PX))
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    # a good-parts-only map is a score per spot, not attention: a clean part's map is evenly blue, and that
    # is the answer, not a sign of a model looking nowhere in particular
    return buf.getvalue(), heatmap_is_diffuse(cam) and not is_anomaly(predictor.spec)


def heatmap_png(model_dir: str, stamp: float, image: str | bytes, target: str | None) -> bytes | None:
    """PNG of the photo with the heatmap on top, or None (see :func:`heatmap_view`)."""
    return heatmap_view(model_dir, stamp, image, target)[0]


def _card(path: str | None, caption: str, heat: tuple[str, float, str] | None) -> bool:
    """One thumbnail (square, so rows line up) with its caption; returns whether its heatmap is diffuse."""
    if path is None:
        st.caption(f"{caption} (photo missing)")
        return False
    png, diffuse = heatmap_view(heat[0], heat[1], path, heat[2]) if heat else (None, False)
    try:
        st.image(png if png else shown_image(path, HEATMAP_PX, square=True),
                 caption=caption + (" · spread out" if diffuse else ""), width="stretch")
    except Exception:  # a photo changed or vanished since training: say so, keep the page
        st.caption(f"{caption} (photo can't be read)")
    return diffuse


def photo_grid_rows(cards: Sequence[tuple[str | None, str, tuple[str, float, str] | None]], columns: int) -> int:
    """Thumbnails row by row (each row its own columns, so they line up); returns how many heatmaps are diffuse.

    Args:
        cards: (photo path or None, caption, (model folder, model stamp, class to explain) or None).
        columns: thumbnails per row.
    """
    diffuse = 0
    for start in range(0, len(cards), columns):
        cols = st.columns(columns)
        for col, card in zip(cols, cards[start:start + columns]):
            with col:
                diffuse += _card(*card)
    return diffuse


# --- one photo's verdict ---------------------------------------------------------------------------


def verdict_text(label: str | None, good_class: str | None) -> str:
    """``"Good part"`` / ``"Defect: scratch"`` / plain class, as plain text (no markdown)."""
    if label is None:
        return "Can't be read"
    if good_class is None:
        return label
    return f"Good part ({label})" if label == good_class else f"Defect: {label}"


def confidence_figure(scores: dict[str, float], predicted: str | None, good_class: str | None = None,
                      height: int | None = None) -> go.Figure:
    """Horizontal bars of the model's confidence per class, most likely on top, the verdict highlighted."""
    ordered = sorted(scores.items(), key=lambda kv: kv[1])
    colors = [(GOOD if c == good_class else ACCENT) if c == predicted else MUTED for c, _ in ordered]
    fig = go.Figure(go.Bar(
        x=[v * 100 for _, v in ordered], y=[plain(c) for c, _ in ordered], orientation="h",
        marker_color=colors, text=[fmt_pct(v) for _, v in ordered], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.1f}%<extra></extra>"))
    fig.update_layout(template=TEMPLATE, height=height or 60 + 34 * len(ordered), showlegend=False,
                      margin=dict(l=10, r=40, t=10, b=10), bargap=0.3)
    fig.update_xaxes(range=[0, 112], ticksuffix="%", showgrid=False, showticklabels=False)
    fig.update_yaxes(type="category")
    return fig


@dataclass(frozen=True)
class Photo:
    """A photo to test: a name to show and its bytes or file path."""

    name: str
    source: bytes | str


def photos_from_uploads(files: Sequence[Any]) -> list[Photo]:
    """Streamlit uploads (or a camera shot) as photos; the bytes are read once."""
    return [Photo(getattr(f, "name", "") or "photo", f.getvalue()) for f in files if f is not None]


def photos_from_paths(paths: Sequence[str | Path]) -> list[Photo]:
    """Photo files on disk (e.g. ``st.session_state["test_images"]``, used by tests and scripts)."""
    return [Photo(Path(p).name, str(p)) for p in paths]


def _predict(run_dir: str, photos: list[Photo]) -> list[Any]:
    predictor = predictor_for(run_dir)
    with st.spinner(f"Looking at {len(photos)} photo(s)…"):
        return predictor.predict([p.source for p in photos])


def render_photo_results(run_dir: str, photos: list[Photo], show_heatmaps: bool = True) -> list[Any]:
    """One card per photo: the photo and its heatmap, the verdict, and confidence bars."""
    results = _predict(run_dir, photos)
    model_dir, stamp = model_stamp(run_dir)
    spec = predictor_for(run_dir).spec
    for i, (photo, result) in enumerate(zip(photos, results)):
        with st.container(border=True):
            _photo_card(i, photo, result, spec, (model_dir, stamp) if show_heatmaps else None)
    return results


def shown_image(source: bytes | str, px: int = 640, square: bool = False) -> Any:
    """The photo as Graft decodes it (upright, RGB, safe), shrunk for the screen; ``square`` pads it to a
    ``px`` square (shape kept) so a grid of photos of mixed shapes lines up."""
    from PIL import ImageOps

    from core.images import open_rgb

    picture = open_rgb(source, draft=(px, px))
    if square:
        return ImageOps.pad(picture, (px, px), color=(241, 245, 249))
    picture.thumbnail((px, px))
    return picture


def _photo_card(i: int, photo: Photo, result: Any, spec: Any, model: tuple[str, float] | None) -> None:
    good = spec.good_class
    st.markdown(f"**{md_escape(photo.name)}**")
    if result.error:
        st.warning(md_escape(result.error), icon=":material/broken_image:")
        return
    if is_anomaly(spec):  # good parts only: its own verdict words, score scale and legend
        heat = heatmap_view(model[0], model[1], photo.source, None) if model else None
        anomaly_photo_card(i, photo, result, spec, heat, shown_image(photo.source, HEATMAP_PX, square=True))
        return
    row = flow()
    left, middle, right = row.container(width=190), row.container(width=190), row.container(width="stretch")
    left.image(shown_image(photo.source, HEATMAP_PX, square=True), caption="The photo", width="stretch")
    png, diffuse = heatmap_view(model[0], model[1], photo.source, result.label) if model else (None, False)
    if png:
        middle.image(png, caption=f"Where it looked to decide '{result.label}'", width="stretch")
    elif model:
        middle.caption("No heatmap for this photo.")
    flagged = good is not None and result.label != good
    (right.error if flagged else right.success)(
        md_escape(f"{verdict_text(result.label, good)} · {sureness(result, spec)}"),
        icon=":material/report:" if flagged else ":material/verified:")
    right.plotly_chart(confidence_figure(result.scores, result.label, good), width="stretch",
                       config={"displayModeBar": False}, key=f"conf-{i}")
    if result.defect_score is not None:
        score, threshold = fmt_against(result.defect_score, spec.threshold, digits=3)
        right.caption(f"Defect score {score}; parts are flagged from {threshold} up.")
    if png:
        st.caption(HEATMAP_LEGEND)
    if diffuse:
        st.warning(DIFFUSE_NOTE, icon=":material/blur_on:")


def sureness(result: Any, spec: Any) -> str:
    """How sure, in words that match the verdict: a good part can be "good" by the threshold alone."""
    if spec.good_class is not None and result.label == spec.good_class and result.confidence < 0.5:
        score, threshold = fmt_against(result.defect_score, spec.threshold)  # never "0.52 is below 0.520"
        return f"defect score {score} is below the threshold {threshold}"
    return f"{fmt_pct(result.confidence)} sure"


# --- the Test page's two modes ------------------------------------------------------------------


def render_single_test(run_dir: str) -> list[Any]:
    """Uploads, the camera (behind a toggle), or ``session_state["test_images"]`` paths."""
    uploads = st.file_uploader("Upload photos", accept_multiple_files=True,
                               help="JPEG, PNG, BMP, TIFF or WebP. Several at once is fine.")
    photos = photos_from_uploads(uploads or [])
    if st.toggle("Use the camera", help="Take a photo with this computer's camera. The browser asks for "
                                        "permission the first time."):
        shot = st.camera_input("Take a photo")
        photos += photos_from_uploads([shot])
    photos += photos_from_paths(st.session_state.get("test_images") or [])
    if not photos:
        st.info("Upload one or more photos of parts to see what the model says.", icon=":material/upload:")
        return []
    label = HEATMAP_TOGGLE if is_anomaly(predictor_for(run_dir).spec) else "Show where the model looked"
    heat = st.toggle(label, value=True, key="test_heatmaps")
    return render_photo_results(run_dir, photos, show_heatmaps=heat)


def _extract_upload(upload: Any) -> Path:
    """An uploaded zip extracted (safely) into a temp folder kept for this session."""
    from core.archives import extract_zip

    folder = Path(tempfile.mkdtemp(prefix="graft-batch-"))
    zip_path = folder / "upload.zip"
    zip_path.write_bytes(upload.getvalue())
    return extract_zip(zip_path, folder / "photos").root


def _batch_source(key: str) -> tuple[list[Path], Path, str] | None:
    """The photos the user chose for a batch: (files, their root folder, a label for the cache)."""
    from core import list_images

    kind = st.segmented_control("Photos from", ["A zip file", "A folder in the workspace"],
                                default="A zip file", key=f"{key}-kind")
    if kind == "A folder in the workspace":
        text = st.text_input("Folder inside the workspace", key=f"{key}-folder",
                             placeholder="e.g. datasets/new-parts or a full path inside the workspace")
        if not text:
            return None
        folder = folder_in_workspace(workspace().root, text)
        return list_images([folder]), folder, f"folder:{folder}"
    upload = st.file_uploader("Upload a zip of photos", type=["zip"], key=f"{key}-zip")
    if upload is None:
        return None
    cache = st.session_state.setdefault("_batch_zips", {})
    label = f"zip:{upload.file_id}"
    if label not in cache or not Path(cache[label]).is_dir():
        for old in cache.values():  # keep only the latest zip's photos on disk
            shutil.rmtree(Path(old).parent, ignore_errors=True)
        cache.clear()
        with st.spinner("Unpacking the zip…"):
            cache[label] = str(_extract_upload(upload))
    root = Path(cache[label])
    return list_images([root]), root, label


def _run_batch(run_dir: str, files: list[Path], root: Path) -> list[dict[str, Any]]:
    predictor = predictor_for(run_dir)
    bar = st.progress(0.0, text=f"Scoring {len(files)} photos…")
    results = []
    for start in range(0, len(files), 32):
        results += predictor.predict(files[start:start + 32])
        bar.progress(min(1.0, (start + 32) / max(1, len(files))), text=f"Scored {len(results)} of {len(files)} photos")
    bar.empty()
    spec = predictor.spec
    labels = (anomaly_labels(files, root, spec.good_class) if is_anomaly(spec)  # defect-type folders: "defect"
              else labels_from_folders(files, root, spec.classes))
    return batch_rows(results, predictor.spec.good_class, root, labels if any(labels) else None)


def batch_figure(per_class: dict[str, int], good_class: str | None) -> go.Figure:
    """Photos per verdict as bars: the good class grey, defects in the accent colour."""
    names = list(per_class)
    fig = go.Figure(go.Bar(x=[plain(n) for n in names], y=[per_class[n] for n in names],
                           marker_color=[MUTED if n == good_class else ACCENT for n in names],
                           text=[str(per_class[n]) for n in names], textposition="outside", cliponaxis=False,
                           hovertemplate="%{x}: %{y} photos<extra></extra>"))
    fig.update_layout(template=TEMPLATE, height=260, showlegend=False, bargap=0.4, yaxis_title="photos",
                      xaxis_type="category", margin=dict(l=10, r=10, t=20, b=10))
    return fig


def render_batch_test(run_dir: str, key: str = "batch") -> list[dict[str, Any]] | None:
    """Score a zip or a workspace folder: summary, per-class bars, table and CSV download."""
    try:
        chosen = _batch_source(key)
    except Exception as exc:  # a bad zip or folder: say why, keep the page
        show_error(exc)
        return None
    if chosen is None:
        return None
    files, root, label = chosen
    if not files:
        st.warning("No photos were found there.", icon=":material/image_not_supported:")
        return None
    results = st.session_state.setdefault("_batch_results", {})
    cache_key = (label, *model_stamp(run_dir))
    if cache_key not in results:
        results[cache_key] = _run_batch(run_dir, files, root)
    rows = results[cache_key]
    _batch_report(rows, predictor_for(run_dir).spec, key)
    return rows


def _scored_metric(col: Any, label: str, rate: dict[str, Any] | None, what: str, help_text: str) -> None:
    if rate is None:
        col.metric(label, "–", f"no {what} in the folders", delta_color="off", delta_arrow="off", border=True,
                   help=help_text)
        return
    col.metric(label, fmt_pct(rate["value"]), f"{rate['k']} of {rate['n']} {what} · range {fmt_range(*rate['range'])}",
               delta_color="off", delta_arrow="off", border=True, help=help_text + " 95% range shown.")


def render_batch_score(rows: list[dict[str, Any]], classes: list[str], good: str | None) -> None:
    """Against the labels of the class folders: accuracy, catch rate and false alarms with 95% ranges, and
    per class how many it found ("–" for a class with no photos in the batch)."""
    score = batch_score(rows, classes, good)
    if not score["n"]:
        return
    unlabelled = sum(1 for r in rows if not r.get("problem") and r.get("label") is None)
    st.markdown(f"**Against the class folders** · {score['n']} labelled photos"
                + (f" ({unlabelled} in no class folder, left out)" if unlabelled else ""),
                help="The photos sit in folders named like the model's classes, so the model's answers can be "
                     "checked against them.")
    row = flow()
    cols = [row, row, row]
    _scored_metric(cols[0], "Accuracy on this batch", score["accuracy"], "photos right",
                   "Photos whose class the model named right.")
    if good:
        _scored_metric(cols[1], "Catch rate on this batch", score.get("catch_rate"), "defective parts flagged",
                       "Defective parts (photos outside the good-class folder) the model flagged.")
        _scored_metric(cols[2], "False alarms on this batch", score.get("false_alarm_rate"), "good parts flagged",
                       "Good parts the model wrongly flagged.")
    found = per_class_found(rows, classes)
    st.dataframe(pd.DataFrame([{"Class": c, "Photos": v["n"] if v else 0,
                                "Found": f"{fmt_pct(v['value'])} ({v['k']} of {v['n']})" if v else "–"}
                               for c, v in found.items()]), hide_index=True, width="stretch", key="batch-per-class")


def _batch_report(rows: list[dict[str, Any]], spec: Any, key: str) -> None:
    good = spec.good_class
    summary = batch_summary(rows)
    row = flow()
    cols = [row, row, row]
    quiet = dict(delta_color="off", delta_arrow="off", border=True)
    cols[0].metric("Photos scored", f"{summary['readable']} of {summary['photos']}", "readable photos", **quiet)
    if summary["flagged"] is not None:
        share = summary["flagged"] / summary["readable"] if summary["readable"] else None
        cols[1].metric("Flagged as defective", f"{summary['flagged']}", fmt_pct(share) + " of the photos", **quiet)
    cols[2].metric("Can't be read", str(summary["unreadable"]),
                   "see the Problem column" if summary["unreadable"] else "none", **quiet)
    if any(r.get("label") for r in rows):
        render_batch_score(rows, list(spec.classes), good)
    if summary["per_class"]:
        st.plotly_chart(batch_figure(summary["per_class"], good), width="stretch", config={"displayModeBar": False},
                        key=f"{key}-bars")
    frame = pd.DataFrame(rows)
    shown = frame.assign(confidence=[fmt_pct(v) for v in frame["confidence"]])  # the CSV keeps 0..1
    if is_anomaly(spec):  # its score is a distance on the 0.5 scale: "how sure" would read it as a probability
        shown = shown.drop(columns="confidence")
    st.dataframe(shown, hide_index=True, width="stretch", key=f"{key}-table", column_config={
        "photo": "Photo", "verdict": "Verdict", "predicted": "Model says", "confidence": "Sure",
        "defect_score": st.column_config.NumberColumn("Defect score", format="%.3f"),
        "flagged": st.column_config.CheckboxColumn("Flagged"), "label": "Folder (true class)",
        "correct": st.column_config.CheckboxColumn("Right"), "problem": "Problem"})
    st.download_button("Download the results (CSV)", rows_csv(rows).encode("utf-8"),
                       file_name="graft-batch-results.csv", mime="text/csv", icon=":material/download:",
                       key=f"{key}-csv")
