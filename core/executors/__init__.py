"""Where a run trains: the executor seam.

A run is always ``python -m core train --config RUN/config.json``; an executor only decides
where that command runs and how its run folder reaches the app:

* ``local`` (the default): a process on this computer, queued by the workspace's file locks;
* ``ray``: a Ray Jobs submission to a Ray cluster, queued by the cluster's own resources
  (``core/executors/ray_jobs.py``; Ray is imported only when this executor is used).

The training code never knows which one runs it. The choice comes from (first wins) an explicit
argument (CLI options), ``GRAFT_EXECUTOR`` / ``GRAFT_RAY_ADDRESS`` / ``GRAFT_RAY_GPUS`` /
``GRAFT_RAY_SHARED_FS``, the workspace's ``settings.json`` (``executor``, ``ray_address``,
``ray_gpus``, ``ray_cpus``, ``ray_shared_fs``, ``ray_name``), else ``local``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

from ..config import RunConfig
from ..errors import GraftError
from ..jsonio import read_json, write_json_atomic

__all__ = ["Executor", "ExecutorSettings", "EXECUTORS", "executor_settings", "save_executor_settings",
           "get_executor", "executor_for_status", "where_label", "follow_again"]

EXECUTORS = ("local", "ray")
SETTINGS_KEYS = {"name": "executor", "ray_address": "ray_address", "gpus": "ray_gpus", "cpus": "ray_cpus",
                 "shared_fs": "ray_shared_fs", "cluster_name": "ray_name", "resources": "ray_resources"}


class Executor(Protocol):
    """Launch a run, stop it, and tell whether it is alive; nothing else."""

    name: str

    def launch(self, config: RunConfig, *, resume: bool = False) -> Any:
        """Start the run in the background and return its ``RunFolder`` at once (the app)."""

    def run(self, config: RunConfig, *, resume: bool = False) -> int:
        """Run it in the foreground until it ends; returns the run's exit code (the CLI)."""

    def stop(self, run_dir: Path) -> None:
        """Ask the run to stop after the current batch (keeping the best model so far)."""

    def live_status(self, run_dir: Path, status: dict[str, Any]) -> dict[str, Any]:
        """The run's true state from its status file: ``interrupted`` once its process or job is gone."""


@dataclass(frozen=True)
class ExecutorSettings:
    """Which executor runs new runs, and how to reach and use a Ray cluster."""

    name: str = "local"
    ray_address: str = ""
    gpus: float = 0
    cpus: float = 1
    shared_fs: bool = False
    cluster_name: str = ""
    resources: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in EXECUTORS:
            raise GraftError(f"Unknown executor '{self.name}'.", hint="Use 'local' (this computer) or 'ray'.")


def _env_overrides() -> dict[str, Any]:
    env = {"name": os.environ.get("GRAFT_EXECUTOR"), "ray_address": os.environ.get("GRAFT_RAY_ADDRESS"),
           "gpus": os.environ.get("GRAFT_RAY_GPUS"), "shared_fs": os.environ.get("GRAFT_RAY_SHARED_FS")}
    return {k: v for k, v in env.items() if v}


def _coerce(key: str, value: Any) -> Any:
    if key in ("gpus", "cpus"):
        return float(value)
    if key == "shared_fs":
        return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
    if key == "resources":
        return {str(k): float(v) for k, v in dict(value).items()}
    return str(value)


def executor_settings(workspace: str | Path | None = None, **overrides: Any) -> ExecutorSettings:
    """The executor settings in force: explicit ``overrides`` > environment > ``settings.json`` > defaults.

    Args:
        workspace: the workspace whose ``settings.json`` is read (None: none).
        overrides: ``name``, ``ray_address``, ``gpus``, ``cpus``, ``shared_fs``, ``cluster_name``;
            None values are ignored.
    """
    stored = read_json(Path(workspace) / "settings.json", {}) if workspace else {}
    stored = stored if isinstance(stored, dict) else {}
    values: dict[str, Any] = {k: stored[key] for k, key in SETTINGS_KEYS.items() if stored.get(key) not in (None, "")}
    values.update(_env_overrides())
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ExecutorSettings(**{k: _coerce(k, v) for k, v in values.items()})
    except (TypeError, ValueError):
        raise GraftError("The executor settings can't be read.", hint="Check settings.json and GRAFT_RAY_*.") from None


def save_executor_settings(workspace: str | Path, settings: ExecutorSettings) -> None:
    """Store the executor choice in the workspace's ``settings.json`` (other settings are kept)."""
    path = Path(workspace) / "settings.json"
    stored = read_json(path, {})
    stored = stored if isinstance(stored, dict) else {}
    stored.update({SETTINGS_KEYS[f.name]: getattr(settings, f.name) for f in fields(settings)})
    write_json_atomic(path, stored)


def get_executor(settings: ExecutorSettings | None = None) -> Executor:
    """The executor named by ``settings`` (default: :func:`executor_settings` without a workspace)."""
    settings = settings or executor_settings()
    if settings.name == "ray":
        from .ray_jobs import RayExecutor

        return RayExecutor(settings)
    from .local import LocalExecutor

    return LocalExecutor()


def executor_for_status(status: dict[str, Any]) -> Executor:
    """The executor that runs the run with this status (recorded at launch; old runs are local)."""
    if status.get("executor") == "ray":
        ray = status.get("ray") if isinstance(status.get("ray"), dict) else {}
        return get_executor(replace(ExecutorSettings(name="ray"), ray_address=str(ray.get("address", "")),
                                    cluster_name=str(ray.get("cluster_name", ""))))
    return get_executor(ExecutorSettings())


def where_label(status: dict[str, Any]) -> str:
    """Where a run trains, in plain words: "this computer", or the cluster, plus the GPU once known.

    E.g. "this computer (CPU)", "Ray cluster plant-gpu · NVIDIA A10G".
    """
    place = status.get("where") or "this computer"
    gpu = status.get("gpu")
    if gpu:
        return f"{place} · {gpu}"
    device = status.get("device")
    return f"{place} ({str(device).upper()})" if device else str(place)


def follow_again(run_dir: str | Path) -> bool:
    """Start a new follower for a cluster run that nobody here follows any more (e.g. after a restart).

    The Train page calls this when it shows an active run; it does nothing for local runs, ended
    runs, or runs whose follower is alive. Returns whether a follower was started.
    """
    from ..runs import ACTIVE_STATES, pid_alive  # local: runs imports this package lazily too

    status = read_json(Path(run_dir) / "status.json", {}) or {}
    ray = status.get("ray") if isinstance(status.get("ray"), dict) else {}
    if status.get("executor") != "ray" or status.get("state") not in ACTIVE_STATES or not ray.get("job_id"):
        return False
    if status.get("client_host") == socket.gethostname() and pid_alive(status.get("client_pid")):
        return False
    settings = ExecutorSettings(name="ray", ray_address=str(ray.get("address", "")),
                                shared_fs=bool(ray.get("shared_fs")), cluster_name=str(ray.get("cluster_name", "")))
    get_executor(settings).reattach(Path(run_dir))
    return True
