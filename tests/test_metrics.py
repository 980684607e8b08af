"""Class weighting and AUC, checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrnet.errors import MRNetError
from mrnet.stats.auc import auc_or_nan
from mrnet.training.loss import positive_class_weight, weighted_bce


def test_pos_weight_is_negatives_over_positives():
    labels = np.array([1] * 208 + [0] * 922)  # MRNet's ACL train split
    assert positive_class_weight(labels) == pytest.approx(922 / 208)
    assert positive_class_weight(labels) == pytest.approx(4.433, abs=1e-3)


def test_pos_weight_needs_both_classes():
    with pytest.raises(MRNetError, match="both classes"):
        positive_class_weight(np.ones(5))


def test_weighted_bce_matches_hand_computation():
    logits = torch.tensor([0.3, -1.2, 2.0])
    labels = torch.tensor([1.0, 0.0, 1.0])
    w = 3.0
    p = 1 / (1 + np.exp(-logits.numpy().astype(np.float64)))
    by_hand = np.mean([-w * math.log(p[0]), -math.log(1 - p[1]), -w * math.log(p[2])])
    assert float(weighted_bce(logits, labels, w)) == pytest.approx(by_hand, rel=1e-6)


def test_auc_over_all_exams_and_undefined_for_one_class():
    assert auc_or_nan(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert math.isnan(auc_or_nan(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.9])))
