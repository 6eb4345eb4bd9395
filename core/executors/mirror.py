"""The client side of a cluster run: the job's log becomes the run folder on this computer.

The app's live view only reads the local run folder (status.json, events.jsonl, metrics.json,
model/), so it works the same for a run on this computer and one on a cluster. With a shared
filesystem the training command writes that folder itself and the mirror only keeps the job's
output in log.txt; without one, the mirror writes every relayed frame (core/executors/frames.py)
as it arrives. A final status ("done") is held back until the finished files are in place, so a
reader never sees a finished run without its model.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any

from ..jsonio import write_json_atomic
from ..runs import FINAL_STATES
from .frames import decode, unpack_folder

__all__ = ["Mirror"]


class Mirror:
    """Feed it the job log as it arrives; it writes the run folder."""

    def __init__(self, run_dir: Path, local_fields: dict[str, Any]) -> None:
        self.run_dir, self.local_fields = Path(run_dir), dict(local_fields)
        self.exit_code: int | None = None
        self.received: set[str] = set()  # frame kinds and file names seen
        self._partial = ""
        self._parts: dict[str, list[bytes]] = {}
        self._final: dict[str, Any] | None = None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.run_dir / "log.txt", "a", encoding="utf-8")

    def feed(self, text: str) -> None:
        """A chunk of the job log (any size; lines may be split across chunks)."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> dict[str, Any] | None:
        """Flush the last line; write the held-back final status. Returns the final status, if one came."""
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        self._log.close()
        if self._final is not None:
            write_json_atomic(self.run_dir / "status.json", self._final)
        return self._final

    def _line(self, line: str) -> None:
        frame = decode(line)
        if frame is None:
            self._log.write(line + "\n")
            self._log.flush()
            return
        kind = frame["kind"]
        self.received.add(kind)
        if kind == "event":
            with open(self.run_dir / "events.jsonl", "a", encoding="utf-8") as fh:
                fh.write(str(frame.get("line", "")) + "\n")
        elif kind == "status" and isinstance(frame.get("status"), dict):
            self._status(frame["status"])
        elif kind == "file":
            self._file(frame)
        elif kind == "exit":
            self.exit_code = int(frame.get("code", 1))

    def _status(self, remote: dict[str, Any]) -> None:
        status = {**remote, **self.local_fields}
        if status.get("state") in FINAL_STATES:
            self._final = status  # written once the finished files are in place (close)
        else:
            write_json_atomic(self.run_dir / "status.json", status)

    def _file(self, frame: dict[str, Any]) -> None:
        name, part, parts = str(frame["name"]), int(frame["part"]), int(frame["parts"])
        if part == 0:
            self._parts[name] = []  # a new archive of this name replaces an unfinished one
        chunks = self._parts.setdefault(name, [])
        chunks.append(base64.b64decode(frame.get("data", "")))
        if part < parts - 1:
            return
        archive = b"".join(self._parts.pop(name))
        if hashlib.sha256(archive).hexdigest() != frame.get("sha256") or len(chunks) != parts:
            self._log.write(f"[graft] the {name} files arrived damaged and were not used\n")
            return
        self._replace(archive)
        self.received.add(name)

    def _replace(self, archive: bytes) -> None:
        """Unpack beside the run folder's files, then swap each one in (a reader sees old or new)."""
        staging = self.run_dir / ".incoming"
        shutil.rmtree(staging, ignore_errors=True)
        for top in unpack_folder(archive, staging):
            target, new = self.run_dir / top, staging / top
            if target.is_dir():
                old = self.run_dir / f".old-{top}"
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
                new.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                new.replace(target)
        shutil.rmtree(staging, ignore_errors=True)
