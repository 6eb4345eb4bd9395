""""Test the connection" for the Settings page: is the cluster reachable, and what can it do?"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GraftError
from . import ExecutorSettings
from .bundle import build_bundle, code_members
from .frames import decode
from .ray_jobs import job_client, normalise_address

__all__ = ["ConnectionReport", "check_connection"]


@dataclass
class ConnectionReport:
    """The answer, in plain words: ``ok``, one ``message`` sentence, more ``details`` lines, raw ``facts``."""

    ok: bool
    message: str
    details: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def _probe(client: Any, marker: Path | None, token: str, timeout_s: float) -> dict[str, Any] | None:
    args = f" {marker} {token}" if marker else ""
    job = client.submit_job(entrypoint=f"exec python -m core.executors.probe{args}",
                            submission_id=f"graft-probe-{token[:8]}",
                            runtime_env={"working_dir": str(build_bundle(code_members()))})
    deadline = time.monotonic() + timeout_s
    while str(client.get_job_status(job).value) in ("PENDING", "RUNNING"):
        if time.monotonic() > deadline:
            client.stop_job(job)
            return None
        time.sleep(0.5)
    for line in client.get_job_logs(job).splitlines():
        frame = decode(line)
        if frame and frame["kind"] == "probe":
            return frame.get("facts") or {}
    return {}


def _details(facts: dict[str, Any]) -> list[str]:
    lines = []
    if "cpus" in facts:
        gpus = f"{facts['gpus']:g} GPU(s)" if facts.get("gpus") else "no GPU"
        lines.append(f"It has {facts.get('nodes', 1)} computer(s) with {facts['cpus']:g} CPUs and {gpus} "
                     f"({facts.get('free_cpus', 0):g} CPUs and {facts.get('free_gpus', 0):g} GPUs free right now).")
    for gpu in facts.get("node_gpus") or []:
        native = "bf16" if tuple(gpu["capability"]) >= (8, 0) else "fp16"
        lines.append(f"The node it tested has a {gpu['name']} (trains in {native}).")
    if not facts.get("torch") or not facts.get("timm"):
        lines.append("Graft's training libraries (torch, timm) are missing on the cluster: install "
                     "requirements.txt there first (see docs/scale-out.md).")
    lines.append("It can read this workspace folder, so runs are written in place (shared storage)."
                 if facts.get("sees_workspace") else
                 "It can't see this workspace folder: each run's photos travel with it and its folder comes back.")
    return lines


def check_connection(settings: ExecutorSettings, workspace: str | Path | None = None,
                     timeout_s: float = 120.0) -> ConnectionReport:
    """Reach the cluster and run a tiny job there; never raises for a cluster problem.

    Args:
        settings: the Ray address (and name) to test.
        workspace: when given, also tests whether the cluster sees this folder (shared storage).
        timeout_s: how long the test job may wait for room on the cluster.
    """
    try:
        address = normalise_address(settings.ray_address)
        client = job_client(address)
    except GraftError as exc:
        return ConnectionReport(False, exc.message, [exc.hint] if exc.hint else [])
    token = secrets.token_hex(8)
    marker = Path(workspace) / f".graft-probe-{token}" if workspace else None
    try:
        if marker:
            marker.write_text(token, encoding="utf-8")
        facts = _probe(client, marker.resolve() if marker else None, token, timeout_s)
    except Exception as exc:  # the cluster answered but refused or failed the job
        return ConnectionReport(False, f"The cluster at {address} answers, but couldn't run a test job "
                                       f"({type(exc).__name__}).", [str(exc)[:300]])
    finally:
        if marker:
            marker.unlink(missing_ok=True)
    if facts is None:
        return ConnectionReport(False, f"The cluster at {address} answers, but had no room to run a test job "
                                       f"within {timeout_s:.0f} seconds.", ["Try again when it is less busy."])
    return ConnectionReport(bool(facts.get("torch") and facts.get("timm")),
                            f"Connected to the Ray cluster at {address}.", _details(facts), facts)
