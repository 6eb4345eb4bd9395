"""Graft's core: transfer learning for inspection photos. Never imports streamlit.

Pages use only the names in ``__all__``. They are imported on first use (PEP 562), so
``python -m core synth`` or a page that only lists runs doesn't pay for torch and timm.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "GraftError": "errors",
    "BackboneInfo": "catalogue", "CURATED": "catalogue", "DEFAULT_BACKBONE": "catalogue",  # torch-free
    "list_backbones": "catalogue", "pretrained_available": "hub", "weights_cached": "backbones",
    "measure_speed": "backbones",
    "Workspace": "workspace", "DatasetInfo": "workspace", "recommend_strategy": "workspace",
    "evidence_text": "evidence", "recommend_anomaly": "anomaly_choice",
    "Dataset": "datasets", "Sample": "datasets", "load_dataset": "datasets",
    "CheckReport": "check", "check_dataset": "check",
    "RunConfig": "config", "Strategy": "config", "STRATEGY_DEFAULTS": "config",
    "score": "metrics", "decide": "metrics", "choose_threshold": "metrics", "answers": "metrics",
    "Verdict": "verdict", "judge": "verdict", "judge_run": "verdict", "held_out_words": "verdict",
    "Decision": "decision", "Targets": "decision", "read_decision": "decision", "save_decision": "decision",
    "Preprocessing": "preprocess", "model_pixels": "preprocess",
    "fmt_pct": "numbers", "fmt_range": "numbers", "fmt_against": "numbers", "fmt_score": "numbers",
    "evaluate_model": "evaluate",
    "ModelSpec": "package", "load_package": "package", "resolve_model_dir": "modeldir",
    "Predictor": "predict", "Prediction": "predict", "list_images": "predict",
    "RunFolder": "runs", "launch_run": "runs", "list_runs": "runs", "new_run_dir": "runs",
    "read_status": "runs", "request_stop": "runs", "ACTIVE_STATES": "runs", "FINAL_STATES": "runs",
    "ensure_standby": "standby", "ready_standby": "standby",
    "ExecutorSettings": "executors", "executor_settings": "executors", "save_executor_settings": "executors",
    "where_label": "executors", "follow_again": "executors", "check_connection": "executors.connection", "ConnectionReport": "executors.connection",
    "SweepSpec": "sweeps", "run_sweep": "sweeps", "list_sweeps": "sweeps", "sweep_trials": "sweeps",
    "best_trial": "sweeps",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
