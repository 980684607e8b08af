"""Calibration measures on hand examples and on probabilities calibrated by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mrnet.evaluation.report import plot_reliability
from mrnet.stats.calibration import brier_score, calibration, expected_calibration_error, reliability_table


def test_brier_score_by_hand():
    labels = np.array([1, 0, 1, 0])
    probs = np.array([0.9, 0.2, 0.4, 0.0])
    # (0.1^2 + 0.2^2 + 0.6^2 + 0) / 4 = (0.01 + 0.04 + 0.36) / 4
    assert brier_score(labels, probs) == pytest.approx(0.41 / 4)
    assert brier_score(labels, labels.astype(float)) == 0.0
    prevalence = labels.mean()
    assert brier_score(labels, np.full(4, prevalence)) == pytest.approx(prevalence * (1 - prevalence))


def test_reliability_bins_and_ece_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([0.05, 0.15, 0.12, 0.95, 1.0])  # 1.0 falls in the last bin, not an eleventh
    table = reliability_table(labels, probs)
    assert len(table) == 10 and table["n"].sum() == 5
    assert table.loc[0, "n"] == 1 and table.loc[1, "n"] == 2 and table.loc[9, "n"] == 2
    assert table.loc[1, "mean_probability"] == pytest.approx(0.135)
    assert table.loc[1, "fraction_positive"] == pytest.approx(0.5)
    assert math.isnan(table.loc[5, "mean_probability"])
    # gaps: bin 0 |0.05 - 0| x 1, bin 1 |0.135 - 0.5| x 2, bin 9 |0.975 - 1| x 2; over 5 exams
    expected = (0.05 + 2 * 0.365 + 2 * 0.025) / 5
    assert expected_calibration_error(labels, probs) == pytest.approx(expected)


def test_calibrated_probabilities_score_low_and_overconfident_ones_high():
    rng = np.random.default_rng(0)
    probs = rng.random(20000)
    labels = (rng.random(20000) < probs).astype(int)  # each exam positive with its own probability
    assert expected_calibration_error(labels, probs) < 0.02
    overconfident = np.where(probs > 0.5, 0.99, 0.01)
    assert expected_calibration_error(labels, overconfident) > 0.2
    summary = calibration(labels, probs)
    assert summary.mean_probability == pytest.approx(summary.prevalence, abs=0.01)


def test_reliability_diagram_is_written(tmp_path):
    labels = np.array([0, 1, 0, 1, 1, 0])
    probs = {"sagittal": np.linspace(0.1, 0.9, 6), "ensemble": np.array([0.2, 0.8, 0.3, 0.7, 0.9, 0.1])}
    path = plot_reliability("acl", labels, probs, tmp_path / "calibration-acl.png")
    assert path.stat().st_size > 0
