"""The paper's loss: binary cross-entropy with the positive class weighted by negatives / positives."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MRNetError


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: float | torch.Tensor) -> torch.Tensor:
    """Mean BCE over exams with the positive term weighted by negatives/positives."""
    weight = torch.as_tensor(pos_weight, device=logits.device, dtype=logits.dtype)  # no copy when already there
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), pos_weight=weight)


def positive_class_weight(labels: np.ndarray, source: str = "training labels") -> float:
    """BCE `pos_weight` = negatives / positives, as in the paper.

    One weight for the positive term of the loss (not a per-sample or per-column
    weight), so positives and negatives contribute equally in total.
    """
    labels = np.asarray(labels)
    positives = int((labels == 1).sum())
    negatives = int((labels == 0).sum())
    if positives == 0 or negatives == 0:
        raise MRNetError(
            f"{source} hold {positives} positive and {negatives} negative cases; training needs both classes"
        )
    return negatives / positives


def pos_weights(labels: np.ndarray, tasks: tuple[str, ...]) -> float | np.ndarray:
    """One task's pos_weight (labels (n,)), or each task's own (labels (n, tasks)) for a multi-task run."""
    if labels.ndim == 1:
        return positive_class_weight(labels, f"train-{tasks[0]}.csv labels")
    return np.array([positive_class_weight(labels[:, i], f"train-{task}.csv labels") for i, task in enumerate(tasks)])


def task_scales(pos_weight: np.ndarray) -> np.ndarray:
    """Per task, the factor that gives its pos-weighted BCE a total weight of one per exam.

    With pos_weight w = negatives/positives the weights sum to 2 x negatives over the exams,
    so a mostly positive task (abnormal, w 0.28) weighs a quarter of a mostly negative one
    (acl, w 4.3) in a plain sum; (1 + w) / (2w) = exams / (2 x negatives) evens that out.
    """
    weights = np.asarray(pos_weight, dtype=np.float64)
    return (1 + weights) / (2 * weights)


LossWeights = float | np.ndarray | torch.Tensor


def run_loss(
    logits: torch.Tensor, labels: torch.Tensor, pos_weight: LossWeights, weights: LossWeights | None = None
) -> torch.Tensor:
    """The paper's loss for one task; for a multi-task run (logits (k, tasks)) the sum of each task's.

    Summed over tasks, each term being what that task's single-task run minimises, times its
    entry of `weights` (None: a plain sum; `task_scales` for --task-weights balanced). Training
    passes both as tensors already on the device (`device_weights`), so a step copies nothing
    from the host.
    """
    if np.ndim(pos_weight) == 0:
        return weighted_bce(logits, labels, pos_weight if isinstance(pos_weight, torch.Tensor) else float(pos_weight))
    pos = torch.as_tensor(pos_weight, device=logits.device, dtype=logits.dtype)  # (tasks,)
    per_task = F.binary_cross_entropy_with_logits(
        logits, labels.to(logits.dtype), pos_weight=pos, reduction="none"
    ).mean(0)  # (tasks,): each task's mean over exams, as its single-task loss
    if weights is None:
        return per_task.sum()
    return (per_task * torch.as_tensor(weights, device=logits.device, dtype=logits.dtype)).sum()


def device_weights(
    pos_weight: float | np.ndarray, weights: np.ndarray | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """pos_weight and task weights as float32 tensors on the device: made once, not in every step."""

    def place(values: float | np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.float32)).to(device)

    return place(pos_weight), None if weights is None else place(weights)


def task_losses(logits: np.ndarray, labels: np.ndarray, pos_weight: np.ndarray) -> np.ndarray:
    """Each task's own pos-weighted BCE (logits and labels (n, tasks)): what picks that task's view epoch."""
    logits_t, labels_t = torch.from_numpy(np.asarray(logits, dtype=np.float64)), torch.from_numpy(labels).double()
    return np.array([float(weighted_bce(logits_t[:, i], labels_t[:, i], float(w))) for i, w in enumerate(pos_weight)])
