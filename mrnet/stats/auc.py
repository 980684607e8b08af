"""AUC over a whole split: the point value, a paired bootstrap interval, and the competition's mean AUC.

Computed once over a whole split, from probabilities and labels; nothing here reads
models or data, so every number can be checked on a hand-made example.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from .. import TASKS

DEFAULT_RESAMPLES = 2000
CI_LEVEL = 0.95


def has_both_classes(labels: np.ndarray) -> bool:
    return len(np.unique(labels)) == 2


def auc_or_nan(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC, or NaN where it is undefined (one class only): never a made-up 0.5."""
    labels = np.asarray(labels)
    if not has_both_classes(labels):
        return math.nan
    return float(roc_auc_score(labels, np.asarray(probs)))


@dataclass(frozen=True)
class AucInterval:
    """A point AUC and its percentile bootstrap interval; `used` counts the resamples with both classes."""

    auc: float
    low: float
    high: float
    used: int


def bootstrap_indices(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) exam indices drawn with replacement.

    Drawn once per task and shared by every model of that task, so the intervals of the
    planes and the ensemble come from the same resampled exam sets (a paired bootstrap).
    """
    return rng.integers(0, n, size=(resamples, n))


def auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row-wise ROC AUC of (B, n) labels and scores via the rank-sum identity; NaN for one-class rows.

    AUC = (sum of the positives' ranks - P(P+1)/2) / (P N), with tied scores given their
    average rank, equals sklearn's roc_auc_score; this form handles thousands of resamples
    in one vectorised pass.
    """
    labels = np.atleast_2d(labels).astype(bool)
    scores = np.atleast_2d(scores).astype(np.float64)
    ranks = rankdata(scores, axis=1, method="average")
    positives = labels.sum(axis=1).astype(np.float64)
    negatives = labels.shape[1] - positives
    rank_sum = np.where(labels, ranks, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    auc[(positives == 0) | (negatives == 0)] = np.nan
    return auc


def bootstrap_auc(labels: np.ndarray, scores: np.ndarray, indices: np.ndarray, level: float = CI_LEVEL) -> AucInterval:
    """Point AUC and percentile interval over the resamples in `indices`.

    Resamples that hold a single class have no AUC and are skipped (not counted as 0.5),
    so `used` can be below the number drawn on small or very unbalanced splits.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    point = auc_or_nan(labels, scores)
    if math.isnan(point) or len(indices) == 0:
        return AucInterval(point, math.nan, math.nan, 0)
    resampled = auc_rows(labels[indices], scores[indices])
    valid = resampled[~np.isnan(resampled)]
    if len(valid) == 0:
        return AucInterval(point, math.nan, math.nan, 0)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(valid, [tail, 100 - tail])
    return AucInterval(point, float(low), float(high), len(valid))


def competition_score(
    labels: Mapping[str, np.ndarray], probabilities: np.ndarray, tasks: Sequence[str] = TASKS
) -> float:
    """The MRNet competition's score: the mean over tasks of each column's ROC AUC.

    `probabilities` is (n, len(tasks)) in the order of `tasks`, as in the submission file.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    aucs = [auc_or_nan(labels[task], probabilities[:, i]) for i, task in enumerate(tasks)]
    return float(np.mean(aucs))
