"""A throwaway local Ray head for the cluster tests (skipped cleanly when Ray isn't installed).

Ray Jobs is served by the dashboard's job module, which ``--include-dashboard=false`` leaves out
(Ray 2.60 then loads only the usage-stats module), so the head runs the dashboard bound to
127.0.0.1 on a free port. Every process of the head carries a token in its environment; the
teardown stops the head (SIGTERM to ``ray start --block``) and then kills, by pid, any process
still carrying the token, even when a test failed. ``ray stop`` is never used: it would stop
every Ray on this machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.serving import wait_until_served

TOKEN_VAR = "GRAFT_TEST_RAY_HEAD"


@dataclass
class Head:
    address: str  # the dashboard, where Ray Jobs listens
    token: str


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _head_command(temp_dir: str) -> tuple[list[str], int]:
    gcs, dash, agent, agent_grpc, env_agent, raylet, objects, client, metrics = _free_ports(9)
    low = 20000 + secrets.randbelow(300) * 100
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--num-cpus", "2",
           "--include-dashboard=true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
           "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
           "--runtime-env-agent-port", str(env_agent), "--node-manager-port", str(raylet),
           "--object-manager-port", str(objects), "--ray-client-server-port", str(client),
           "--metrics-export-port", str(metrics), "--port", str(gcs), "--min-worker-port", str(low),
           "--max-worker-port", str(low + 99), "--node-ip-address", "127.0.0.1",
           "--object-store-memory", str(80 * 2**20), "--temp-dir", temp_dir, "--disable-usage-stats"]
    return cmd, dash


def _carrying(token: str) -> list[int]:
    """Pids of this user's processes whose environment holds the token (never this test process)."""
    needle = f"{TOKEN_VAR}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _stop(proc: subprocess.Popen, token: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    deadline = time.time() + 15
    while time.time() < deadline and _carrying(token):
        time.sleep(0.5)
    for pid in _carrying(token):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture(scope="session")
def ray_head() -> Iterator[Head]:
    """A 2-CPU Ray head on free ports for this test session; stopped afterwards, even on failure."""
    pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -r requirements-cluster.txt)")
    token = secrets.token_hex(8)
    temp_dir = tempfile.mkdtemp(prefix="gray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    cmd, dash = _head_command(temp_dir)
    bin_dir = str(Path(sys.executable).parent)  # jobs run `python`: this interpreter's
    env = {**os.environ, TOKEN_VAR: token, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    old = os.environ.get(TOKEN_VAR)
    os.environ[TOKEN_VAR] = token  # followers started by the tests are cleaned up with the head
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        address = f"http://127.0.0.1:{dash}"
        wait_until_served(f"{address}/api/jobs/", proc, "the Ray head", 180)
        yield Head(address, token)
    finally:
        _stop(proc, token)
        if old is None:
            os.environ.pop(TOKEN_VAR, None)
        else:
            os.environ[TOKEN_VAR] = old
        shutil.rmtree(temp_dir, ignore_errors=True)
