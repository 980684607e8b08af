"""What a trained run recorded about itself, gathered for its bundle and model card.

Read only from the run folder: each best checkpoint's own fields (epochs, the split that
chose them, slice size, model_args, the data fingerprint), the stackers, meta_config.json,
thresholds.csv, and the AUCs with their intervals: evaluate's metrics.csv when the report is
there, else computed here from ensemble_valid_predictions.csv (train_meta's valid figures)
with the same percentile bootstrap evaluate uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import PLANES, layout
from ..checkpoint import load_checkpoint
from ..ensemble.file import SavedEnsemble, load_checked_ensemble
from ..errors import MRNetError
from ..stats.auc import CI_LEVEL, DEFAULT_RESAMPLES, bootstrap_auc, bootstrap_indices
from .weights import split_checkpoint

MODELS = (*PLANES, "ensemble")
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class AucRow:
    """One model's AUC on a split, with its interval and where the figure comes from."""

    task: str
    model: str
    split: str
    n: int
    positives: int
    auc: float
    low: float
    high: float
    scored: str  # "held-out", "out-of-fold" or "in-sample": how the probabilities relate to the model
    source: str  # the file the figure was read or computed from


@dataclass
class RunRecord:
    """A trained run as its files describe it: what a bundle carries and its model card reports."""

    models_dir: Path
    tasks: list[str]
    checkpoints: dict[str, dict[str, Any]]  # "<task>-<plane>" -> the checkpoint (weights under "model")
    ensembles: dict[str, SavedEnsemble]
    meta_config: dict[str, Any]
    aucs: list[AucRow]
    thresholds: pd.DataFrame | None
    files: dict[str, Path] = field(default_factory=dict)  # other run files a bundle carries, by member name

    def plain(self, name: str) -> dict[str, Any]:
        """A checkpoint's fields other than its weights, as JSON-ready types."""
        return split_checkpoint(self.checkpoints[name])[1]


def read_run(models_dir: str | Path, tasks: list[str] | None = None) -> RunRecord:
    """Every task with three plane models and a stacker that was fitted on them; others are left out."""
    models_dir = Path(models_dir)
    ready, _ = layout.ready_tasks(models_dir, tasks or ["abnormal", "acl", "meniscus"])
    ensembles = {task: load_checked_ensemble(models_dir, task) for task in ready}
    checkpoints = {
        layout.model_name(task, plane): load_checkpoint(layout.best_checkpoint(models_dir, task, plane), task, plane)
        for task in ready
        for plane in PLANES
    }
    meta_path = models_dir / layout.META_CONFIG
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    thresholds_path = layout.thresholds_file(models_dir)
    thresholds = pd.read_csv(thresholds_path) if thresholds_path.is_file() else None
    files = {
        name: models_dir / name
        for name in (layout.AUC_TABLE, layout.THRESHOLDS, layout.META_CONFIG, layout.TUNE_CASES)
        if (models_dir / name).is_file()
    }
    chosen_on = {name: str(ckpt.get("select_split", "valid")) for name, ckpt in checkpoints.items()}
    aucs = run_aucs(models_dir, ready, chosen_on)
    return RunRecord(models_dir, ready, checkpoints, ensembles, meta, aucs, thresholds, files)


def run_aucs(models_dir: Path, tasks: list[str], chosen_on: dict[str, str]) -> list[AucRow]:
    """evaluate's figures when its metrics.csv exists, else train_meta's valid predictions with a bootstrap."""
    metrics = layout.report_dir(models_dir) / "metrics.csv"
    if metrics.is_file():
        table = pd.read_csv(metrics, dtype={"task": str, "model": str})
        rows = [
            AucRow(
                r["task"],
                r["model"],
                r["split"],
                int(r["n"]),
                int(r["positives"]),
                float(r["auc"]),
                float(r["auc_ci_low"]),
                float(r["auc_ci_high"]),
                str(r["probabilities"]),
                str(metrics),
            )
            for r in table.to_dict("records")
            if r["task"] in tasks and r["model"] in MODELS
        ]
        if rows:
            return rows
    return computed_aucs(models_dir, tasks, chosen_on)


def computed_aucs(models_dir: Path, tasks: list[str], chosen_on: dict[str, str]) -> list[AucRow]:
    """A plane's valid figure is held-out unless valid chose its epoch; the ensemble's as auc_table.csv says."""
    path = models_dir / layout.ENSEMBLE_PREDICTIONS
    if not path.is_file():
        raise MRNetError(f"{path} not found: the run has no valid-split figures for its model card")
    table = pd.read_csv(path, dtype={"task": str, "case": str})
    auc_table = models_dir / layout.AUC_TABLE
    scored = pd.read_csv(auc_table).set_index("task")["ensemble_scored"] if auc_table.is_file() else None
    rows = []
    for task in tasks:
        part = table[table["task"] == task]
        labels = part["label"].to_numpy()
        indices = bootstrap_indices(len(labels), DEFAULT_RESAMPLES, np.random.default_rng(BOOTSTRAP_SEED))
        for model in MODELS:
            interval = bootstrap_auc(labels, part[model].to_numpy(), indices)
            if model == "ensemble":
                how = str(scored[task]) if scored is not None else "unknown"
            else:
                how = "held-out" if chosen_on[layout.model_name(task, model)] != "valid" else "chose its epoch"
            rows.append(
                AucRow(
                    task,
                    model,
                    "valid",
                    len(labels),
                    int(labels.sum()),
                    interval.auc,
                    interval.low,
                    interval.high,
                    how,
                    f"{layout.ENSEMBLE_PREDICTIONS} ({DEFAULT_RESAMPLES} bootstrap resamples, "
                    f"{CI_LEVEL:.0%} percentile interval)",
                )
            )
    return rows
