"""Calibration: whether a predicted probability means what it says.

AUC only ranks exams; a clinician reading "0.14" needs it to mean about 14 in 100 such knees
have the finding. Three measures, all over one split:
- the Brier score, the mean squared difference between probability and label (0 is perfect;
  a model that always predicts the prevalence p scores p(1 - p));
- the expected calibration error (ECE): probabilities cut into equal-width bins, the
  exam-weighted mean gap between each bin's mean probability and its fraction of positives;
- calibration in the large: the mean probability against the observed prevalence.
The reliability diagram plots the bins: a calibrated model lies on the diagonal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..files import save_figure

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


def plot_reliability(task: str, labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """One figure per task: each model's fraction of positives against its mean probability, per bin."""
    figure = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot([0, 1], [0, 1], color="0.75", linewidth=1, label="perfectly calibrated")
    markers = {"axial": "v", "coronal": "s", "sagittal": "^", "ensemble": "o"}
    for name, probs in scores.items():
        table = reliability_table(labels, probs)
        filled = table[table["n"] > 0]
        width = 2.2 if name == "ensemble" else 1.0
        axes.plot(
            filled["mean_probability"],
            filled["fraction_positive"],
            marker=markers.get(name, "o"),
            linewidth=width,
            label=f"{name} (Brier {brier_score(labels, probs):.3f})",
        )
    axes.set_xlabel(f"mean predicted probability ({RELIABILITY_BINS} equal-width bins)")
    axes.set_ylabel("fraction of positive exams")
    axes.set_title(f"{task}: reliability, n = {len(labels)} ({int(np.sum(labels))} positive)")
    axes.set_xlim(0, 1)
    axes.set_ylim(-0.02, 1.02)
    axes.set_aspect("equal")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
