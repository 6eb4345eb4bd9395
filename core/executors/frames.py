"""The channel a cluster job uses to send its run folder back: framed lines in the job's own log.

Without a shared filesystem, a run trains in a folder on the cluster node; the job's relay
(core/executors/relay.py) prints what it writes there as one JSON object per line, prefixed
with ``@@graft``, into the job's stdout, which Ray Jobs keeps as the job log. The client reads
that log (``tail_job_logs``) and rebuilds the run folder locally (core/executors/mirror.py).

Why the job log: it is the one channel Ray Jobs already gives a client that can only reach
the dashboard port, it is kept on the cluster after the job ends (a client that lost track
can read it again from the start), and it needs no object store, actor or storage bucket.
It suits events and results of megabytes, not gigabytes: files travel base64-encoded.

Frames (``kind`` plus fields):
    event   ``line``: one raw line of events.jsonl
    status  ``status``: the whole status.json
    file    ``name`` (``result`` or ``checkpoint``), ``part``, ``parts``, ``data`` (base64 of a
            .tar.gz slice); the last part also has ``sha256`` of the whole archive
    exit    ``code``: the training command's exit code
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["PREFIX", "encode", "decode", "file_frames", "pack_folder", "unpack_folder", "CHUNK_BYTES"]

PREFIX = "@@graft "
CHUNK_BYTES = 48 * 1024  # Ray's log tail reads 20,000-character chunks; lines are rejoined either way


def encode(kind: str, **data: Any) -> str:
    """One frame as a log line (no newline)."""
    return PREFIX + json.dumps({"kind": kind, **data}, separators=(",", ":"))


def decode(line: str) -> dict[str, Any] | None:
    """The frame in a log line, or None for any other output (warnings, prints, Ray's own lines)."""
    if not line.startswith(PREFIX):
        return None
    try:
        frame = json.loads(line[len(PREFIX):])
    except ValueError:
        return None
    return frame if isinstance(frame, dict) and "kind" in frame else None


def file_frames(name: str, archive: bytes) -> Iterator[str]:
    """An archive as ``file`` frames of at most :data:`CHUNK_BYTES` each."""
    parts = max(1, -(-len(archive) // CHUNK_BYTES))
    digest = hashlib.sha256(archive).hexdigest()
    for i in range(parts):
        chunk = archive[i * CHUNK_BYTES:(i + 1) * CHUNK_BYTES]
        extra = {"sha256": digest} if i == parts - 1 else {}
        yield encode("file", name=name, part=i, parts=parts, data=base64.b64encode(chunk).decode("ascii"), **extra)


def pack_folder(root: Path, members: Iterable[Path]) -> bytes:
    """A .tar.gz of ``members`` (files or folders under ``root``), with paths relative to ``root``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:  # weights barely compress
        for path in members:
            if path.exists():
                tar.add(path, arcname=str(path.relative_to(root)))
    return buf.getvalue()


def unpack_folder(archive: bytes, dest: Path) -> list[str]:
    """Unpack a :func:`pack_folder` archive into ``dest``; returns the top-level names written.

    Extraction uses tarfile's ``data`` filter: no absolute paths, no escaping ``dest``, no
    device files or links pointing outside, so a job can't write outside the run folder.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = sorted({Path(m.name).parts[0] for m in tar.getmembers() if m.name not in ("", ".")})
        tar.extractall(dest, filter="data")
    return names
