"""What a cluster job carries: Graft's own code, and (without a shared filesystem) the run's inputs.

The bundle is a zip that Ray Jobs uploads as the job's ``working_dir`` and unpacks on the node,
so the cluster always runs this computer's version of ``core``. Zips are built deterministically
(sorted names, fixed timestamps) and cached, so the same code and photos give the same bytes, and
Ray, which names uploads by their content hash, sends them only once (e.g. to every trial of a sweep).

Without a shared filesystem the bundle also holds, under ``inputs/``, the photos (``inputs/data``),
an earlier model or weights file used as the start point (``inputs/start``) and, when resuming,
the run's last checkpoint (``inputs/checkpoint``). The run's config is rewritten to point there.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..datasets import cache_root
from ..errors import GraftError
from ..runs import PROJECT_ROOT

__all__ = ["code_members", "input_members", "build_bundle", "MAX_BUNDLE_BYTES"]

MAX_BUNDLE_BYTES = 450 * 1024 * 1024  # Ray refuses packages past its 512 MiB gRPC limit
KEEP_BUNDLES = 8
_STORED = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".zip", ".safetensors", ".pt")

Members = list[tuple[str, Path]]  # (name inside the zip, file on this computer)


def _files_under(root: Path, prefix: str) -> Members:
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and "__pycache__" not in rel.parts and not any(p.startswith(".") for p in rel.parts):
            out.append((f"{prefix}/{rel.as_posix()}", path))
    return out


def code_members() -> Members:
    """Graft's engine (the ``core`` package), which is all a job imports from this project."""
    return [(name, path) for name, path in _files_under(PROJECT_ROOT / "core", "core") if path.suffix == ".py"]


def _data_members(data: Path) -> tuple[Members, str]:
    if data.is_dir():
        return _files_under(data, f"inputs/data/{data.name}"), f"inputs/data/{data.name}"
    if data.suffix.lower() == ".csv":  # a labels CSV names photos relative to its folder
        members = _files_under(data.parent, "inputs/data")
        return members, f"inputs/data/{data.name}"
    return [(f"inputs/data/{data.name}", data)], f"inputs/data/{data.name}"


def _start_members(start: str) -> tuple[Members, str]:
    kind, _, path = start.partition(":")
    if kind == "file" and path:
        return [(f"inputs/start/{Path(path).name}", Path(path))], f"file:inputs/start/{Path(path).name}"
    if kind == "run" and path:
        model = Path(path) / "model" if (Path(path) / "model").is_dir() else Path(path)
        return _files_under(model, "inputs/start/model"), "run:inputs/start"
    return [], start


def input_members(config: RunConfig, resume: bool) -> tuple[Members, dict[str, Any]]:
    """The files a run needs on a cluster that can't see this computer's disk, and its config there.

    Returns:
        The zip members, and the run's config with paths relative to the job's working folder
        (``out`` is left empty: the job picks a folder of its own).

    Raises:
        GraftError: the photos or start point are missing.
    """
    data = Path(config.data)
    if not data.exists():
        raise GraftError(f"The dataset '{config.data}' doesn't exist.")
    members, data_ref = _data_members(data)
    start_files, start_ref = _start_members(config.start)
    members += start_files
    if resume:
        members += _files_under(Path(config.out) / "checkpoint", "inputs/checkpoint")
    remote = {**config.to_dict(), "data": data_ref, "start": start_ref, "out": "", "workspace": None}
    return members, remote


def _key(members: Members) -> str:
    h = hashlib.sha256(b"graft-bundle-v1")
    for name, path in members:
        st = path.stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def build_bundle(members: Members) -> Path:
    """A deterministic zip of ``members`` in the cache folder (reused while the files are unchanged).

    Raises:
        GraftError: the bundle would be too large to send with a job.
    """
    total = sum(path.stat().st_size for _, path in members)
    if total > MAX_BUNDLE_BYTES:
        raise GraftError(f"The files this run needs ({total / 2**20:.0f} MB) are too large to send with it.",
                         hint="Put the workspace on storage the cluster can read and turn on 'shared storage' "
                              "(see docs/scale-out.md).")
    target = cache_root() / "ray-bundles" / f"{_key(members)}.zip"
    if target.is_file():
        os.utime(target)  # recently used: kept by the pruning below
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, path in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if path.suffix.lower() in _STORED else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, target)
    _prune(target.parent, keep=KEEP_BUNDLES)
    return target


def _prune(folder: Path, keep: int) -> None:
    """Keep the newest ``keep`` bundles: older ones are rebuilt if ever needed again."""
    bundles = sorted(folder.glob("*.zip"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in bundles[keep:]:
        old.unlink(missing_ok=True)
