"""Per-epoch checkpoints, so a killed run can resume where it was (weights-only files, no pickle of objects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import GraftError
from .jsonio import read_json, write_json_atomic

__all__ = ["Checkpointer", "has_checkpoint", "restore_checkpoint"]


def _dir(run_path: Path) -> Path:
    return run_path / "checkpoint"


def has_checkpoint(run_path: str | Path) -> bool:
    return (_dir(Path(run_path)) / "state.json").is_file()


def _save_tensors(state: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(path)


class Checkpointer:
    """Callback: after each epoch, save weights, best weights, optimizer and loop state.

    ``state.json`` is written last, so it only ever names a complete checkpoint.
    """

    def __init__(self, run_path: Path) -> None:
        self.dir = _dir(run_path)

    def on_epoch_end(self, t: Any, record: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _save_tensors(t.model.state_dict(), self.dir / "last.safetensors")
        if t.best_state is not None:
            _save_tensors(t.best_state, self.dir / "best.safetensors")
        tmp = self.dir / ".optimizer.pt.tmp"
        torch.save(t.optimizer.state_dict(), tmp)  # tensors, numbers and lists only: loads with weights_only
        tmp.replace(self.dir / "optimizer.pt")
        write_json_atomic(self.dir / "state.json", t.loop_state())


def restore_checkpoint(run_path: str | Path, trainer: Any) -> int:
    """Load a run's last checkpoint into ``trainer``; returns the epoch to continue from."""
    d = _dir(Path(run_path))
    state = read_json(d / "state.json")
    if not isinstance(state, dict):
        raise GraftError("This run has no checkpoint to resume from.", hint="Start it again instead.")
    trainer.model.load_state_dict(load_file(str(d / "last.safetensors")))
    if (d / "best.safetensors").is_file():
        trainer.best_state = load_file(str(d / "best.safetensors"))
    try:
        trainer.optimizer.load_state_dict(torch.load(d / "optimizer.pt", map_location="cpu", weights_only=True))
    except Exception:  # a damaged optimizer file only costs the optimizer's momentum
        pass
    return trainer.load_loop_state(state)
