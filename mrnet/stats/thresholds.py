"""Operating points: Youden's threshold, the counts and rates it gives, and thresholds chosen out of fold.

Like the AUC, computed from probabilities and labels only, so each number can be checked by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_curve
from sklearn.model_selection import StratifiedKFold

from .auc import has_both_classes


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
