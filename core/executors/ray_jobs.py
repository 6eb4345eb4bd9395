"""The ``ray`` executor: the run's CLI command becomes a Ray Jobs submission to a Ray cluster.

* **Launch**: ``JobSubmissionClient.submit_job`` with the same command the local executor runs,
  ``python -m core train --config RUN/config.json`` (with a shared filesystem), or the relay that
  runs that command in a folder on the node and sends it back (core/executors/relay.py) without
  one. Graft's code travels as the job's ``working_dir`` (core/executors/bundle.py).
* **Queue**: the cluster's. A job asks for ``entrypoint_num_cpus`` / ``entrypoint_num_gpus``; while
  no node has them free, Ray keeps it PENDING and the run reads "queued".
* **Stop**: the ``stop`` file (shared filesystem) and ``stop_job``, whose SIGTERM the training
  command honours after the current batch (Ray is given 120 s before it force-kills).
* **Alive**: a client process follows the job (:meth:`RayExecutor.follow`): it mirrors the run
  folder and records the end. A job that ends while its run still reads active (its node died,
  its process was killed) reads "interrupted" and can resume from its last checkpoint.

Ray is imported only here, and only when this executor is used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import GraftError
from ..jsonio import read_json, write_json_atomic
from ..runs import ACTIVE_STATES, FINAL_STATES, RunFolder, pid_alive, request_stop_file, slugify, spawn_cli
from . import ExecutorSettings
from .bundle import build_bundle, code_members, input_members
from .mirror import Mirror

__all__ = ["RayExecutor", "job_client", "normalise_address", "FORWARDED_ENV"]

FORWARDED_ENV = ("GRAFT_DEVICE", "GRAFT_PRECISION", "GRAFT_RELAY_CHECKPOINT_S", "GRAFT_CACHE_RAM_MB", "HF_HUB_OFFLINE")
STOP_GRACE_S = 120  # RAY_JOB_STOP_WAIT_TIME_S: time to finish the batch and save before Ray force-kills
STATUS_TTL_S = 5.0
LOST_CONTACT_S = 90.0  # how long the cluster may stay silent before a run counts as lost
_CLIENTS: dict[str, Any] = {}  # cache: one Ray Jobs client per address (each checks the version once)
_JOB_STATUS: dict[tuple[str, str], tuple[float, str | None]] = {}  # cache: (address, job) -> (time, status)


def normalise_address(address: str) -> str:
    """``HOST:PORT`` or ``http(s)://HOST:PORT`` of the cluster's dashboard (Ray Jobs listens there)."""
    address = address.strip().rstrip("/")
    if not address:
        raise GraftError("No Ray cluster address is set.",
                         hint="Set it in Settings, with --ray-address or GRAFT_RAY_ADDRESS (e.g. http://head-node:8265).")
    return address if "://" in address else f"http://{address}"


def job_client(address: str) -> Any:
    """A ``ray.job_submission.JobSubmissionClient`` for ``address`` (cached).

    Raises:
        GraftError: Ray is not installed here, or nothing answers at the address.
    """
    address = normalise_address(address)
    if address in _CLIENTS:
        return _CLIENTS[address]
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise GraftError("Training on a Ray cluster needs Ray on this computer.",
                         hint="Install it: pip install -r requirements-cluster.txt") from None
    for name in ("ray", "ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)  # upload and websocket notes aren't for users
    try:
        client = JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, or a version the cluster refuses
        raise GraftError(f"No Ray cluster answers at {address}.",
                         hint="Check the address (usually http://HEAD-NODE:8265) and that the cluster is running. "
                              f"({type(exc).__name__})") from None
    _CLIENTS[address] = client
    return client


def _job_status(address: str, job_id: str) -> str | None:
    """The job's Ray status ("PENDING", "RUNNING", "SUCCEEDED", ...), None if the cluster can't say (cached)."""
    key = (address, job_id)
    cached = _JOB_STATUS.get(key)
    if cached and time.monotonic() - cached[0] < STATUS_TTL_S:
        return cached[1]
    try:
        value: str | None = str(job_client(address).get_job_status(job_id).value)
    except Exception:  # unreachable, or the job is unknown to a restarted cluster
        value = None
    _JOB_STATUS[key] = (time.monotonic(), value)
    return value


class RayExecutor:
    """Runs the training command as a Ray job on the cluster named by the settings."""

    name = "ray"

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings

    # -- the seam ------------------------------------------------------------------------
    def launch(self, config: RunConfig, *, resume: bool = False) -> RunFolder:
        """Start a follower process here (``python -m core train ... --executor ray``) and return at once."""
        config = self._prepared(config)
        run = RunFolder(config.out)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(config)
        self._write_status(run.path, "queued", "Sending the run to the cluster…", job_id="", client_pid=None)
        spawn_cli(["train", "--config", str(run.config_file), *self.cli_args(), *(["--resume"] if resume else [])],
                  run.path / "follow.log")
        return run

    def run(self, config: RunConfig, *, resume: bool = False) -> int:
        """Submit the run, follow it to the end with its run folder kept here, and return its exit code."""
        config = self._prepared(config)
        run = RunFolder(config.out)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(config)
        try:
            self.submit(config, resume=resume)
        except GraftError as exc:
            self._write_status(run.path, "failed", str(exc), job_id="")
            raise
        try:
            return self.follow(run.path)
        except KeyboardInterrupt:  # Ctrl-C stops the run, as it does on this computer; the result still comes back
            print("Stopping the run on the cluster; its best model comes back here (Ctrl-C again stops waiting: "
                  "then --follow fetches it later)…", file=sys.stderr)
            self.stop(run.path)
            return self.follow(run.path)

    def stop(self, run_dir: Path) -> None:
        """The stop file (honoured within a batch where the cluster shares this disk) and Ray's stop_job.

        Ray can't cancel a job still waiting for room (its stop waits for the job to start, which
        then ends at once), so a run stopped while queued is recorded as stopped here right away.
        """
        status = read_json(Path(run_dir) / "status.json", {}) or {}
        ray = status.get("ray") or {}
        if ray.get("shared_fs"):
            request_stop_file(run_dir)
        job_id, address = self._job_of(run_dir)
        if not job_id:
            return
        try:
            job_client(address).stop_job(job_id)
        except Exception:  # already ended, or unreachable: the follower records what happened
            pass
        if status.get("state") == "queued" and _fresh_status(address, job_id) == "PENDING":
            write_json_atomic(Path(run_dir) / "status.json", {**status, "state": "stopped", "ended": time.time(),
                                                              "message": "Stopped before it started."})

    def live_status(self, run_dir: Path, status: dict[str, Any]) -> dict[str, Any]:
        """While the follower lives it keeps status.json true; else the job's Ray status decides."""
        if status.get("client_host") == socket.gethostname() and pid_alive(status.get("client_pid")):
            return status
        ray = status.get("ray") or {}
        heard = max(float(status.get(k) or 0) for k in ("heartbeat", "updated", "created"))
        recent = time.time() - heard < LOST_CONTACT_S
        if not ray.get("job_id"):
            return status if recent else {**status, "state": "interrupted", "message": _lost_message("never sent")}
        job = _job_status(str(ray.get("address", "")), str(ray["job_id"]))
        if job == "PENDING":
            return {**status, "state": "queued"}
        if job == "RUNNING" or (job is None and recent):
            return status  # still training (or the cluster didn't answer just now)
        return {**status, "state": "interrupted", "message": _lost_message(job)}

    # -- submission ----------------------------------------------------------------------
    def cli_args(self) -> list[str]:
        """These settings as ``python -m core train`` options."""
        s = self.settings
        args = ["--executor", "ray", "--ray-address", s.ray_address, "--gpus", f"{s.gpus:g}", "--cpus", f"{s.cpus:g}",
                "--shared-fs", "yes" if s.shared_fs else "no"]
        args += ["--cluster-name", s.cluster_name] if s.cluster_name else []
        return args + (["--ray-resources", json.dumps(s.resources)] if s.resources else [])

    def submit(self, config: RunConfig, *, resume: bool = False) -> str:
        """Submit the run's job; returns its submission id (chosen here, so status.json names it first)."""
        client = job_client(self.settings.ray_address)
        run_dir = Path(config.out)
        job_id = f"graft-{slugify(run_dir.name, 60)}-{secrets.token_hex(3)}"
        if self.settings.shared_fs:
            bundle = build_bundle(code_members())
            entrypoint = f"exec python -m core train --config {shlex.quote(str(run_dir / 'config.json'))}"
        else:
            members, remote = input_members(config, resume)
            bundle = build_bundle(code_members() + members)
            entrypoint = f"exec python -m core.executors.relay {shlex.quote(json.dumps(remote))}"
        entrypoint += " --resume" if resume else ""
        self._write_status(run_dir, "queued", self._waiting_message(), job_id=job_id)
        env = {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S), "PYTHONUNBUFFERED": "1"}
        env.update({k: os.environ[k] for k in FORWARDED_ENV if k in os.environ})
        s = self.settings
        try:
            client.submit_job(entrypoint=entrypoint, submission_id=job_id,
                              runtime_env={"working_dir": str(bundle), "env_vars": env},
                              entrypoint_num_cpus=s.cpus or None, entrypoint_num_gpus=s.gpus or None,
                              entrypoint_resources=dict(s.resources) or None, metadata={"graft_run": run_dir.name})
        except Exception as exc:
            raise GraftError(f"The cluster refused the run: {exc}".strip()) from None
        return job_id

    def _prepared(self, config: RunConfig) -> RunConfig:
        """Absolute paths (the cluster has its own working folder); no workspace queue (the cluster queues)."""
        normalise_address(self.settings.ray_address)  # no address: say so before anything is written
        return config.replace(out=str(Path(config.out).resolve()), data=str(Path(config.data).resolve()),
                              workspace=None)

    def _waiting_message(self) -> str:
        need = f"{self.settings.gpus:g} GPU" if self.settings.gpus else f"{self.settings.cpus:g} CPU"
        return f"Waiting for the cluster: it starts as soon as a node has {need} free."

    def where(self) -> str:
        """The cluster in plain words, e.g. "Ray cluster plant-gpu"."""
        name = self.settings.cluster_name or normalise_address(self.settings.ray_address).split("://", 1)[1]
        return f"Ray cluster {name}"

    def local_fields(self, job_id: str, events_offset: int = 0) -> dict[str, Any]:
        """What status.json says about where the run is (kept by the training command when it starts).

        ``client_pid``/``client_host`` name the process here that follows the job; ``events_offset``
        is where this job's events start in events.jsonl (earlier ones belong to runs it resumes).
        """
        s = self.settings
        ray = {"address": normalise_address(s.ray_address), "job_id": job_id, "shared_fs": s.shared_fs,
               "gpus": s.gpus, "cpus": s.cpus, "cluster_name": s.cluster_name, "events_offset": events_offset}
        return {"executor": self.name, "where": self.where(), "ray": ray, "client_pid": os.getpid(),
                "client_host": socket.gethostname()}

    def _write_status(self, run_dir: Path, state: str, message: str, job_id: str, **extra: Any) -> None:
        now = time.time()
        events = Path(run_dir) / "events.jsonl"
        fields = self.local_fields(job_id, events.stat().st_size if events.is_file() else 0)
        write_json_atomic(Path(run_dir) / "status.json", {"state": state, "message": message, "created": now,
                                                          "updated": now, "heartbeat": now, **fields, **extra})

    def _job_of(self, run_dir: Path) -> tuple[str, str]:
        ray = (read_json(Path(run_dir) / "status.json", {}) or {}).get("ray") or {}
        return str(ray.get("job_id", "")), str(ray.get("address", "") or self.settings.ray_address)

    # -- following -----------------------------------------------------------------------
    def follow(self, run_dir: Path) -> int:
        """Mirror the job's run folder here until the job ends; record the end; return the exit code.

        Also re-attaches to a job whose follower ended (e.g. this computer restarted): the job log
        is read again from its start, so nothing is lost while the cluster keeps the job.
        """
        run_dir = Path(run_dir)
        status = read_json(run_dir / "status.json", {}) or {}
        ray = status.get("ray") or {}
        if not ray.get("job_id"):
            raise GraftError("This run was never sent to a cluster.")
        address, job_id = str(ray["address"]), str(ray["job_id"])
        fields = {**self.local_fields(job_id, int(ray.get("events_offset", 0))), "ray": ray}
        if status.get("client_pid") != os.getpid():
            write_json_atomic(run_dir / "status.json", {**status, "client_pid": os.getpid(),
                                                        "client_host": fields["client_host"]})
        if not ray.get("shared_fs"):
            _truncate(run_dir / "events.jsonl", int(ray.get("events_offset", 0)))  # the log replays them
        mirror = Mirror(run_dir, fields)
        asyncio.run(self._stream(run_dir, address, job_id, mirror))
        final = mirror.close()
        return self._record_end(run_dir, address, job_id, mirror, final)

    def reattach(self, run_dir: Path) -> None:
        """Start a new follower here for a run whose follower ended while its job lives on."""
        run = RunFolder(run_dir)
        spawn_cli(["train", "--config", str(run.config_file), *self.cli_args(), "--follow"], run.path / "follow.log")

    async def _stream(self, run_dir: Path, address: str, job_id: str, mirror: Mirror) -> None:
        """Tail the job log into the mirror until the job ends, or until the run was stopped while queued."""
        tail = asyncio.create_task(self._tail(address, job_id, mirror))
        while not tail.done():
            await asyncio.wait([tail], timeout=2)
            state = (read_json(run_dir / "status.json", {}) or {}).get("state")
            if not tail.done() and state in FINAL_STATES and _fresh_status(address, job_id) == "PENDING":
                tail.cancel()  # stopped before it started: nothing will come (see stop)
        if not tail.cancelled():
            tail.result()

    async def _tail(self, address: str, job_id: str, mirror: Mirror) -> None:
        """Feed the job log to the mirror; reconnects skip what was already read."""
        client, seen, last_contact = job_client(address), 0, time.monotonic()
        while True:
            offset = 0
            try:
                async for chunk in client.tail_job_logs(job_id):
                    fresh = chunk[max(0, seen - offset):]
                    offset += len(chunk)
                    if fresh:
                        mirror.feed(fresh)
                        seen = offset
                last_contact = time.monotonic()
            except Exception:  # the node serving the log went away, or the connection dropped
                pass
            status = await asyncio.to_thread(_fresh_status, address, job_id)
            if status is not None:
                last_contact = time.monotonic()
            if status not in (None, "PENDING", "RUNNING") or time.monotonic() - last_contact > LOST_CONTACT_S:
                return
            await asyncio.sleep(2)

    def _record_end(self, run_dir: Path, address: str, job_id: str, mirror: Mirror,
                    final: dict[str, Any] | None) -> int:
        """The run's end as the job's status tells it, for a run that didn't record its own."""
        info = _job_info(address, job_id)
        code = getattr(info, "driver_exit_code", None)
        status = read_json(run_dir / "status.json", {}) or {}
        if status.get("state") in ACTIVE_STATES:
            job = str(getattr(getattr(info, "status", None), "value", "")) or None
            state, message = _end_of_unfinished(status, job, getattr(info, "message", "") or "")
            write_json_atomic(run_dir / "status.json", {**status, "state": state, "message": message,
                                                        "ended": time.time()})
            return 2 if state == "failed" else 1
        if mirror.exit_code is not None:
            return mirror.exit_code
        if isinstance(code, int) and code >= 0:
            return code
        return 0 if status.get("state") in ("done", "stopped") else 1


def _truncate(path: Path, size: int) -> None:
    if path.is_file() and path.stat().st_size > size:
        with open(path, "r+b") as fh:
            fh.truncate(size)


def _fresh_status(address: str, job_id: str) -> str | None:
    _JOB_STATUS.pop((address, job_id), None)
    return _job_status(address, job_id)


def _job_info(address: str, job_id: str) -> Any:
    try:
        return job_client(address).get_job_info(job_id)
    except Exception:
        return None


def _end_of_unfinished(status: dict[str, Any], job: str | None, ray_message: str) -> tuple[str, str]:
    """(state, message) for a run whose job ended before the run recorded an end of its own."""
    if status.get("state") == "queued" and job == "STOPPED":
        return "stopped", "Stopped before it started."
    if status.get("state") == "queued" and job == "FAILED":
        return "failed", f"The cluster couldn't start this run: {ray_message or 'no reason given'}"
    return "interrupted", _lost_message(job)


def _lost_message(job: str | None) -> str:
    why = {None: "the cluster can't be reached", "never sent": "it never reached the cluster",
           "SUCCEEDED": "it ended on the cluster, but its files never came back to this computer"
           }.get(job, "its job on the cluster ended before the run did (a node or process was lost)")
    return f"The run was lost: {why}. Resume it from its last checkpoint, or start it again."
