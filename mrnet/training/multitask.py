"""One multi-task network per plane (--task all), seen by everything downstream as three single-task runs.

The run trains in MODELS/all-<plane>/ (last.pt, best.pt, metrics.csv with an AUC column per
task). At each best epoch it also writes, per task, MODELS/<task>-<plane>/best.pt and
<split>_predictions.csv: a "view" that is an ordinary single-task checkpoint (one output,
the head's row for that task, the shared backbone and pooling), plus where it comes from.
train_meta, evaluate, predict and the CAMs therefore load it like any other model.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from .. import layout
from ..checkpoint import save_checkpoint
from ..errors import MRNetError
from .config import ALL_TASKS, TrainConfig, tasks_of
from .log import write_predictions
from .state import RunState


def task_view(state_dict: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """A multi-task model's weights with the head cut to output `index`: a single-task model's weights."""
    view = dict(state_dict)
    view["classifier.weight"] = state_dict["classifier.weight"][index : index + 1].clone()  # (1, F)
    view["classifier.bias"] = state_dict["classifier.bias"][index : index + 1].clone()  # (1,)
    return view


def save_task_views(cfg: TrainConfig, model: torch.nn.Module, state: RunState, cases, labels, probs) -> None:
    """Per task: the selecting split's <split>_predictions.csv, then best.pt holding the view.

    Predictions first, as in save_epoch.
    """
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    args = {**model.model_args(), "outputs": 1}
    for index, task in enumerate(cfg.tasks):
        folder = layout.model_dir(cfg.models_dir, task, cfg.plane)
        path = layout.selection_predictions(cfg.models_dir, task, cfg.plane, state.select_split)
        write_predictions(path, cases, labels[:, index], probs[:, index])
        payload: dict[str, Any] = {
            "task": task,
            "plane": cfg.plane,
            "image_size": state.image_size,
            "model_args": args,
            "model": task_view(weights, index),
            "config": asdict(cfg),
            "view_of": cfg.name,
            "output_index": index,
            "epoch": state.epoch,
            "best_epoch": state.best_epoch,
            "best_score": state.best_score,
            "best_loss": state.best_loss,
            "select_split": state.select_split,
            "monitor": state.monitor,
            "finished": state.finished,
        }
        save_checkpoint(payload, folder / layout.BEST)


def per_task_aucs(
    labels: np.ndarray, probs: np.ndarray, tasks: tuple[str, ...], auc, split: str = "valid"
) -> dict[str, float]:
    """`<split>_auc_<task>` for each column, and `<split>_auc`: their mean, on which the best epoch is chosen."""
    aucs = {f"{split}_auc_{task}": auc(labels[:, i], probs[:, i]) for i, task in enumerate(tasks)}
    return {f"{split}_auc": float(np.mean(list(aucs.values()))), **aucs}


def check_not_mixed(cfg: TrainConfig) -> None:
    """Refuse a plane that would hold both single-task runs and a multi-task run's views.

    The views take the single-task runs' file names; mixing the two in one models folder
    would silently replace one kind with the other.
    """
    if cfg.task == ALL_TASKS:
        others = [layout.model_dir(cfg.models_dir, t, cfg.plane) for t in tasks_of(ALL_TASKS)]
        clash = [d for d in others if (d / layout.LAST).exists()]
        kind = "single-task runs"
    else:
        clash = [layout.model_dir(cfg.models_dir, ALL_TASKS, cfg.plane)]
        clash = [d for d in clash if (d / layout.LAST).exists()]
        kind = "a multi-task run (--task all)"
    if clash:
        raise MRNetError(
            f"{cfg.name}: {cfg.models_dir} already holds {kind} for the {cfg.plane} plane "
            f"({', '.join(str(d) for d in clash)}); single-task and multi-task models of one plane cannot share "
            "a models folder: use another --models-dir or delete those folders"
        )
