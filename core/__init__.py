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
    "BackboneInfo": "backbones", "CURATED": "backbones", "DEFAULT_BACKBONE": "backbones",
    "list_backbones": "backbones", "pretrained_available": "backbones", "weights_cached": "backbones",
    "measure_speed": "backbones",
    "Workspace": "workspace", "DatasetInfo": "workspace", "recommend_strategy": "workspace",
    "evidence_text": "evidence",
    "Dataset": "datasets", "Sample": "datasets", "load_dataset": "datasets",
    "CheckReport": "check", "check_dataset": "check",
    "RunConfig": "config", "Strategy": "config", "STRATEGY_DEFAULTS": "config",
    "score": "metrics", "decide": "metrics", "choose_threshold": "metrics",
    "evaluate_model": "evaluate",
    "ModelSpec": "package", "load_package": "package", "resolve_model_dir": "package",
    "Predictor": "predict", "Prediction": "predict", "list_images": "predict",
    "RunFolder": "runs", "launch_run": "runs", "list_runs": "runs", "new_run_dir": "runs",
    "read_status": "runs", "request_stop": "runs", "ACTIVE_STATES": "runs", "FINAL_STATES": "runs",
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
