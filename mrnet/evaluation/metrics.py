"""Metrics over whole splits: AUC (with a bootstrap interval), operating points, the competition score.

Computed once over a whole split, from probabilities and labels; nothing here reads
models or data, so every number can be checked on a hand-made example.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold

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


@dataclass(frozen=True)
class OperatingPoint:
    """Counts and rates of the rule `positive if probability >= threshold`."""

    threshold: float
    sensitivity: float
    specificity: float
    accuracy: float
    true_positives: int
    false_negatives: int
    true_negatives: int
    false_positives: int


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


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold maximising Youden's J = sensitivity + specificity - 1.

    Candidates are the observed scores (rule: positive if score >= threshold); the
    ever-negative candidate above the top score is left out so the result is a usable
    probability. Ties in J go to the highest threshold, i.e. the fewest positive calls.
    NaN when the labels hold one class, where J is undefined.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if not has_both_classes(labels):
        return math.nan
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    finite = np.isfinite(thresholds) & (thresholds <= scores.max())
    j = np.where(finite, tpr - fpr, -np.inf)
    return float(thresholds[int(np.argmax(j))])


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> OperatingPoint:
    """Sensitivity, specificity and accuracy of `score >= threshold`; NaN where a class is absent."""
    if math.isnan(threshold):
        return OperatingPoint(math.nan, math.nan, math.nan, math.nan, 0, 0, 0, 0)
    return point_from_calls(labels, np.asarray(scores, dtype=np.float64) >= threshold, threshold)


def fold_count(labels: np.ndarray, folds: int) -> int:
    """Stratified folds possible: at most `folds`, at most the smaller class's count; 0 when that is under 2."""
    smallest = int(np.bincount(np.asarray(labels, dtype=int), minlength=2).min())
    return min(folds, smallest) if smallest >= 2 else 0


def cross_validated_operating_point(labels: np.ndarray, scores: np.ndarray, folds: int, seed: int) -> OperatingPoint:
    """The operating point when each exam is called with a Youden threshold chosen on the other folds.

    For a split that must also supply the threshold (no tuning split): no exam is judged by a
    threshold it helped choose, so sensitivity and specificity are not biased by the choice.
    The threshold differs per fold and is reported as NaN. NaN throughout with < 2 exams of a class.
    """
    labels, scores = np.asarray(labels).astype(int), np.asarray(scores, dtype=np.float64)
    n_folds = fold_count(labels, folds)
    if n_folds == 0:
        return OperatingPoint(math.nan, math.nan, math.nan, math.nan, 0, 0, 0, 0)
    called = np.zeros(len(labels), dtype=bool)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fit_idx, score_idx in splitter.split(scores.reshape(-1, 1), labels):
        called[score_idx] = scores[score_idx] >= youden_threshold(labels[fit_idx], scores[fit_idx])
    return point_from_calls(labels, called, math.nan)


def point_from_calls(labels: np.ndarray, called: np.ndarray, threshold: float) -> OperatingPoint:
    """Counts and rates of positive calls `called` (bool) against `labels`."""
    labels = np.asarray(labels).astype(int)
    tp = int(np.sum(called & (labels == 1)))
    fn = int(np.sum(~called & (labels == 1)))
    tn = int(np.sum(~called & (labels == 0)))
    fp = int(np.sum(called & (labels == 0)))
    return OperatingPoint(
        threshold=float(threshold),
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        accuracy=_ratio(tp + tn, len(labels)),
        true_positives=tp,
        false_negatives=fn,
        true_negatives=tn,
        false_positives=fp,
    )


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def competition_score(
    labels: Mapping[str, np.ndarray], probabilities: np.ndarray, tasks: Sequence[str] = TASKS
) -> float:
    """The MRNet competition's score: the mean over tasks of each column's ROC AUC.

    `probabilities` is (n, len(tasks)) in the order of `tasks`, as in the submission file.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    aucs = [auc_or_nan(labels[task], probabilities[:, i]) for i, task in enumerate(tasks)]
    return float(np.mean(aucs))
