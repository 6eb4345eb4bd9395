"""A warm training process: Start without waiting for PyTorch to load.

``python -m core train`` spends about 7 s importing torch, timm and scikit-learn before it can check
a single photo. While the user is on the Model or Train page, the app keeps one
``python -m core train --standby FOLDER`` waiting in the workspace (:func:`ensure_standby`): it has
done those imports and polls its folder. Start hands it the run (:func:`hand_over`, called by the
local executor) and it goes on exactly as ``python -m core train --config ...`` of that run would:
same entry point, same code path, its own session, so it survives the app like any run.

A standby is only used by the app that it matches (:func:`fingerprint`: the same Python, environment
and core code); one that nobody claims within :data:`IDLE_S` ends itself, and none is started while a
run trains here (it would take the run's CPU). ``GRAFT_STANDBY=0`` turns the whole thing off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .jsonio import read_json, write_json_atomic
from .runs import PROJECT_ROOT, pid_alive, spawn_cli
from .workspace import Workspace

__all__ = ["ensure_standby", "hand_over", "wait_for_run", "ready_standby", "stop_standbys", "enabled", "IDLE_S"]

IDLE_S = 10 * 60        # an unclaimed standby ends itself after this long (it holds 0.5-0.9 GB)
GO_WAIT_S = 30.0        # a claimed standby whose run never arrives ends itself after this long
POLL_S = 0.05
SPAWN_GRACE_S = 30.0    # a standby folder without its pid yet is being started, not left behind
SPAWNED, READY, CLAIMED, GO, RETIRED = "spawned.json", "ready.json", "claimed.json", "go.json", "retired.json"
SET_BY_IMPORTS = ("TORCHINDUCTOR_",)  # torch sets these when imported (the app loads it after its first page)
ENGINE = ("core.pipeline", "core.probe", "core.crossval", "sklearn.linear_model")  # what a run imports first


def enabled() -> bool:
    """Whether the app keeps a warm training process (``GRAFT_STANDBY=0`` turns it off)."""
    return os.environ.get("GRAFT_STANDBY", "1").strip().lower() not in ("0", "no", "off", "false")


def standby_root(workspace: str | Path) -> Path:
    return Path(workspace) / ".standby"


def fingerprint() -> str:
    """What a standby must share with the app that uses it: Python, environment and core's code."""
    digest = hashlib.sha256(sys.executable.encode())
    for key, value in sorted(os.environ.items()):
        if not key.startswith(SET_BY_IMPORTS):
            digest.update(f"{key}={value}\n".encode())
    for path in sorted((PROJECT_ROOT / "core").rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(PROJECT_ROOT)}:{stat.st_mtime_ns}:{stat.st_size}\n".encode())
    return digest.hexdigest()[:16]


# --- the app's side -----------------------------------------------------------------------------

def _folders(workspace: str | Path) -> list[Path]:
    root = standby_root(workspace)
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _alive(folder: Path) -> bool:
    spawned = read_json(folder / SPAWNED, None)
    if not isinstance(spawned, dict):  # being started this moment (its pid is written just after)
        return time.time() - folder.stat().st_mtime < SPAWN_GRACE_S
    return pid_alive(spawned.get("pid")) and not (folder / RETIRED).exists()


def _tidy(workspace: str | Path) -> list[Path]:
    """Remove the folders of standbys that ended; the live ones (waiting, or training a run), oldest first."""
    live = []
    for folder in _folders(workspace):
        if _alive(folder):
            live.append(folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return live


def ensure_standby(workspace: str | Path | None) -> bool:
    """Keep one warm training process for ``workspace``; True when one is (or is getting) ready.

    Cheap enough for every page render: it reads a few small files and starts a process only when
    none is waiting and no run trains here.
    """
    if workspace is None or not enabled():
        return False
    try:
        if _waiting_and_current(workspace):
            return True
        if Workspace(workspace).active_runs():  # it would take the run's CPU
            return False
        _spawn(workspace)
        return True
    except OSError:  # e.g. a read-only workspace: runs just start the usual way
        return False


def _waiting_and_current(workspace: str | Path) -> bool:
    """Whether an unclaimed standby matches this app; one that doesn't (the code or the environment
    changed since it started) is ended, so a current one can take its place."""
    mine, found = fingerprint(), False
    for folder in _tidy(workspace):
        if (folder / CLAIMED).exists():
            continue
        spawned = read_json(folder / SPAWNED, None)
        if isinstance(spawned, dict) and spawned.get("fingerprint") != mine:
            shutil.rmtree(folder, ignore_errors=True)  # it ends when its folder goes
        else:
            found = True
    return found


def _spawn(workspace: str | Path) -> Path:
    folder = standby_root(workspace) / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    folder.mkdir(parents=True, exist_ok=True)
    pid = spawn_cli(["train", "--standby", str(folder)], folder / "standby.log")
    write_json_atomic(folder / SPAWNED, {"pid": pid, "fingerprint": fingerprint(), "time": time.time()})
    return folder


def ready_standby(workspace: str | Path | None) -> Path | None:
    """The folder of a standby that has loaded everything and matches this app, if any."""
    if workspace is None or not enabled():
        return None
    mine = fingerprint()
    try:
        for folder in _tidy(workspace):
            spawned = read_json(folder / SPAWNED, {}) or {}
            if (folder / READY).exists() and spawned.get("fingerprint") == mine:
                return folder
    except OSError:  # e.g. another tab tidied a folder just now: this run starts the usual way
        return None
    return None


def hand_over(workspace: str | Path | None, train_args: list[str], log_file: Path) -> int | None:
    """Give the run to a ready standby: its pid, or None when there is none (start a process then)."""
    folder = ready_standby(workspace)
    if folder is None:
        return None
    try:
        os.rename(folder / READY, folder / CLAIMED)  # atomic: two tabs never get the same standby
    except OSError:
        return None
    write_json_atomic(folder / GO, {"args": train_args, "log": str(log_file)})
    return int((read_json(folder / SPAWNED, {}) or {}).get("pid") or 0) or None


def stop_standbys(workspace: str | Path) -> None:
    """End every waiting standby of ``workspace`` (each ends when its folder goes); a run already handed
    over trains on."""
    shutil.rmtree(standby_root(workspace), ignore_errors=True)


# --- the standby's side ---------------------------------------------------------------------------

def wait_for_run(folder: str | Path) -> list[str] | None:
    """In the standby: load the engine, say so, and wait; the run's ``train`` arguments, or None to end."""
    import importlib

    folder = Path(folder)
    for module in ENGINE:
        importlib.import_module(module)
    if not folder.is_dir():  # stopped while loading (write_json_atomic would make the folder again)
        return None
    write_json_atomic(folder / READY, {"pid": os.getpid(), "time": time.time()})
    go = _wait_for_go(folder)
    if not go or not isinstance(go.get("args"), list):
        return None
    _log_to(Path(str(go.get("log"))))
    return [str(a) for a in go["args"]]


def _wait_for_go(folder: Path) -> dict[str, Any] | None:
    idle_until, go_until = time.time() + IDLE_S, None
    while folder.is_dir():
        go = read_json(folder / GO, None)
        if isinstance(go, dict):
            return go
        now = time.time()
        if go_until is None and now > idle_until:
            if _retire(folder):
                return None
            go_until = now + GO_WAIT_S  # claimed at this very moment: its run is on the way
        elif go_until is not None and now > go_until:
            return None
        time.sleep(POLL_S)
    return None


def _retire(folder: Path) -> bool:
    """End unclaimed: True unless the app claimed it just now (the same atomic rename decides)."""
    try:
        os.rename(folder / READY, folder / RETIRED)
        return True
    except OSError:
        return False


def _log_to(log_file: Path) -> None:
    """From now on, print into the run's log, as a process launched for the run would."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
