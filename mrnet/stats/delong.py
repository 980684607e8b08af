"""DeLong's test for two correlated ROC curves (two models scored on the same exams).

DeLong E.R., DeLong D.M., Clarke-Pearson D.L. "Comparing the areas under two or more
correlated receiver operating characteristic curves: a nonparametric approach."
Biometrics 44(3), 1988. The AUC is a Mann-Whitney statistic; its variance, and the
covariance between two models' AUCs, follow from each exam's "structural component"
(the share of opposite-class exams it is ranked correctly against, ties counting half).

Computed with the fast midrank algorithm of Sun X., Xu W. "Fast implementation of DeLong's
algorithm for comparing the areas under correlated receiver operating characteristic
curves." IEEE Signal Processing Letters 21(11), 2014: midranks over the positives, the
negatives and both together give every structural component in O(n log n) instead of the
O(m x n) pairwise comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from .auc import CI_LEVEL


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, tied values sharing the mean of their ranks (scipy's rankdata 'average')."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    n = len(ordered)
    # Runs of equal values: [start, end) in sorted order; each shares the mean of ranks start+1 .. end.
    change = np.flatnonzero(np.diff(ordered) != 0) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [n]])
    ranks_sorted = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = ranks_sorted
    return ranks


@dataclass(frozen=True)
class DelongAucs:
    """AUCs of k models on the same exams and the covariance matrix of their estimates."""

    aucs: np.ndarray  # (k,)
    covariance: np.ndarray  # (k, k)


def delong_covariance(labels: np.ndarray, scores: np.ndarray) -> DelongAucs:
    """AUC of each row of `scores` (k, n) against `labels` (n,), and their DeLong covariance.

    With m positives X and n negatives Y, per model (Sun & Xu, Algorithm 1):
      T_x, T_y, T_z = midranks within X, within Y, and over X and Y together;
      V10_i = (T_z,i - T_x,i) / n     the share of negatives positive i outranks (ties 1/2);
      V01_j = 1 - (T_z,m+j - T_y,j) / m   the share of positives that outrank negative j;
      AUC = mean(V10) = mean(V01);  S = cov(V10) / m + cov(V01) / n.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    m, n = int(labels.sum()), int((~labels).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong's AUC covariance needs both classes")
    k = scores.shape[0]
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    for row in range(k):
        positives, negatives = scores[row, labels], scores[row, ~labels]
        t_x, t_y = midranks(positives), midranks(negatives)
        t_z = midranks(np.concatenate([positives, negatives]))
        v10[row] = (t_z[:m] - t_x) / n
        v01[row] = 1.0 - (t_z[m:] - t_y) / m
    aucs = v10.mean(axis=1)
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((k, k))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((k, k))
    return DelongAucs(aucs, s10 / m + s01 / n)


@dataclass(frozen=True)
class DelongTest:
    """AUC of A and B on the same exams, B - A with its interval, and the two-sided p-value of B = A."""

    auc_a: float
    auc_b: float
    difference: float  # auc_b - auc_a
    standard_error: float
    low: float
    high: float
    z: float
    p_value: float


def delong_test(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, level: float = CI_LEVEL) -> DelongTest:
    """DeLong's test of equal AUCs for two models scored on the same exams.

    The difference is asymptotically normal with variance S_aa + S_bb - 2 S_ab; the
    interval is difference +- z_(1-alpha/2) x SE, clipped to [-1, 1] (no AUC difference lies
    outside). p and the interval are NaN where the variance is undefined or says nothing:
    - fewer than 2 exams of a class: the structural components of that class have no sample
      variance (a zero put in its place would make a p-value out of nothing);
    - a zero standard error with a non-zero difference: the estimate cannot carry the
      difference, so no normal-theory p-value or interval exists.
    When both models rank every pair the same way the difference and the variance are zero: p is 1.
    The AUCs and the difference are still given wherever both classes are present.
    """
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return DelongTest(*([math.nan] * 8))
    result = delong_covariance(labels, np.vstack([scores_a, scores_b]))
    auc_a, auc_b = (float(v) for v in result.aucs)
    difference = auc_b - auc_a
    if min_class_count(labels) < 2:
        return DelongTest(auc_a, auc_b, difference, math.nan, math.nan, math.nan, math.nan, math.nan)
    cov = result.covariance
    variance = max(float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]), 0.0)
    se = math.sqrt(variance)
    if se == 0:
        if abs(difference) < 1e-12:
            return DelongTest(auc_a, auc_b, difference, 0.0, 0.0, 0.0, 0.0, 1.0)
        return DelongTest(auc_a, auc_b, difference, 0.0, math.nan, math.nan, math.nan, math.nan)
    half = float(norm.ppf(0.5 + level / 2)) * se
    z = difference / se
    p = float(2 * norm.sf(abs(z)))
    low, high = max(difference - half, -1.0), min(difference + half, 1.0)
    return DelongTest(auc_a, auc_b, difference, se, low, high, z, p)


def min_class_count(labels: np.ndarray) -> int:
    """Exams in the smaller class (0 when one is absent)."""
    labels = np.asarray(labels).astype(bool)
    return int(min(labels.sum(), (~labels).sum()))
