"""Metrics computed once over whole splits (never per batch or as running averages)."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from .errors import MRNetError


def has_both_classes(labels: np.ndarray) -> bool:
    return len(np.unique(labels)) == 2


def auc_or_nan(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC, or NaN where it is undefined (one class only): never a made-up 0.5."""
    labels = np.asarray(labels)
    if not has_both_classes(labels):
        return math.nan
    return float(roc_auc_score(labels, np.asarray(probs)))


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
