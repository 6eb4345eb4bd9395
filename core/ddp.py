"""One run on several processes of one machine: torch DDP under ``torchrun`` (one process per GPU).

``torchrun --standalone --nproc-per-node N -m core train ...`` starts N copies of the usual command;
torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, and :func:`setup` joins them into one
process group (NCCL on CUDA, gloo on CPU). Every rank runs the same pipeline on the same data:

* training batches are split across ranks (each takes every N-th photo of the same global batch),
  the model is wrapped in ``DistributedDataParallel`` while it has trainable weights, and gradients
  are averaged, so N ranks train like one process with the same batch size;
* the feature pass is split in N blocks and gathered (:func:`gather_rows`);
* the linear probe (scikit-learn) runs on rank 0 and its heads are broadcast (:func:`broadcast_module`);
* a stop (the ``stop`` file, which rank 0 watches, or SIGTERM on any rank) and a loss blow-up are
  agreed by every rank after each batch (:func:`any_rank`);
* only rank 0 writes the run folder; the other ranks see it through a :class:`QuietRunFolder`, wait
  for rank 0 to leave the queue (:func:`wait_for_main`) and end when rank 0 has ended (:func:`follow_main`).

Without torchrun the world is one process and every helper here is a no-op.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .jsonio import read_json
from .runs import FINAL_STATES, RunFolder

__all__ = ["World", "world", "setup", "teardown", "any_rank", "sum_all", "barrier", "main_first",
           "broadcast_module", "shard_bounds", "gather_rows", "wrap", "unwrap", "QuietRunFolder",
           "wait_for_main", "follow_main", "linger", "launched_by_torchrun", "check_processes", "relaunch"]

TIMEOUT_S = float(os.environ.get("GRAFT_DDP_TIMEOUT_S", "1800"))  # one collective may wait this long (rank 0 decoding)
FOLLOW_GRACE_S = 10.0  # a rank still busy this long after rank 0 ended is stuck in a collective: it ends too


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run (``size`` 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def _launched() -> World:
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def world() -> World:
    """The current world: the initialised process group's, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def setup() -> World:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); a no-op for one process."""
    launched = _launched()
    if not launched.active or not dist.is_available() or dist.is_initialized():
        return world()
    cuda = torch.cuda.is_available() and os.environ.get("GRAFT_DEVICE", "auto") in ("auto", "cuda")
    if cuda:
        torch.cuda.set_device(launched.local_rank)  # "cuda" now means this rank's GPU
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=TIMEOUT_S))
    return world()


def teardown() -> None:
    """Leave the process group (at the end of a run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any of them (stop requests, a diverged loss)."""
    if not world().active:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sum_all(*values: float) -> list[float]:
    """Each value summed over the ranks (e.g. an epoch's loss sum, correct answers, photos seen)."""
    if not world().active:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def barrier() -> None:
    """Wait until every rank is here."""
    if world().active:
        any_rank(False)  # an all-reduce: unlike dist.barrier it needs no device guess under NCCL


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. decodes the photos into the shared cache); the others after it."""
    w = world()
    if w.active and not w.is_main:
        barrier()
    yield
    if w.active and w.is_main:
        barrier()


@torch.no_grad()
def broadcast_module(module: nn.Module) -> None:
    """Rank 0's parameters and buffers of ``module`` on every rank (e.g. heads set by the probe)."""
    if not world().active:
        return
    device = _comm_device()
    for tensor in [*module.parameters(), *module.buffers()]:
        buf = tensor.data.to(device)
        dist.broadcast(buf, src=0)
        tensor.data.copy_(buf)


def shard_bounds(n: int, w: World | None = None) -> list[tuple[int, int]]:
    """Contiguous blocks of ``n`` rows, one per rank (the first ones a row longer when n doesn't divide)."""
    w = w or world()
    edges = np.cumsum([0] + [len(part) for part in np.array_split(np.arange(n), w.size)])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def gather_rows(part: torch.Tensor, n: int) -> torch.Tensor:
    """Every rank's block of rows (see :func:`shard_bounds`), concatenated in rank order, on every rank."""
    w = world()
    if not w.active:
        return part
    bounds = shard_bounds(n, w)
    longest = max(b - a for a, b in bounds)
    device = _comm_device()
    padded = torch.zeros((longest, *part.shape[1:]), dtype=part.dtype, device=device)
    padded[:len(part)] = part.to(device)
    pieces = [torch.empty_like(padded) for _ in range(w.size)]
    dist.all_gather(pieces, padded)
    return torch.cat([p[:b - a] for p, (a, b) in zip(pieces, bounds)]).cpu()


def wrap(model: nn.Module, multi_task: bool = False) -> nn.Module:
    """``model`` in DistributedDataParallel while it has trainable weights, else ``model`` itself.

    DDP leaves frozen weights (``requires_grad`` off) out of its gradient averaging, so a wrapper made
    for the current trainable set needs no ``find_unused_parameters`` for a frozen trunk; call this
    again when the set changes (progressive unfreezing). It is on with several heads: a batch without
    a task's labels gives that head no gradient on that rank.
    """
    if not world().active:
        return model
    params = list(model.parameters())
    if not any(p.requires_grad for p in params):
        return model
    gc.collect()  # an earlier wrapper's gradient hooks go with it before the new one hooks in
    device_ids = [torch.cuda.current_device()] if dist.get_backend() == "nccl" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=multi_task)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class QuietRunFolder(RunFolder):
    """The run folder as a rank other than 0 sees it: readable (config, checkpoint), never written.

    It doesn't watch the ``stop`` file either: rank 0 does, and every rank follows its decision.
    """

    def write_config(self, config: Any) -> None:
        pass

    def set_status(self, state: str, message: str = "", **extra: Any) -> None:
        pass

    def heartbeat(self) -> None:
        pass

    def emit(self, event: str, **data: Any) -> None:
        pass

    def stop_requested(self) -> bool:
        return False


def _started() -> float:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # psutil missing: the time this module was first asked
        return _IMPORTED


_IMPORTED = time.time()


def _main_state(run_path: Path, since: float) -> str:
    """Rank 0's state in this launch ("" while it hasn't written one since ``since``)."""
    status = read_json(Path(run_path) / "status.json", {}) or {}
    if not isinstance(status, dict):
        return ""
    fresh = float(status.get("heartbeat", 0)) >= since or float(status.get("updated", 0)) >= since
    return str(status.get("state", "")) if fresh else ""


def wait_for_main(run_path: str | Path, poll_s: float = 0.5) -> bool:
    """On a rank other than 0: wait until rank 0 has its training slot; False when it ended before that."""
    since = _started() - 2.0
    while True:
        state = _main_state(Path(run_path), since)
        if state == "running":
            return True
        if state in FINAL_STATES:
            return False
        time.sleep(poll_s)


def follow_main(run_path: str | Path, poll_s: float = 1.0) -> threading.Event:
    """On a rank other than 0: end this process soon after rank 0 has ended its run; set the event returned
    once this rank's own part of the run is over.

    Rank 0 can end on its own (a stop or an error while decoding, say) while the others wait in a
    collective that would only time out after :data:`TIMEOUT_S`; they follow it out instead.
    """
    since, done = _started() - 2.0, threading.Event()

    def watch() -> None:
        while not done.wait(poll_s):
            state = _main_state(Path(run_path), since)
            if state in FINAL_STATES and not done.wait(FOLLOW_GRACE_S):
                os._exit(0 if state in ("done", "stopped") else 1)

    threading.Thread(target=watch, daemon=True, name="graft-follow-rank0").start()
    return done


def linger(run_path: str | Path, timeout_s: float = 60.0, poll_s: float = 0.5) -> None:
    """On a rank other than 0 that failed: give rank 0 time to record how the run ended.

    torchrun stops every rank as soon as one fails, so a rank that hits the data's error first
    would otherwise cut rank 0 short before it writes ``status.json``.
    """
    since, end = _started() - 2.0, time.monotonic() + timeout_s
    while time.monotonic() < end and _main_state(Path(run_path), since) not in FINAL_STATES:
        time.sleep(poll_s)


def launched_by_torchrun() -> bool:
    """Whether this process is one rank of a torchrun launch."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def check_processes(processes: int) -> None:
    """Raise a plain error when ``processes`` can't work on this computer (more than its GPUs)."""
    from .errors import GraftError

    if processes < 1:
        raise GraftError("Processes must be at least 1.")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and processes > gpus and os.environ.get("GRAFT_DEVICE", "auto") in ("auto", "cuda"):
        raise GraftError(f"This computer has {gpus} GPU(s), so a run can use at most {gpus} processes.",
                         hint=f"Train with --processes {gpus}.")


def relaunch(config_file: str | Path, processes: int, resume: bool = False) -> int:
    """Run ``python -m core train --config CONFIG`` on ``processes`` DDP ranks through torchrun; its exit code.

    torchrun (``torch.distributed.run``, part of torch) starts the ranks on this computer
    (``--standalone``: a free port, nothing to set up) and ends them all when one fails. A SIGTERM
    to this process is passed on to torchrun, which passes it on to every rank.
    """
    import signal
    import subprocess
    import sys

    check_processes(processes)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           "-m", "core", "train", "--config", str(config_file), "--executor", "local"]
    cmd += ["--resume"] if resume else []
    proc = subprocess.Popen(cmd, env={**os.environ, "GRAFT_DDP_PARENT": "1"})  # the ranks leave reporting to us

    def forward(signum: int, frame: object) -> None:
        proc.send_signal(signum)

    try:
        previous = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread
        previous = None
    try:
        return proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
