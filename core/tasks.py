"""Which tasks a run learns, their targets, and how task outputs become one label per photo."""

from __future__ import annotations

import numpy as np
import torch

from .config import RunConfig, Strategy
from .datasets import Dataset
from .errors import GraftError
from .model import Task

__all__ = ["build_tasks", "build_targets", "label_probs", "combine_probs", "DEFECT_TASK", "TYPE_TASK", "DEFECT"]

DEFECT_TASK, TYPE_TASK, DEFECT = "defect", "defect_type", "defect"


def build_tasks(ds: Dataset, config: RunConfig) -> list[Task]:
    """One task for plain classification; for multi-task, ok-vs-defect + defect type + extra columns."""
    classes = tuple(ds.classes)
    good = config.good_class
    if good is not None and good not in classes:
        raise GraftError(f"The good class '{good}' is not in this dataset.", hint=f"Classes: {', '.join(classes)}.")
    if config.strategy != Strategy.MULTI_TASK:
        return [Task("label", classes, good)]
    tasks: list[Task] = []
    if good is not None:
        defects = tuple(c for c in classes if c != good)
        tasks.append(Task(DEFECT_TASK, (good, DEFECT), good))
        if len(defects) > 1:
            tasks.append(Task(TYPE_TASK, defects))
    else:
        tasks.append(Task("label", classes))
    for column in ds.extra_columns:
        values = tuple(ds.values(column))
        if len(values) >= 2:
            tasks.append(Task(column, values))
    if len(tasks) < 2:
        raise GraftError("Multi-task needs a second thing to predict.",
                         hint="Mark the good class (for 'ok vs defect' plus 'defect type'), or add label columns to the CSV.")
    return tasks


def build_targets(ds: Dataset, tasks: list[Task]) -> dict[str, np.ndarray]:
    """Class index per sample and task; -1 where the task doesn't apply (e.g. defect type of an ok part)."""
    out = {}
    for task in tasks:
        index = {c: k for k, c in enumerate(task.classes)}
        out[task.name] = np.array([index.get(_value(s.labels(), task), -1) for s in ds.samples], dtype=np.int64)
    return out


def _value(labels: dict[str, str], task: Task) -> str:
    if task.name == DEFECT_TASK:
        return task.good_class if labels["label"] == task.good_class else DEFECT
    if task.name == TYPE_TASK:
        return labels["label"]
    return labels.get(task.name, "")


def combine_probs(task_probs: dict[str, torch.Tensor], tasks: list[Task], classes: list[str]) -> torch.Tensor:
    """Probability of each dataset class per photo, however the tasks split the question.

    With ok-vs-defect plus defect type, P(class) = P(defect) * P(type = class | defect). Pure
    tensor code with control flow fixed by the task list, so the ONNX export can trace it.
    """
    names = [t.name for t in tasks]
    if "label" in names:
        return task_probs["label"]
    defect = task_probs[DEFECT_TASK]
    good = tasks[names.index(DEFECT_TASK)].good_class
    columns: list[torch.Tensor] = [torch.zeros_like(defect[:, 0])] * len(classes)
    columns[classes.index(good)] = defect[:, 0]
    if TYPE_TASK in names:
        for k, c in enumerate(tasks[names.index(TYPE_TASK)].classes):
            columns[classes.index(c)] = defect[:, 1] * task_probs[TYPE_TASK][:, k]
    else:  # a single defect class
        columns[next(k for k, c in enumerate(classes) if c != good)] = defect[:, 1]
    return torch.stack(columns, 1)


def label_probs(task_probs: dict[str, np.ndarray], tasks: list[Task], classes: list[str]) -> np.ndarray:
    """:func:`combine_probs` for numpy arrays of task probabilities."""
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in task_probs.items()}
    return combine_probs(tensors, tasks, classes).numpy()
