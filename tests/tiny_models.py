"""Tiny trained models for the evaluation, prediction and heatmap tests, trained once per test session.

Real training through the sweep command (nine plane models, then the ensembles) on a
small synthetic dataset: the later commands are then checked against what training wrote.
"""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from pathlib import Path

from mrnet.cli.train_all import main as train_all
from mrnet.synthetic import make_dataset

SIZE = 64


@dataclass(frozen=True)
class TinyRun:
    data_dir: Path
    models_dir: Path


@functools.cache
def trained_models(base: Path) -> TinyRun:
    """Synthetic data (12 train / 10 valid exams, 64 px, 2-4 slices) and nine 1-epoch models with ensembles.

    Cached per base folder, so test files of one session share a single training run.
    """
    data_dir, models_dir = base / "tiny-data", base / "tiny-models"
    make_dataset(data_dir, n_train=12, n_valid=10, size=SIZE, seed=0, slices=(2, 4), overwrite=True)
    with contextlib.redirect_stdout(io.StringIO()):
        train_all(
            [
                "--data-dir",
                str(data_dir),
                "--output-dir",
                str(models_dir),
                "--no-pretrained",
                "--epochs",
                "1",
                "--lr",
                "1e-4",
                "--weight-decay",
                "1e-4",
                "--patience",
                "0",
                "--no-augment",
                "--exams-per-step",
                "4",
                "--seed",
                "0",
            ]
        )
    return TinyRun(data_dir, models_dir)
