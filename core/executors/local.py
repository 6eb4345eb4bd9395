"""The ``local`` executor: the run is a process on this computer (the default, unchanged)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..runs import RunFolder, local_live_status, request_stop_file, spawn_cli
from ..standby import hand_over

__all__ = ["LocalExecutor", "THIS_COMPUTER"]

THIS_COMPUTER = "this computer"


class LocalExecutor:
    """Runs ``python -m core train`` here; runs queue on the workspace's file-lock slots (core/queue.py)."""

    name = "local"

    def launch(self, config: RunConfig, *, resume: bool = False) -> RunFolder:
        """Write the config and start the CLI as its own detached process.

        The process has its own session, so closing the tab or restarting the app doesn't end it;
        the app only reads the run folder.
        """
        run = RunFolder(config.out)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(config)
        run.set_status("queued", "Waiting to start.", executor=self.name, where=THIS_COMPUTER)
        args = ["--config", str(run.config_file), "--executor", "local"] + (["--resume"] if resume else [])
        pid = hand_over(config.workspace, args, run.log_file)  # a warm process skips ~7 s of imports
        run.set_status("queued", "Waiting to start.", pid=pid or spawn_cli(["train", *args], run.log_file))
        return run

    def run(self, config: RunConfig, *, resume: bool = False) -> int:
        """Train in this process; 0 when the run ended done or stopped, else 1."""
        from ..pipeline import train_run  # torch: only when training here

        run = RunFolder(config.out)
        run.path.mkdir(parents=True, exist_ok=True)
        processes = int(config.extra.get("processes") or 1)
        if processes > 1:
            from ..ddp import launched_by_torchrun

            if not launched_by_torchrun():  # one run on several GPUs: the same command on each, by torchrun
                return _ddp_run(config, run, processes, resume)
        state = train_run(config, resume=resume)
        return 0 if state in ("done", "stopped") else 1

    def stop(self, run_dir: Path) -> None:
        request_stop_file(run_dir)

    def live_status(self, run_dir: Path, status: dict[str, Any]) -> dict[str, Any]:
        return local_live_status(status)


def _ddp_run(config: RunConfig, run: RunFolder, processes: int, resume: bool) -> int:
    """Train on ``processes`` DDP ranks (core/ddp.py); exit codes as for one process (2: the data's problem)."""
    from ..ddp import relaunch
    from ..errors import GraftError
    from ..runs import read_status

    run.write_config(config)
    code = relaunch(run.config_file, processes, resume=resume)
    status = read_status(run.path)
    if status.get("state") in ("done", "stopped"):
        return 0
    if status.get("state") == "failed" and not (run.path / "error.txt").exists():
        raise GraftError(str(status.get("message", "")))  # a user error, printed as one line (exit 2)
    return code or 1
