"""Calibration: whether a predicted probability means what it says.

AUC only ranks exams; a clinician reading "0.14" needs it to mean about 14 in 100 such knees
have the finding. Three measures, all over one split:
- the Brier score, the mean squared difference between probability and label (0 is perfect;
  a model that always predicts the prevalence p scores p(1 - p));
- the expected calibration error (ECE): probabilities cut into equal-width bins, the
  exam-weighted mean gap between each bin's mean probability and its fraction of positives;
- calibration in the large: the mean probability against the observed prevalence.
The reliability diagram (evaluation.report.plot_reliability) plots the bins: a calibrated model lies on the
diagonal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Calibration:
    """One model's calibration on one split."""

    brier: float
    ece: float
    mean_probability: float
    prevalence: float


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    labels, probs = np.asarray(labels, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    return float(np.mean((probs - labels) ** 2)) if len(labels) else math.nan


def reliability_table(labels: np.ndarray, probs: np.ndarray, bins: int = RELIABILITY_BINS) -> pd.DataFrame:
    """Per equal-width probability bin: its edges, exams, mean probability and fraction of positives.

    Bins are [i/bins, (i+1)/bins), the last one closed at 1; empty bins are kept (n = 0, NaN means)
    so tables of several models line up.
    """
    labels, probs = np.asarray(labels, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    index = np.minimum((probs * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        rows.append(
            {
                "bin_low": b / bins,
                "bin_high": (b + 1) / bins,
                "n": n,
                "mean_probability": float(probs[inside].mean()) if n else math.nan,
                "fraction_positive": float(labels[inside].mean()) if n else math.nan,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = RELIABILITY_BINS) -> float:
    table = reliability_table(labels, probs, bins)
    filled = table[table["n"] > 0]
    if filled.empty:
        return math.nan
    gaps = (filled["mean_probability"] - filled["fraction_positive"]).abs()
    return float((gaps * filled["n"]).sum() / filled["n"].sum())


def calibration(labels: np.ndarray, probs: np.ndarray) -> Calibration:
    labels, probs = np.asarray(labels, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    if len(labels) == 0:
        return Calibration(math.nan, math.nan, math.nan, math.nan)
    return Calibration(
        brier=brier_score(labels, probs),
        ece=expected_calibration_error(labels, probs),
        mean_probability=float(probs.mean()),
        prevalence=float(labels.mean()),
    )
