"""The job side of a cluster run without a shared filesystem: ``python -m core.executors.relay``.

It runs the very same training command, ``python -m core train --config RUN/config.json``, in a
run folder of its own on the node, and relays what that command writes there into the job log
(core/executors/frames.py): every new event line, every status change, the checkpoint now and
then (``GRAFT_RELAY_CHECKPOINT_S``, default every 5 minutes, so a lost node costs at most that
much training), and finally the finished run folder. It exits with the training command's code.

Stop: Ray's ``stop_job`` sends SIGTERM to the relay and the training command; the command stops
after the current batch and keeps its best model, and the relay sends that result before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .frames import encode, file_frames, pack_folder

__all__ = ["main", "Relay", "localise"]

STREAMED = {"config.json", "status.json", "events.jsonl", "stop", "log.txt"}  # sent as they change


def localise(remote: dict[str, Any], run_dir: Path, here: Path) -> dict[str, Any]:
    """The run's config with its shipped inputs made absolute under ``here`` and ``out`` set to ``run_dir``."""
    config = {**remote, "out": str(run_dir), "workspace": None, "data": str(here / remote["data"])}
    kind, _, path = str(remote.get("start", "")).partition(":")
    if kind in ("file", "run") and path and not Path(path).is_absolute():
        config["start"] = f"{kind}:{here / path}"
    return config


class Relay:
    """Runs the training command and turns its run folder into frames on stdout."""

    def __init__(self, run_dir: Path, checkpoint_every_s: float, write: Callable[[str], None]) -> None:
        self.run_dir, self.every, self._write = run_dir, checkpoint_every_s, write
        self._events_offset = 0
        self._status_text = ""
        self._checkpoint_sent: bytes | None = None
        self._checkpoint_time = -float("inf")

    def known_checkpoint(self) -> None:
        """The checkpoint now in the folder came from the client (a resume): it needn't go back."""
        self._checkpoint_sent = self._checkpoint_state()

    def pump(self) -> None:
        """Send what changed since the last call."""
        self._events()
        self._status()
        self._checkpoint()

    def _events(self) -> None:
        try:
            with open(self.run_dir / "events.jsonl", "rb") as fh:
                fh.seek(self._events_offset)
                chunk = fh.read()
        except OSError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a torn last line waits for the next pump
        self._events_offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            if line.strip():
                self._write(encode("event", line=line))

    def _status(self) -> None:
        try:
            text = (self.run_dir / "status.json").read_text(encoding="utf-8")
            status = json.loads(text)
        except (OSError, ValueError):
            return
        if text != self._status_text:
            self._status_text = text
            self._write(encode("status", status=status))

    def _checkpoint_state(self) -> bytes | None:
        try:
            return (self.run_dir / "checkpoint" / "state.json").read_bytes()
        except OSError:
            return None

    def _checkpoint(self, force: bool = False) -> None:
        state = self._checkpoint_state()
        due = force or time.monotonic() - self._checkpoint_time >= self.every
        if state is None or state == self._checkpoint_sent or not due:
            return
        archive = pack_folder(self.run_dir, [self.run_dir / "checkpoint"])
        if self._checkpoint_state() != state:
            return  # the next epoch was saved meanwhile: a mixed archive is never sent, try again later
        for frame in file_frames("checkpoint", archive):
            self._write(frame)
        self._checkpoint_sent, self._checkpoint_time = state, time.monotonic()

    def finish(self, code: int) -> None:
        """The last events and files, then the exit code; the final status goes last of all."""
        self._events()
        if self._checkpoint_state() != self._checkpoint_sent:
            self._checkpoint(force=True)
        rest = [p for p in sorted(self.run_dir.iterdir()) if p.name not in STREAMED | {"checkpoint"}]
        for frame in file_frames("result", pack_folder(self.run_dir, rest)):
            self._write(frame)
        self._status()
        self._write(encode("exit", code=code))


def _printer() -> Callable[[str], None]:
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return write


def _pass_through(stream: Any, write: Callable[[str], None]) -> None:
    """The training command's own output, line by line, so it never splits a frame."""
    for raw in iter(stream.readline, b""):
        write(raw.decode("utf-8", errors="replace").rstrip("\n"))


def _train(run_dir: Path, resume: bool, relay: Relay, write: Callable[[str], None]) -> int:
    cmd = [sys.executable, "-m", "core", "train", "--config", str(run_dir / "config.json"), "--executor", "local"]
    child = subprocess.Popen(cmd + (["--resume"] if resume else []), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))  # stop, then relay the result
    reader = threading.Thread(target=_pass_through, args=(child.stdout, write), daemon=True)
    reader.start()
    while child.poll() is None:
        relay.pump()
        time.sleep(0.5)
    reader.join(timeout=5)
    return child.returncode


def main(argv: list[str] | None = None) -> int:
    """Train the run described by the config JSON argument and relay its folder; returns its exit code."""
    parser = argparse.ArgumentParser(prog="python -m core.executors.relay")
    parser.add_argument("config_json")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    here = Path.cwd()  # the job's working folder: Ray unpacked the bundle here
    scratch = Path(tempfile.mkdtemp(prefix="graft-run-", dir=os.environ.get("GRAFT_SCRATCH_DIR") or None))
    run_dir = scratch / "run"
    try:
        run_dir.mkdir()
        config = localise(json.loads(args.config_json), run_dir, here)
        (run_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        write = _printer()
        relay = Relay(run_dir, float(os.environ.get("GRAFT_RELAY_CHECKPOINT_S", "300")), write)
        if args.resume and (here / "inputs" / "checkpoint").is_dir():
            shutil.copytree(here / "inputs" / "checkpoint", run_dir / "checkpoint")
            relay.known_checkpoint()
        code = _train(run_dir, args.resume, relay, write)
        relay.finish(code)
        return code
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
