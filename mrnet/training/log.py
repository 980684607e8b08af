"""What a run shows and leaves behind each epoch: one summary line, TensorBoard scalars, metrics.csv."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import layout
from ..files import atomic_write
from .config import TrainConfig

METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "val_auc", "lr", "best")


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewritten whole each epoch from the saved history, so a resumed run leaves no stray row."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            per_task = [k for k in (history[0] if history else {}) if k.startswith("val_auc_")]
            writer = csv.DictWriter(handle, fieldnames=[*METRIC_COLUMNS, *per_task], extrasaction="ignore")
            writer.writeheader()
            for row in history:
                writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})

    atomic_write(path, write)


def write_predictions(path: Path, cases: Sequence[str], labels: np.ndarray, probs: np.ndarray) -> None:
    table = pd.DataFrame({"case": list(cases), "label": labels.astype(int), "prob": probs})
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.8f"))


def open_tensorboard(cfg: TrainConfig, start_epoch: int):
    """tensorboardX writer; purge_step drops events a killed run logged past its checkpoint."""
    from tensorboardX import SummaryWriter

    logdir = layout.tensorboard_dir(cfg.models_dir, cfg.task, cfg.plane)
    return SummaryWriter(logdir=str(logdir), purge_step=start_epoch + 1 if start_epoch else None)


def log_epoch(cfg: TrainConfig, row: dict[str, Any], seconds: float, writer) -> None:
    marker = "  *best*" if row["best"] else ""
    per_task = {k: v for k, v in row.items() if k.startswith("val_auc_")}
    detail = " (" + " ".join(f"{k[8:]} {v:.4f}" for k, v in per_task.items()) + ")" if per_task else ""
    print(
        f"{cfg.name} epoch {row['epoch']:3d}/{cfg.epochs}  train_loss {row['train_loss']:.4f}  "
        f"val_loss {row['val_loss']:.4f}  val_auc {row['val_auc']:.4f}{detail}  lr {row['lr']:.1e}  "
        f"{seconds:.1f}s{marker}",
        flush=True,
    )
    if writer is None:
        return
    step = row["epoch"]
    for key in ("train_loss", "val_loss", "val_auc", "lr", *per_task):
        if not (isinstance(row[key], float) and math.isnan(row[key])):
            writer.add_scalar(key, row[key], step)
    writer.add_scalar("epoch_seconds", seconds, step)
    writer.flush()


def print_final_table(cfg: TrainConfig, summary: dict[str, Any]) -> None:
    print(f"\n{cfg.name}: {summary['stop_reason']}")
    print(f"  best epoch     {summary['best_epoch']} of {summary['epochs_run']}")
    print(f"  val AUC        {summary['best_val_auc']:.4f}")
    print(f"  val loss       {summary['best_val_loss']:.4f}")
    print(f"  checkpoint     {summary['checkpoint']}")
    if len(cfg.tasks) > 1:  # a multi-task run: its per-task views hold the predictions
        views = ", ".join(str(layout.model_dir(cfg.models_dir, t, cfg.plane)) for t in cfg.tasks)
        print(f"  task views     {views}")
    else:
        print(f"  predictions    {cfg.run_dir() / layout.VALID_PREDICTIONS}")
    print(f"  metrics        {cfg.run_dir() / layout.METRICS}\n")
