"""Graft's core: transfer learning for inspection photos. Never imports streamlit.

Pages use only the names in ``__all__``.
"""

__version__ = "0.1.0"

from .backbones import CURATED, DEFAULT_BACKBONE, BackboneInfo, list_backbones, pretrained_available  # noqa: E402
from .check import CheckReport, check_dataset  # noqa: E402
from .config import STRATEGY_DEFAULTS, RunConfig, Strategy  # noqa: E402
from .datasets import Dataset, Sample, load_dataset  # noqa: E402
from .errors import GraftError  # noqa: E402
from .evaluate import choose_threshold, decide, score  # noqa: E402
from .evaluation import evaluate_model  # noqa: E402
from .package import ModelSpec, load_package, resolve_model_dir  # noqa: E402
from .predict import Prediction, Predictor, list_images  # noqa: E402
from .runs import (ACTIVE_STATES, FINAL_STATES, RunFolder, launch_run, list_runs, new_run_dir,  # noqa: E402
                   read_status, request_stop)

__all__ = [
    "__version__", "GraftError",
    "BackboneInfo", "CURATED", "DEFAULT_BACKBONE", "list_backbones", "pretrained_available",
    "Dataset", "Sample", "load_dataset", "CheckReport", "check_dataset",
    "RunConfig", "Strategy", "STRATEGY_DEFAULTS",
    "score", "decide", "choose_threshold", "evaluate_model",
    "ModelSpec", "load_package", "resolve_model_dir", "Predictor", "Prediction", "list_images",
    "RunFolder", "launch_run", "list_runs", "new_run_dir", "read_status", "request_stop",
    "ACTIVE_STATES", "FINAL_STATES",
]
