"""The paper's loss: binary cross-entropy with the positive class weighted by negatives / positives."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MRNetError


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Mean BCE over exams with the positive term weighted by negatives/positives."""
    weight = torch.tensor(pos_weight, device=logits.device, dtype=logits.dtype)
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
