"""Waiting for a server the tests started (Streamlit, a Ray head) to answer."""

from __future__ import annotations

import subprocess
import time
import urllib.request

__all__ = ["wait_until_served"]


def wait_until_served(url: str, proc: subprocess.Popen, what: str, timeout: float) -> None:
    """Return once ``url`` answers 200; fail at once if ``proc`` exits, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer in {timeout:.0f} s")
