"""One multi-task network per plane (--task all), seen by everything downstream as three single-task runs.

The run trains in MODELS/all-<plane>/ (last.pt, best.pt at the best mean AUC, metrics.csv
with an AUC and a loss column per task). Per task it also writes MODELS/<task>-<plane>/best.pt
and <split>_predictions.csv: a "view" that is an ordinary single-task checkpoint (one output,
the head's row for that task, the shared backbone and pooling), plus where it comes from,
saved at that task's best epoch (--view-epochs task) or at the network's (mean).
train_meta, evaluate, predict and the CAMs therefore load it like any other model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .. import layout
from ..checkpoint import save_checkpoint
from ..data.fingerprint import view_fingerprint
from ..errors import MRNetError
from ..models import PlaneModel
from .config import ALL_TASKS, TrainConfig, tasks_of
from .log import write_predictions
from .state import RunState, checkpoint_payload


def task_view(state_dict: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """A multi-task model's weights with the head cut to output `index`: a single-task model's weights."""
    view = dict(state_dict)
    view["classifier.weight"] = state_dict["classifier.weight"][index : index + 1].clone()  # (1, F)
    view["classifier.bias"] = state_dict["classifier.bias"][index : index + 1].clone()  # (1,)
    return view


def save_task_views(
    cfg: TrainConfig, model: PlaneModel, state: RunState, row: dict[str, Any], cases, labels, probs
) -> None:
    """For each task whose view this epoch becomes (`view_<task>`): its <split>_predictions.csv, then best.pt.

    Predictions first, as in save_epoch. A view records the epoch it holds as its best epoch.
    """
    if not any(row.get(f"view_{task}") for task in cfg.tasks):
        return  # no view moves: no copy of the weights
    network = checkpoint_payload(cfg, model, state)  # the run's own fields: epoch, history, data fingerprint, ...
    args = {**network["model_args"], "outputs": 1}
    for index, task in enumerate(cfg.tasks):
        if not row.get(f"view_{task}"):
            continue
        folder = layout.model_dir(cfg.models_dir, task, cfg.plane)
        path = layout.selection_predictions(cfg.models_dir, task, cfg.plane, state.select_split)
        write_predictions(path, cases, labels[:, index], probs[:, index])
        payload: dict[str, Any] = {
            **network,
            "task": task,
            "model_args": args,
            "model": task_view(network["model"], index),
            "data": view_fingerprint(network["data"], task),
            "best_epoch": row["epoch"],
            "best_score": row[f"{state.select_split}_auc_{task}"],
            "best_loss": row[f"{state.select_split}_loss_{task}"],
            "view_of": cfg.name,
            "output_index": index,
        }
        save_checkpoint(payload, folder / layout.BEST)


def mark_views(history: list[dict[str, Any]], tasks: tuple[str, ...], split: str, rule: str) -> None:
    """Set `view_<task>` on the newest row: whether this epoch's network becomes that task's view.

    rule "mean": every view follows the network's best epoch (best mean AUC). rule "task":
    each task's view moves only when that task's AUC improves (an equal AUC with a lower
    loss of that task counts), which is how its single-task run would choose. Recomputed
    from the history, so a resumed run decides as the uninterrupted one did.
    """
    row = history[-1]
    for task in tasks:
        if rule == "mean":
            row[f"view_{task}"] = bool(row["best"])
            continue
        earlier = [view_score(r, task, split) for r in history[:-1]]
        best = max((s for s in earlier if not math.isnan(s[0])), default=(-math.inf, -math.inf))
        current = view_score(row, task, split)
        row[f"view_{task}"] = not math.isnan(current[0]) and current > best


def view_score(row: dict[str, Any], task: str, split: str) -> tuple[float, float]:
    """A task's AUC then minus its loss (higher is better); minus the loss alone where the AUC is undefined."""
    auc, loss = row[f"{split}_auc_{task}"], row[f"{split}_loss_{task}"]
    return (-loss, -loss) if math.isnan(auc) else (auc, -loss)


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
