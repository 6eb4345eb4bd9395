"""A tiny job that reports what a cluster node offers: ``python -m core.executors.probe [MARKER TOKEN]``.

It prints one ``probe`` frame (core/executors/frames.py) with the node's Python, whether Graft's
training libraries import, its GPUs, the cluster's CPUs and GPUs, and whether it can read the
marker file the client left in the workspace (then the cluster shares this computer's disk).
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

from .frames import encode

__all__ = ["main", "node_facts"]


def _libraries() -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for name in ("torch", "timm"):
        try:
            facts[name] = __import__(name).__version__
        except Exception:  # missing or broken: reported, not raised
            facts[name] = None
    if facts["torch"]:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        facts["node_gpus"] = [{"name": torch.cuda.get_device_name(i),
                               "capability": list(torch.cuda.get_device_capability(i))} for i in range(n)]
    return facts


def _cluster() -> dict[str, Any]:
    try:
        import ray

        ray.init(log_to_driver=False, logging_level="ERROR")
        total, free = ray.cluster_resources(), ray.available_resources()
        ray.shutdown()
        return {"cpus": total.get("CPU", 0), "gpus": total.get("GPU", 0), "free_cpus": free.get("CPU", 0),
                "free_gpus": free.get("GPU", 0), "nodes": sum(1 for k in total if k.startswith("node:")
                                                               and not k.startswith("node:__internal"))}
    except Exception as exc:  # reported in plain words by the client
        return {"cluster_error": type(exc).__name__}


def node_facts(marker: str | None = None, token: str | None = None) -> dict[str, Any]:
    """What this node offers (see the module docstring)."""
    sees = False
    if marker and token:
        try:
            sees = Path(marker).read_text(encoding="utf-8").strip() == token
        except OSError:
            sees = False
    return {"host": socket.gethostname(), "python": platform.python_version(), "cores": os.cpu_count(),
            "sees_workspace": sees, **_libraries(), **_cluster()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(encode("probe", facts=node_facts(*(args + [None, None])[:2])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
