"""DeLong's test: midranks, hand-computed AUC variances and covariances, and agreement with a paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score

from mrnet.evaluation.compare import paired_bootstrap
from mrnet.stats.auc import bootstrap_indices
from mrnet.stats.delong import delong_covariance, delong_test, midranks


def structural_components(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's V10 and V01 by their definition: every positive-negative pair, ties counting 1/2 (O(m n))."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    psi = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def pairwise_covariance(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    parts = [structural_components(labels, s) for s in scores]
    v10, v01 = np.array([p[0] for p in parts]), np.array([p[1] for p in parts])
    return np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]


def test_midranks_share_the_mean_rank_of_ties():
    assert midranks(np.array([0.3, 0.6, 0.6, 0.9])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert midranks(np.array([2.0, 2.0, 2.0])).tolist() == [2.0, 2.0, 2.0]
    values = np.round(np.random.default_rng(0).random(40), 1)
    assert np.array_equal(midranks(values), rankdata(values))


def test_two_positives_two_negatives_with_a_tie_by_hand():
    # A: positives 0.9, 0.6; negatives 0.6, 0.3. Pairs: 1, 1, 1/2 (the tie), 1 -> AUC 3.5/4.
    # V10 = (1, 0.75), V01 = (0.75, 1): each has variance 0.03125, so Var(AUC) = 0.03125/2 + 0.03125/2.
    # B: positives 0.4, 0.8; negatives 0.5, 0.2. Pairs: 0, 1, 1, 1 -> AUC 0.75;
    # V10 = (0.5, 1), V01 = (0.5, 1): Var(AUC) = 0.125/2 + 0.125/2 = 0.125.
    # Cov: V10 -> (0.125)(-0.25) + (-0.125)(0.25) = -0.0625; V01 -> +0.0625; S_AB = -0.0625/2 + 0.0625/2 = 0.
    labels = np.array([1, 1, 0, 0])
    a = np.array([0.9, 0.6, 0.6, 0.3])
    b = np.array([0.4, 0.8, 0.5, 0.2])
    result = delong_covariance(labels, np.vstack([a, b]))
    assert result.aucs.tolist() == pytest.approx([0.875, 0.75])
    assert result.covariance == pytest.approx(np.array([[0.03125, 0.0], [0.0, 0.125]]))

    test = delong_test(labels, a, b)
    assert test.difference == pytest.approx(-0.125)
    assert test.standard_error == pytest.approx(math.sqrt(0.15625))
    assert test.z == pytest.approx(-0.125 / math.sqrt(0.15625))
    assert test.p_value == pytest.approx(2 * norm.sf(0.125 / math.sqrt(0.15625)))
    assert test.p_value == pytest.approx(0.7518, abs=1e-4)
    half = 1.959964 * math.sqrt(0.15625)
    assert (test.low, test.high) == pytest.approx((-0.125 - half, -0.125 + half), abs=1e-6)


def test_three_positives_and_negatives_with_ties_against_the_pairwise_definition():
    labels = np.array([1, 0, 1, 0, 1, 0])
    scores = np.array([[0.8, 0.8, 0.5, 0.2, 0.5, 0.5], [0.7, 0.1, 0.7, 0.7, 0.3, 0.2]])
    # Model 0: positives 0.8, 0.5, 0.5 against negatives 0.8, 0.2, 0.5:
    # 0.8 -> 1/2 + 1 + 1 = 2.5; each 0.5 -> 0 + 1 + 1/2 = 1.5; AUC = 5.5 / 9.
    result = delong_covariance(labels, scores)
    assert result.aucs[0] == pytest.approx(5.5 / 9.0)
    assert result.aucs.tolist() == pytest.approx([roc_auc_score(labels, s) for s in scores])
    assert result.covariance == pytest.approx(pairwise_covariance(labels, scores))


def test_fast_algorithm_equals_the_pairwise_definition_on_random_tied_scores():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    scores = np.round(np.vstack([labels + rng.normal(0, 1, 60), labels + rng.normal(0, 0.7, 60)]), 1)
    result = delong_covariance(labels, scores)
    assert result.covariance == pytest.approx(pairwise_covariance(labels, scores))
    assert result.aucs.tolist() == pytest.approx([roc_auc_score(labels, s) for s in scores])


def test_same_scores_give_no_difference_and_p_one():
    labels = np.array([0, 1, 0, 1, 1])
    scores = np.array([0.2, 0.7, 0.4, 0.6, 0.3])
    test = delong_test(labels, scores, scores)
    assert (test.difference, test.standard_error, test.p_value) == (0.0, 0.0, 1.0)
    assert math.isnan(delong_test(np.ones(4), scores[:4], scores[:4]).p_value)


def test_agrees_with_a_paired_bootstrap_within_sampling_error():
    """On 300 exams the two estimates of the difference's spread and the p-values agree within sampling error."""
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 300)
    shared = rng.normal(0, 1, 300)  # the two models share part of their errors: correlated ROC curves
    a = labels * 1.0 + shared + rng.normal(0, 0.8, 300)
    b = labels * 1.3 + shared + rng.normal(0, 0.8, 300)
    test = delong_test(labels, a, b)
    boot = paired_bootstrap(labels, a, b, bootstrap_indices(300, 4000, np.random.default_rng(0)))
    assert boot.difference == pytest.approx(test.difference)
    # The bootstrap's SE has a Monte-Carlo error of about 1/sqrt(2 x 4000) = 1 %; both are estimates at n = 300.
    assert boot.standard_error == pytest.approx(test.standard_error, rel=0.12)
    assert abs(boot.p_value - test.p_value) < 0.05
    assert boot.low < test.difference < boot.high


def test_one_exam_in_a_class_leaves_the_variance_undefined():
    # One positive: its structural component has no sample variance; p is NaN, not the 0.317 a zero would give.
    labels = np.array([1, 0, 0, 0, 0])
    a = np.array([0.9, 0.1, 0.2, 0.3, 0.95])
    b = np.array([0.9, 0.1, 0.2, 0.3, 0.4])
    test = delong_test(labels, a, b)
    assert test.difference == pytest.approx(0.25)
    assert all(math.isnan(v) for v in (test.standard_error, test.low, test.high, test.z, test.p_value))
    assert math.isnan(delong_test(1 - labels, a, b).p_value)  # one negative


def test_zero_standard_error_with_a_difference_has_no_p_value_or_interval():
    # Two positives, two negatives: A ranks every pair right, B every pair wrong; no structural component varies.
    labels = np.array([1, 1, 0, 0])
    a = np.array([0.9, 0.8, 0.2, 0.1])
    b = np.array([0.1, 0.2, 0.8, 0.9])
    test = delong_test(labels, a, b)
    assert test.difference == pytest.approx(-1.0) and test.standard_error == 0.0
    assert math.isnan(test.p_value) and math.isnan(test.low) and math.isnan(test.high)


def test_intervals_are_clipped_to_the_possible_differences():
    labels = np.array([1, 1, 1, 0, 0, 0])
    a = np.array([0.1, 0.2, 0.6, 0.7, 0.5, 0.9])
    b = np.array([0.9, 0.8, 0.4, 0.1, 0.3, 0.2])
    test = delong_test(labels, a, b)
    assert test.p_value < 0.05
    assert -1.0 <= test.low <= test.difference <= test.high <= 1.0
    assert test.high == 1.0  # difference + 1.96 SE would pass 1
