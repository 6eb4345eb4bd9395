"""The run folder: config, status with heartbeat, events, stop requests; launching and listing runs."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import GraftError
from .jsonio import append_jsonl, read_json, write_json_atomic

__all__ = ["RunFolder", "new_run_dir", "launch_run", "read_status", "list_runs", "request_stop",
           "request_stop_file", "local_live_status", "pid_alive", "ACTIVE_STATES", "FINAL_STATES",
           "STALE_AFTER_S", "slugify", "reap_when_done"]

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "stopped", "interrupted")
STALE_AFTER_S = 45.0  # a live process writes a heartbeat every few seconds
HEARTBEAT_S = 3.0
INTERRUPTED_MESSAGE = ("The training process ended unexpectedly. Restart the run, or resume it "
                       "from its last checkpoint.")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def slugify(text: str, max_len: int = 40) -> str:
    """A safe folder-name fragment: letters, digits, dash; never a path."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_").lower()
    return slug[:max_len] or "run"


def new_run_dir(runs_root: str | Path, name: str = "") -> Path:
    """A fresh, unique run folder (timestamp + random suffix, so two tabs never collide)."""
    root = Path(runs_root)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{slugify(name or 'run')}-{secrets.token_hex(2)}"
        path = root / run_id
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


class RunFolder:
    """Typed access to one run's files. Writers are the training process; readers are the app."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {}

    # files
    config_file = property(lambda self: self.path / "config.json")
    status_file = property(lambda self: self.path / "status.json")
    events_file = property(lambda self: self.path / "events.jsonl")
    metrics_file = property(lambda self: self.path / "metrics.json")
    predictions_file = property(lambda self: self.path / "predictions.csv")
    model_dir = property(lambda self: self.path / "model")
    stop_file = property(lambda self: self.path / "stop")
    log_file = property(lambda self: self.path / "log.txt")

    def write_config(self, config: RunConfig) -> None:
        write_json_atomic(self.config_file, config.to_dict())

    def read_config(self) -> RunConfig:
        data = read_json(self.config_file)
        if not isinstance(data, dict):
            raise GraftError(f"The run folder '{self.path.name}' has no readable config.json.")
        return RunConfig.from_dict(data)

    def set_status(self, state: str, message: str = "", **extra: Any) -> None:
        """Record the state; keeps earlier fields (pid, created) unless overwritten."""
        with self._lock:
            if not self._status:
                self._status = read_json(self.status_file, {}) or {}
            now = time.time()
            self._status.update(state=state, message=message, updated=now, heartbeat=now, pid=os.getpid())
            self._status.update(extra)
            self._status.setdefault("created", now)
            write_json_atomic(self.status_file, self._status)

    def heartbeat(self) -> None:
        with self._lock:
            if self._status:
                self._status["heartbeat"] = time.time()
                write_json_atomic(self.status_file, self._status)

    def emit(self, event: str, **data: Any) -> None:
        append_jsonl(self.events_file, {"event": event, "time": time.time(), **data})

    def events(self) -> list[dict[str, Any]]:
        return _EVENTS.read(self.events_file)

    def status(self) -> dict[str, Any]:
        return read_status(self.path)

    def stop_requested(self) -> bool:
        return self.stop_file.exists()


class _EventLogCache:
    """Readers poll a growing events.jsonl every second: parse only the lines added since last time.

    The log is append-only; a file that shrank or was replaced is read again from the start.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[Path, tuple[int, int, list[dict[str, Any]]]] = {}  # path -> (inode, offset, records)

    def read(self, path: Path) -> list[dict[str, Any]]:
        try:
            stat = path.stat()
        except OSError:
            return []
        with self._lock:
            inode, offset, records = self._seen.get(path, (stat.st_ino, 0, []))
            if inode != stat.st_ino or stat.st_size < offset:
                offset, records = 0, []
            if stat.st_size > offset:
                offset, records = self._extend(path, offset, list(records))
            self._seen[path] = (stat.st_ino, offset, records)
            return list(records)

    @staticmethod
    def _extend(path: Path, offset: int, records: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a torn last line waits for the next read
        records.extend(_parse_lines(complete))
        return offset + len(complete), records


def _parse_lines(data: bytes) -> list[dict[str, Any]]:
    out = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


_EVENTS = _EventLogCache()  # a cache built for this purpose, shared by every reader in the process


class Heartbeat:
    """Refresh the status heartbeat from a background thread while the run lives."""

    def __init__(self, run: RunFolder, every: float = HEARTBEAT_S) -> None:
        self.run, self.every = run, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.run.heartbeat()
            except OSError:
                pass  # a full disk must not kill training; the next beat retries

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` of this computer is running (a zombie is not)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):
        return True
    return _not_zombie(int(pid))


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def reap_when_done(proc: subprocess.Popen) -> subprocess.Popen:
    """Collect a launched process's exit status in a daemon thread, so it never stays ``<defunct>``
    under the app (the app is its parent but only ever reads the run folder)."""
    threading.Thread(target=proc.wait, name=f"graft-reap-{proc.pid}", daemon=True).start()
    return proc


def spawn_cli(args: list[str], log_file: Path) -> int:
    """Start ``python -m core ARGS`` in its own session (it outlives the app), printing into ``log_file``;
    its pid. The app reaps it when it ends."""
    cmd = [sys.executable, "-m", "core", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    with open(log_file, "ab") as log:
        proc = reap_when_done(subprocess.Popen(cmd, cwd=str(PROJECT_ROOT), stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env=env, start_new_session=True))
    return proc.pid


def local_live_status(status: dict[str, Any]) -> dict[str, Any]:
    """A run on this computer: an active one whose process is gone or silent is 'interrupted'."""
    if status.get("state") in ACTIVE_STATES:
        silent = time.time() - float(status.get("heartbeat", 0)) > STALE_AFTER_S
        if silent or not pid_alive(status.get("pid")):
            status = {**status, "state": "interrupted", "message": INTERRUPTED_MESSAGE}
    return status


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """The run's true state: an active run whose process (or cluster job) is gone is 'interrupted'."""
    status = read_json(Path(run_dir) / "status.json", None)
    if not isinstance(status, dict):
        return {"state": "unknown", "message": "This run has no status yet."}
    if status.get("state") not in ACTIVE_STATES:
        return status
    if status.get("executor", "local") == "local":
        return local_live_status(status)
    from .executors import executor_for_status  # local: the seam imports this module

    return executor_for_status(status).live_status(Path(run_dir), status)


def request_stop_file(run_dir: str | Path) -> None:
    """Leave the ``stop`` file that a training process honours after the current batch."""
    (Path(run_dir) / "stop").write_text("stop requested\n", encoding="utf-8")


def request_stop(run_dir: str | Path) -> None:
    """Ask a run to stop after the current batch, wherever it trains (its executor does the asking)."""
    from .executors import executor_for_status

    status = read_json(Path(run_dir) / "status.json", {}) or {}
    executor_for_status(status if isinstance(status, dict) else {}).stop(Path(run_dir))


def launch_run(config: RunConfig, *, resume: bool = False, executor: Any = None) -> RunFolder:
    """Write the config and start ``python -m core train --config ...`` in the background.

    Where it trains is the executor's business (core/executors): by default the one the
    workspace's settings (or ``GRAFT_EXECUTOR``) name, else this computer. The app only
    reads the run folder.
    """
    from .executors import executor_settings, get_executor

    chosen = executor or get_executor(executor_settings(config.workspace))
    return chosen.launch(config, resume=resume)


def list_runs(runs_root: str | Path) -> list[dict[str, Any]]:
    """Every run under ``runs_root``, newest first, with config, status and headline metrics."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    out = []
    for path in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        config = read_json(path / "config.json", {}) or {}
        out.append({"id": path.name, "path": str(path), "config": config, "status": read_status(path),
                    "metrics": read_json(path / "metrics.json", {}) or {}})
    return out
