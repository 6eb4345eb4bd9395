"""The workspace: the user's datasets and runs on disk, and the rules that keep them safe.

Everything a user makes lives under one folder (``GRAFT_WORKSPACE``, default ``./workspace``)::

    datasets/<name>/      class folders (or images/ + labels.csv), dataset.json, check.json
    runs/<run-id>/        one folder per training run (see core.runs)
    weights/              uploaded weights files (start points)
    settings.json         e.g. {"max_concurrent_runs": 1}
    last_used.json        where the user was: dataset, run, model settings (restored after a refresh)

Untrusted names (dataset names, class names, upload file names, run ids) are reduced to safe
forms here, and every path is checked to stay inside the workspace before it is written or
deleted. Never imports streamlit (or torch): the app and the tests share this module.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import secrets
import shutil
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .archives import extract_zip, unwrap_single_folder
from .config import RunConfig, Strategy
from .datasets import cache_root, check_csv_header, load_dataset
from .errors import GraftError
from .images import UnreadableImage, has_image_extension, is_junk_name, open_rgb
from .jsonio import read_json, read_jsonl, write_json_atomic
from .runs import ACTIVE_STATES, list_runs, new_run_dir, read_status
from .queue import max_concurrent_runs

if TYPE_CHECKING:  # core.check pulls in torch (via core.parallel); import it only when checking
    from .check import CheckReport

__all__ = [
    "Workspace",
    "DatasetInfo",
    "recommend_strategy",
    "default_good_class",
    "dataset_name",
    "class_name",
    "safe_filename",
    "GOOD_CLASS_NAMES",
    "WEIGHT_EXTENSIONS",
    "SAMPLE_DIR",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = PROJECT_ROOT / "sample_data" / "defects"
GOOD_CLASS_NAMES = ("ok", "good", "pass", "normal")
WEIGHT_EXTENSIONS = (".safetensors", ".pth", ".bin")
META_FILE, CHECK_FILE, CSV_FILE = "dataset.json", "check.json", "labels.csv"
LAST_USED_FILE = "last_used.json"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_THUMB_PX = 192


# --- names -------------------------------------------------------------------------------------


def dataset_name(text: str) -> str:
    """A dataset name that is safe as a folder name: letters, digits, ``-`` and ``_``.

    Raises:
        GraftError: nothing usable is left (e.g. the name was only punctuation).
    """
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()  # "Línea" -> "Linea"
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ascii_text).strip("-_").lower()[:60]
    if not slug:
        raise GraftError("Give the dataset a name with at least one letter or digit.")
    return slug


def class_name(text: str) -> str:
    """A class name as the user typed it, refused if it could act as a path.

    Raises:
        GraftError: empty, too long, a path separator, ``..``, a leading dot or a control character.
    """
    name = unicodedata.normalize("NFC", (text or "").strip())
    if not name:
        raise GraftError("A class needs a name, for example 'ok' or 'scratch'.")
    if len(name) > 80:
        raise GraftError("Class names can be at most 80 characters long.")
    if "/" in name or "\\" in name or ".." in name or name.startswith(".") or _CONTROL.search(name):
        raise GraftError(f"The class name '{_printable(name)}' can't be used.",
                         hint="Use letters, digits and spaces; no slashes, leading dots or '..'.")
    return name


def safe_filename(name: str, default: str = "photo") -> str:
    """The last part of an uploaded file's name, without control characters or leading dots."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name or ""))[-1]
    base = _CONTROL.sub("", base).strip().lstrip(".")
    if base in ("", ".", ".."):
        return default
    stem, suffix = os.path.splitext(base)
    return stem[:120] + suffix[:16]


def _printable(text: str) -> str:
    return _CONTROL.sub("?", text)[:80]


def default_good_class(classes: Sequence[str]) -> str | None:
    """The class that means "no defect": one named ok, good, pass or normal, if present."""
    by_lower = {c.lower(): c for c in classes}
    return next((by_lower[n] for n in GOOD_CLASS_NAMES if n in by_lower), None)


def recommend_strategy(n_images: int, n_classes: int | None = None) -> tuple[Strategy, str]:
    """The strategy that measured best for this many photos (:mod:`core.evidence`), with a one-sentence reason.

    Args:
        n_images: readable photos in the dataset.
        n_classes: classes in the dataset (default 2: ok and defect).

    Returns:
        ``(strategy, reason)``; the reason is written for someone without ML background.
    """
    from .evidence import FEW_PER_CLASS, MEASURED, PHOTOS_PER_CLASS, WORTH_MINUTES, best_measured

    per_class = n_images / max(1, n_classes or 2)
    fe, best = MEASURED[Strategy.FEATURE_EXTRACTION], best_measured()
    gain = 100 * (MEASURED[best].accuracy - fe.accuracy)
    if per_class < FEW_PER_CLASS or gain < WORTH_MINUTES:
        return Strategy.FEATURE_EXTRACTION, (
            f"With {n_images} photos, training only the final decision layer of the pretrained model is about as "
            f"accurate as adapting the whole model (measured on real inspection photos: {fe.accuracy:.1%} correct) "
            "and trains in seconds.")
    return best, (
        f"With {n_images} photos, gently adapting the whole pretrained model to your parts measured best on real "
        f"inspection photos ({MEASURED[best].accuracy:.1%} correct with {PHOTOS_PER_CLASS} per class, "
        f"{gain:.1f} points above training only the final layer); it takes minutes instead of seconds.")


# --- datasets ----------------------------------------------------------------------------------


@dataclass
class DatasetInfo:
    """One saved dataset, as listed in the app.

    Attributes:
        name: folder name under ``datasets/``.
        path: what to give ``RunConfig.data``: the folder, or its ``labels.csv``.
        source: ``sample``, ``zip``, ``uploads``, ``csv`` or ``folder``.
        classes: class names, sorted.
        counts: photos per class (by file name; the check counts readable ones).
        good_class: the class that means "no defect", or None.
        created: UNIX time the dataset was saved.
        notes: plain sentences about files left out or renamed on import.
    """

    name: str
    path: Path
    source: str
    classes: list[str]
    counts: dict[str, int]
    good_class: str | None = None
    created: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


class Workspace:
    """The user's datasets and runs under one root folder (created on first use)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        try:
            for folder in (self.root, self.datasets_dir, self.runs_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GraftError(f"Graft can't create its workspace at {self.root} ({exc.strerror or exc}).",
                             hint="Set GRAFT_WORKSPACE to a folder you can write to.") from None

    @classmethod
    def from_env(cls) -> "Workspace":
        """The workspace named by ``GRAFT_WORKSPACE``, else ``./workspace``."""
        return cls(os.environ.get("GRAFT_WORKSPACE") or Path.cwd() / "workspace")

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def weights_dir(self) -> Path:
        return self.root / "weights"

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    recommend_strategy = staticmethod(recommend_strategy)

    # --- path safety ---

    def _inside(self, path: Path, base: Path | None = None) -> Path:
        """``path`` resolved, refused unless it lies strictly inside ``base`` (default: the root)."""
        base = (base or self.root).resolve()
        resolved = path.resolve()
        if resolved == base or not resolved.is_relative_to(base):
            raise GraftError("That name points outside the workspace and was refused.")
        return resolved

    def _dataset_dir(self, name: str) -> Path:
        return self._inside(self.datasets_dir / dataset_name(name), self.datasets_dir)

    def _existing_dataset(self, name: str) -> Path:
        exact = self.datasets_dir / name  # a folder copied in by hand keeps its own name ("line 3 photos")
        plain = name not in ("", ".", "..") and "/" not in name and "\\" not in name and not name.startswith(".")
        folder = self._inside(exact, self.datasets_dir) if plain and exact.is_dir() else self._dataset_dir(name)
        if not folder.is_dir():
            raise GraftError(f"There is no dataset named '{_printable(name)}'.",
                             hint="Pick one of the saved datasets, or create a new one on the Data page.")
        return folder

    def _new_dataset_dir(self, name: str) -> Path:
        folder = self._dataset_dir(name)
        if folder.exists():
            raise GraftError(f"A dataset named '{folder.name}' already exists.",
                             hint="Choose another name, or delete the old dataset first.")
        return folder

    def unique_dataset_name(self, base: str) -> str:
        """``base`` made safe, with ``-2``, ``-3``... added when it is taken."""
        name = dataset_name(base)
        candidate, n = name, 2
        while (self.datasets_dir / candidate).exists():
            candidate, n = f"{name}-{n}", n + 1
        return candidate

    def _staging(self) -> Path:
        """A hidden folder on the same filesystem, so finished imports are moved in atomically."""
        path = self.datasets_dir / f".incoming-{secrets.token_hex(4)}"
        path.mkdir()
        return path

    def _publish(self, staged: Path, dest: Path, meta: dict[str, Any]) -> DatasetInfo:
        """Check the staged dataset opens, write its metadata, move it into place, and describe it."""
        data = staged / meta["data"] if meta["data"] != "." else staged
        if not load_dataset(data).samples:
            raise GraftError("No photos were found in class folders.",
                             hint="Put each class's photos in its own folder (for example ok/ and scratch/).")
        write_json_atomic(staged / META_FILE, {"created": time.time(), **meta})
        if dest.exists():
            raise GraftError(f"A dataset named '{dest.name}' already exists.", hint="Choose another name.")
        os.replace(staged, dest)
        return self.dataset_info(dest.name)

    # --- creating datasets ---

    def add_sample(self, name: str = "sample") -> DatasetInfo:
        """Copy the bundled sample (4 classes x 30 synthetic photos); reopen it if already there."""
        dest = self._dataset_dir(name)
        if dest.exists():
            return self.dataset_info(dest.name)
        if not SAMPLE_DIR.is_dir():
            raise GraftError("The bundled sample data is missing from this installation.",
                             hint="Regenerate it: python -m core synth sample_data/defects --per-class 30 --seed 7")
        staged = self._staging()
        try:
            for class_dir in sorted(p for p in SAMPLE_DIR.iterdir() if p.is_dir()):
                shutil.copytree(class_dir, staged / class_dir.name)
            return self._publish(staged, dest, {"source": "sample", "good_class": "ok", "data": "."})
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def import_zip(self, upload: bytes | str | Path, name: str, filename: str = "upload.zip") -> DatasetInfo:
        """Save a zip of class folders (or of images plus a labels CSV) as a dataset.

        Args:
            upload: the zip's bytes, or a path to it.
            name: the dataset's name (made safe; must be new).
            filename: the name the user's file had (for bytes), so messages name the file they chose.

        Raises:
            GraftError: the name is taken, or the zip is refused (damaged, a zip bomb, no images...).
        """
        dest = self._new_dataset_dir(name)
        staged = self._staging()
        try:
            zip_path = (Path(upload) if isinstance(upload, (str, Path))
                        else staged / safe_filename(filename, default="upload.zip"))
            if not isinstance(upload, (str, Path)):
                zip_path.write_bytes(upload)
            report = extract_zip(zip_path, staged / "data")
            content = unwrap_single_folder(staged / "data")
            final = staged / "final"
            os.replace(content, final)
            source, data = self._zip_layout(final)
            return self._publish(final, dest, {"source": source, "data": data, "notes": report.notes(),
                                               "good_class": self._guess_good(final, data)})
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def _zip_layout(self, folder: Path) -> tuple[str, str]:
        """(source, data path relative to the folder): one labels CSV at the top, else class folders."""
        csvs = sorted(p.name for p in folder.glob("*.csv") if _is_labels_csv(p))
        if len(csvs) > 1:
            raise GraftError("The zip holds several labels CSV files next to each other.",
                             hint="Keep one labels CSV (columns image,label), or use class folders only.")
        return ("csv", csvs[0]) if csvs else ("zip", ".")

    def _guess_good(self, folder: Path, data: str) -> str | None:
        try:
            return default_good_class(load_dataset(folder / data).classes)
        except GraftError:
            return None

    def create_from_uploads(self, name: str, files: Mapping[str, Iterable[tuple[str, bytes]]]) -> DatasetInfo:
        """Save photos dropped per class as a new dataset of class folders.

        Args:
            name: the dataset's name (made safe; must be new).
            files: ``{class name: [(file name, bytes), ...]}``. Class names keep their text; file
                names are reduced to a safe base name. Files that are not images are left out.

        Raises:
            GraftError: a class name is unsafe, or no class has any photo.
        """
        dest = self._new_dataset_dir(name)
        staged = self._staging()
        try:
            written, skipped = self._write_classes(staged, files)
            if not written:
                raise GraftError("No photos were added.", hint="Drop JPEG or PNG photos into at least one class.")
            notes = [f"{skipped} file(s) that are not photos were left out."] if skipped else []
            good = default_good_class(list(written))
            return self._publish(staged, dest, {"source": "uploads", "data": ".", "good_class": good, "notes": notes})
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def add_photos(self, name: str, cls: str, files: Iterable[tuple[str, bytes]]) -> DatasetInfo:
        """Add photos to one class (new or existing) of a class-folder dataset."""
        folder = self._existing_dataset(name)
        if self._meta(folder).get("source") == "csv":
            raise GraftError("Photos can't be added to a CSV dataset here.",
                             hint="Add them to the CSV and import it again.")
        written, _ = self._write_classes(folder, {cls: files})
        if not written:
            raise GraftError("No photos were added.", hint="Use JPEG, PNG, BMP, TIFF or WebP files.")
        return self.dataset_info(folder.name)

    def _write_classes(self, root: Path,
                       files: Mapping[str, Iterable[tuple[str, bytes]]]) -> tuple[dict[str, int], int]:
        written: dict[str, int] = {}
        skipped = 0
        for raw_cls, items in files.items():
            cls = class_name(raw_cls)
            target = self._inside(root / cls, root)
            for filename, data in items:
                base = safe_filename(filename)
                if not has_image_extension(base):
                    skipped += 1
                    continue
                target.mkdir(parents=True, exist_ok=True)
                _write_new(target, base, data)
                written[cls] = written.get(cls, 0) + 1
        return written, skipped

    def import_csv(self, csv_bytes: bytes, images: Iterable[tuple[str, bytes]], name: str = "csv") -> DatasetInfo:
        """Save a labels CSV (columns ``image``, ``label``; optional ``split`` and extra tasks) with its photos.

        The CSV's ``image`` column is matched to the uploaded photos by the longest matching end of the
        path (``lineA/0001.jpg`` finds an upload named ``lineA/0001.jpg`` or ``0001.jpg``), so two photos
        with the same file name in different folders keep their own labels. Rows whose photo was not
        uploaded are left out (and counted in the notes).

        Raises:
            GraftError: the CSV is not UTF-8 or lacks the columns, no row matches a photo, or two
                uploads with the same name can't be told apart.
        """
        dest = self._new_dataset_dir(name)
        header, rows = _parse_csv(csv_bytes)
        staged = self._staging()
        try:
            by_name = self._write_images(staged / "images", images)
            kept, missing = _match_rows(rows, by_name)
            if not kept:
                raise GraftError("None of the CSV's rows name an uploaded photo.",
                                 hint="Upload the photos listed in the CSV's 'image' column.")
            _write_csv(staged / CSV_FILE, header, kept)
            notes = ([f"{missing} row(s) of the CSV name photos that were not uploaded; they were left out."]
                     if missing else [])
            good = default_good_class(sorted({r["label"] for r in kept}))
            return self._publish(staged, dest, {"source": "csv", "data": CSV_FILE, "good_class": good, "notes": notes})
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def _write_images(self, folder: Path, images: Iterable[tuple[str, bytes]]) -> dict[str, str]:
        """Write photos flat into ``folder`` (same names get `` (2)``); returns {upload path key: relative path}."""
        folder.mkdir(parents=True, exist_ok=True)
        by_name: dict[str, str] = {}
        for filename, data in images:
            base = safe_filename(filename)
            key = _path_key(filename)
            if not has_image_extension(base) or key in by_name:
                continue
            written = _write_new(folder, base, data)
            by_name[key] = f"{folder.name}/{written.name}"
        return by_name

    # --- reading datasets ---

    def list_datasets(self) -> list[DatasetInfo]:
        """Every saved dataset, by name."""
        out = []
        for folder in sorted(self.datasets_dir.iterdir()):
            if folder.is_dir() and not folder.name.startswith("."):
                try:
                    out.append(self.dataset_info(folder.name))
                except GraftError:
                    continue  # a half-copied folder the user made by hand: not a dataset yet
        return out

    def dataset_info(self, name: str) -> DatasetInfo:
        """Describe one dataset (classes and photo counts from the file names; fast)."""
        folder = self._existing_dataset(name)
        meta = self._meta(folder)
        data = self.dataset_path(folder.name)
        ds = load_dataset(data)
        return DatasetInfo(name=folder.name, path=data, source=meta.get("source", "folder"), classes=ds.classes,
                           counts=ds.counts(), good_class=meta.get("good_class"), created=meta.get("created", 0.0),
                           notes=list(meta.get("notes", [])))

    def dataset_path(self, name: str) -> Path:
        """What to train on: the dataset folder, or its labels CSV."""
        folder = self._existing_dataset(name)
        data = str(self._meta(folder).get("data", "."))
        return self._inside(folder / data, folder) if data != "." else folder

    def _meta(self, folder: Path) -> dict[str, Any]:
        meta = read_json(folder / META_FILE, {})
        return meta if isinstance(meta, dict) else {}

    def _update_meta(self, name: str, **changes: Any) -> None:
        folder = self._existing_dataset(name)
        write_json_atomic(folder / META_FILE, {**self._meta(folder), **changes})

    # --- managing datasets ---

    def rename_dataset(self, old: str, new: str) -> DatasetInfo:
        """Rename a dataset (earlier runs keep their models; they just point at the old name)."""
        src = self._existing_dataset(old)
        dest = self._new_dataset_dir(new)
        self._refuse_if_training(src)
        os.replace(src, dest)
        return self.dataset_info(dest.name)

    def delete_dataset(self, name: str) -> None:
        """Delete a dataset's folder (runs and their models stay)."""
        folder = self._existing_dataset(name)
        self._refuse_if_training(folder)
        shutil.rmtree(folder)

    def _refuse_if_training(self, folder: Path) -> None:
        for run in self.active_runs():
            data = Path(str(run["config"].get("data", "")))
            if data == folder or folder in data.parents:
                raise GraftError(f"The dataset '{folder.name}' is in use by a run that is still training.",
                                 hint="Wait for it to finish, or stop it on the Train page.")

    def set_good_class(self, name: str, cls: str | None) -> DatasetInfo:
        """Mark the class that means "no defect" (None: no good class, plain classification)."""
        info = self.dataset_info(name)
        if cls is not None and cls not in info.classes:
            raise GraftError(f"'{_printable(cls)}' is not a class of this dataset.",
                             hint=f"Classes: {', '.join(info.classes)}.")
        self._update_meta(info.name, good_class=cls)
        info.good_class = cls
        return info

    # --- the check, cached ---

    def check(self, name: str, progress: Callable[[int, int, float], None] | None = None) -> "CheckReport":
        """The dataset check report, reused while the dataset's files are unchanged.

        Args:
            name: the dataset.
            progress: called with (done, total, eta seconds) while photos are opened.
        """
        from .check import check_dataset

        folder = self._existing_dataset(name)
        ds = load_dataset(self.dataset_path(name))
        good_only = self._good_only(folder, ds)
        key = f"{_fingerprint(folder)}:{good_only or ''}"
        cached = read_json(folder / CHECK_FILE, {})
        if isinstance(cached, dict) and cached.get("fingerprint") == key:
            try:
                return _report_from_dict(cached["report"])
            except (KeyError, TypeError):
                pass  # an older or damaged cache: check again
        report = check_dataset(ds, progress=progress, good_only=good_only)
        write_json_atomic(folder / CHECK_FILE, {"fingerprint": key, "report": report.to_dict()})
        return report

    def _good_only(self, folder: Path, ds: Any) -> str | None:
        """The good class when it is the dataset's only class: such a dataset is checked for
        good-parts-only training (one class is enough there), not as a classifier's."""
        classes = [c for c, n in ds.counts().items() if n > 0]
        good = self._meta(folder).get("good_class") or default_good_class(classes)
        return good if classes == [good] else None

    def thumbnails(self, name: str, per_class: int = 8) -> dict[str, list[tuple[Path, str]]]:
        """Up to ``per_class`` small previews per class: ``{class: [(thumbnail file, photo name)]}``.

        Previews are decoded safely once and cached as small JPEGs; unreadable photos are skipped.
        """
        ds = load_dataset(self.dataset_path(name))
        out: dict[str, list[tuple[Path, str]]] = {c: [] for c in ds.classes}
        for sample in ds.samples:
            shown = out[sample.label]
            if len(shown) < per_class:
                thumb = _thumbnail(Path(sample.path))
                if thumb is not None:
                    shown.append((thumb, PurePosixPath(sample.rel).name))
        return out

    # --- runs ---

    def new_run_config(self, dataset: str, **choices: Any) -> RunConfig:
        """A config for a new run on ``dataset`` in a fresh run folder of this workspace.

        Args:
            dataset: a saved dataset's name.
            **choices: any ``RunConfig`` field (backbone, start, strategy, epochs, image_size, lr,
                batch_size, seed...). ``good_class`` defaults to the dataset's good class.

        Raises:
            GraftError: an unknown or invalid setting.
        """
        known = {f.name for f in fields(RunConfig)} - {"data", "out", "workspace"}
        unknown = set(choices) - known
        if unknown:
            raise GraftError(f"Unknown run settings: {', '.join(sorted(unknown))}.")
        info = self.dataset_info(dataset)
        choices.setdefault("good_class", info.good_class)
        choices.setdefault("name", info.name)
        # Validate before creating a folder, so a bad setting leaves nothing behind.
        config = RunConfig(data=str(info.path), out="", workspace=str(self.root), **choices)
        return config.replace(out=str(new_run_dir(self.runs_dir, config.name)))

    def rerun_config(self, run_id: str) -> RunConfig:
        """The config of an earlier run, pointed at a fresh run folder ("Start again")."""
        config = self._stored_config(self.run_path(run_id))
        return config.replace(out=str(new_run_dir(self.runs_dir, config.name)))

    def can_resume(self, run_id: str) -> bool:
        """Whether an ended run left a checkpoint to continue from."""
        from .checkpoint import has_checkpoint  # imports torch: only when asked

        path = self.run_path(run_id)
        return read_status(path).get("state") not in ACTIVE_STATES and has_checkpoint(path)

    def resume_config(self, run_id: str) -> RunConfig:
        """The config to continue an interrupted or stopped run in its own folder (``launch_run(resume=True)``).

        Raises:
            GraftError: the run is still active, or has no checkpoint.
        """
        path = self.run_path(run_id)
        if read_status(path).get("state") in ACTIVE_STATES:
            raise GraftError("This run is still queued or training.")
        if not self.can_resume(run_id):
            raise GraftError("This run has no checkpoint to continue from.", hint="Start it again instead.")
        return self._stored_config(path).replace(out=str(path))  # the folder may have moved since

    def _stored_config(self, path: Path) -> RunConfig:
        data = read_json(path / "config.json", None)
        if not isinstance(data, dict):
            raise GraftError("This run has no readable settings to start again from.")
        return RunConfig.from_dict(data).replace(workspace=str(self.root))

    def run_path(self, run_id: str) -> Path:
        """The folder of run ``run_id`` (a plain folder name), which must exist."""
        if not run_id or run_id != PurePosixPath(run_id).name or "\\" in run_id or run_id.startswith("."):
            raise GraftError("That is not a run of this workspace.")
        path = self._inside(self.runs_dir / run_id, self.runs_dir)
        if not path.is_dir():
            raise GraftError(f"The run '{_printable(run_id)}' no longer exists.")
        return path

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run, newest first: ``{id, path, config, status, metrics}`` (see core.runs.list_runs)."""
        return list_runs(self.runs_dir)

    def active_runs(self) -> list[dict[str, Any]]:
        """Runs queued or training right now, newest first."""
        return [r for r in self.list_runs() if r["status"].get("state") in ACTIVE_STATES]

    def finished_models(self) -> list[dict[str, Any]]:
        """Runs that ended with a model package, newest first (start points for new runs)."""
        return [r for r in self.list_runs() if r["status"].get("state") in ("done", "stopped")
                and (Path(r["path"]) / "model" / "model.json").is_file()]

    def best_model(self) -> dict[str, Any] | None:
        """The finished model to build on by default: the best usable one, with its ``verdict`` added.

        Usable means its verdict is not "Not usable"; ranked by verdict (ready before promising), then by
        the held-out macro F1 (else accuracy), newer first on ties. None when no finished model is usable.
        """
        from .verdict import LEVELS, judge_run

        ranked = []
        for i, run in enumerate(self.finished_models()):
            verdict = judge_run(run["path"])
            if verdict is None or verdict.level == "not_usable":
                continue
            metrics = run["metrics"]
            score = metrics.get("macro_f1") if metrics.get("macro_f1") is not None else metrics.get("accuracy")
            ranked.append(((LEVELS.index(verdict.level), float(score or 0.0), -i), {**run, "verdict": verdict}))
        return max(ranked, key=lambda pair: pair[0])[1] if ranked else None

    def queue_position(self, run_path: str | Path) -> int:
        """How many runs go before this queued run (0 when it is running or not queued)."""
        path = Path(run_path)
        mine = read_status(path)
        if mine.get("state") != "queued":
            return 0
        key = (mine.get("created", 0), path.name)
        return sum(1 for r in self.active_runs()
                   if r["path"] != str(path) and (r["status"].get("state") == "running"
                                                  or (r["status"].get("created", 0), r["id"]) < key))

    def max_concurrent_runs(self) -> int:
        """How many runs may train at once (``GRAFT_MAX_CONCURRENT_RUNS`` or settings.json; default 1)."""
        try:
            return max_concurrent_runs(self.root)
        except (TypeError, ValueError):
            return 1

    def delete_run(self, run_id: str) -> None:
        """Delete a run folder and its model; refused while the run is queued or training."""
        path = self.run_path(run_id)
        if read_status(path).get("state") in ACTIVE_STATES:
            raise GraftError("This run is still queued or training.", hint="Stop it first, then delete it.")
        shutil.rmtree(path)

    def save_weights(self, filename: str, data: bytes) -> Path:
        """Keep an uploaded weights file in the workspace; returns its path (for ``start='file:...'``)."""
        base = safe_filename(filename, default="weights.safetensors")
        if not base.lower().endswith(WEIGHT_EXTENSIONS):
            raise GraftError("Weights must be a .safetensors, .pth or .bin file.")
        if not data:
            raise GraftError("The weights file is empty.")
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        return _write_new(self.weights_dir, base, data)

    # --- where the user was (the app restores it after a refresh or in a new tab) ---

    @property
    def last_used_file(self) -> Path:
        return self.root / LAST_USED_FILE

    def last_used(self) -> dict[str, Any]:
        """The working context saved by :meth:`remember` (``{}`` when none or unreadable)."""
        data = read_json(self.last_used_file, {})
        return data if isinstance(data, dict) else {}

    def remember(self, **values: Any) -> dict[str, Any]:
        """Merge ``values`` (JSON-friendly; None removes a key) into ``last_used.json``, written atomically.

        Returns the saved context. Nothing is written when nothing changed (the app calls this on every rerun).
        """
        saved = self.last_used()
        merged = {**saved, **values}
        merged = {k: v for k, v in merged.items() if v is not None}
        if merged != saved:
            write_json_atomic(self.last_used_file, merged)
        return merged

    @property
    def speeds_file(self) -> Path:
        return self.root / "speeds.json"

    def record_speed(self, backbone: str, images_per_s: float, image_size: int) -> None:
        """Keep a speed measured on this computer (e.g. by ``core.backbones.measure_speed``)."""
        speeds = read_json(self.speeds_file, {})
        speeds = speeds if isinstance(speeds, dict) else {}
        speeds[backbone] = {"images_per_s": float(images_per_s), "image_size": float(image_size)}
        write_json_atomic(self.speeds_file, speeds)

    def backbone_speeds(self) -> dict[str, dict[str, float]]:
        """Training speed on this computer: ``{backbone: {images_per_s, image_size}}``.

        From earlier runs here (feature extraction left out: it does not push photos through the
        whole model), overridden by explicit measurements (:meth:`record_speed`).
        """
        speeds: dict[str, dict[str, float]] = {}
        for run in reversed(self.list_runs()):  # oldest first, so the newest measurement wins
            speed = _run_speed(run)
            if speed:
                speeds[str(run["config"].get("backbone", ""))] = speed
        speeds.update(self._measured_speeds())
        return speeds

    def backbone_speed(self, backbone: str) -> dict[str, float] | None:
        """:meth:`backbone_speeds` of one backbone, reading only the newest run that trained it (a run's start)."""
        measured = self._measured_speeds().get(backbone)
        if measured:
            return measured
        runs = (r for r in self.list_runs() if str(r["config"].get("backbone", "")) == backbone)
        return next((speed for speed in map(_run_speed, runs) if speed), None)

    def _measured_speeds(self) -> dict[str, dict[str, float]]:
        measured = read_json(self.speeds_file, {})
        if not isinstance(measured, dict):
            return {}
        return {k: v for k, v in measured.items() if isinstance(v, dict) and "images_per_s" in v}


# --- helpers -----------------------------------------------------------------------------------


def _run_speed(run: dict[str, Any]) -> dict[str, float] | None:
    """The training speed a run measured at its last epoch (None for feature extraction or no epoch yet)."""
    config = run["config"]
    if config.get("strategy") == Strategy.FEATURE_EXTRACTION.value:
        return None
    epochs = [e for e in read_jsonl(Path(run["path"]) / "events.jsonl") if e.get("event") == "epoch"]
    if not epochs or not epochs[-1].get("images_per_s"):
        return None
    return {"images_per_s": float(epochs[-1]["images_per_s"]), "image_size": float(config.get("image_size", 0))}


def _write_new(folder: Path, base: str, data: bytes) -> Path:
    """Write ``data`` as ``folder/base`` without overwriting: ``a.jpg``, ``a (2).jpg``, ..."""
    stem, suffix = os.path.splitext(base)
    candidate, n = base, 2
    while True:
        path = folder / candidate
        try:
            with open(path, "xb") as fh:  # "x": never through an existing file or link
                fh.write(data)
            return path
        except FileExistsError:
            candidate, n = f"{stem} ({n}){suffix}", n + 1


def _parse_csv(csv_bytes: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) with lower-case column names; refuses a CSV without image and label."""
    try:
        text = csv_bytes.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise GraftError("The CSV is not UTF-8 text.", hint="Save it as 'CSV UTF-8' and try again.") from None
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except csv.Error as exc:
        raise GraftError(f"The CSV can't be read ({exc}).") from None
    check_csv_header(header)  # the same rules as training: image and label, no duplicate or reserved names
    return [h for h in header if h], rows


def _is_labels_csv(path: Path) -> bool:
    """Whether a CSV's header names the ``image`` and ``label`` columns (other CSVs are just files)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            header = {h.strip().lower() for h in next(csv.reader(fh), [])}
    except (OSError, csv.Error):
        return False
    return {"image", "label"} <= header


def _path_key(name: str) -> str:
    """An upload's or a CSV row's path, compared without case, with ``/`` between folders."""
    parts = [safe_filename(p) for p in re.split(r"[\\/]", unicodedata.normalize("NFC", name or "")) if p.strip(" .")]
    return "/".join(parts).lower()


def _match_rows(rows: list[dict[str, str]], by_name: dict[str, str]) -> tuple[list[dict[str, str]], int]:
    """Each row's upload: the one sharing the longest end of the path (``lineA/0001.jpg`` beats ``0001.jpg``).

    Raises:
        GraftError: two rows need one upload, or one row matches two uploads equally well.
    """
    by_base: dict[str, list[str]] = {}
    for key in by_name:
        by_base.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    kept, missing, used = [], 0, {}
    for row in rows:
        key = _path_key(row.get("image", ""))
        found = _best_match(key, by_base.get(key.rsplit("/", 1)[-1], []))
        if found is None or not row.get("label"):
            missing += 1
            continue
        if used.setdefault(found, key) != key:
            raise GraftError(f"The CSV names '{used[found]}' and '{key}', but only one photo called "
                             f"'{key.rsplit('/', 1)[-1]}' was uploaded for both.",
                             hint="Upload a zip with the photos in their folders and the CSV instead.")
        kept.append({**row, "image": by_name[found]})
    return kept, missing


def _best_match(key: str, candidates: list[str]) -> str | None:
    parts = key.split("/")

    def common_end(other: str) -> int:
        theirs, n = other.split("/"), 0
        while n < min(len(parts), len(theirs)) and parts[-1 - n] == theirs[-1 - n]:
            n += 1
        return n

    scored = sorted(((common_end(c), c) for c in candidates), reverse=True)
    if not scored:
        return None
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        raise GraftError(f"The CSV row '{key}' fits two uploaded photos equally well ('{scored[0][1]}' and "
                         f"'{scored[1][1]}').", hint="Write the photo's folder in the CSV's image column.")
    return scored[0][1]


def _write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _fingerprint(folder: Path) -> str:
    """A hash of every file's path, size and modification time (the app's own files excluded)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            rel = path.relative_to(folder).as_posix()
            if rel in (META_FILE, CHECK_FILE) or filename.startswith(".") or is_junk_name(rel):
                continue
            stat = path.stat()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _report_from_dict(d: dict[str, Any]) -> "CheckReport":
    from .check import CheckReport

    names = {f.name for f in fields(CheckReport)}
    return CheckReport(**{k: v for k, v in d.items() if k in names})


def _thumbnail(path: Path) -> Path | None:
    """A cached small JPEG preview of ``path``; None when the photo can't be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode("utf-8", "surrogatepass"))
    thumb = cache_root() / "thumbs" / f"{key.hexdigest()[:32]}.jpg"
    if thumb.is_file():
        return thumb
    try:
        image = open_rgb(path, draft=(_THUMB_PX, _THUMB_PX))
    except UnreadableImage:
        return None
    image.thumbnail((_THUMB_PX, _THUMB_PX))
    thumb.parent.mkdir(parents=True, exist_ok=True)
    tmp = thumb.with_suffix(f".{secrets.token_hex(3)}.tmp")
    image.save(tmp, "JPEG", quality=85)
    os.replace(tmp, thumb)
    return thumb
