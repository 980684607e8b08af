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
from .state import TrainResult


def metric_columns(select_split: str) -> tuple[str, ...]:
    """metrics.csv's header: the selecting split's numbers carry its name (tune_auc, or valid_auc)."""
    return ("epoch", "train_loss", f"{select_split}_loss", f"{select_split}_auc", "lr", "best")


def write_metrics_csv(path: Path, history: list[dict[str, Any]], select_split: str) -> None:
    """Rewritten whole each epoch from the saved history, so a resumed run leaves no stray row."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            first = history[0] if history else {}
            per_task = [k for k in first if k.startswith((f"{select_split}_auc_", f"{select_split}_loss_", "view_"))]
            writer = csv.DictWriter(
                handle, fieldnames=[*metric_columns(select_split), *per_task], extrasaction="ignore"
            )
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
    split = cfg.select_on
    marker = "  *best*" if row["best"] else ""
    views = [k.removeprefix("view_") for k, v in row.items() if k.startswith("view_") and v]
    if views and (views != list(cfg.tasks) or not row["best"]):  # --view-epochs task: views on their own epochs
        marker += f"  views: {' '.join(views)}"
    prefix = f"{split}_auc_"
    per_task = {k: v for k, v in row.items() if k.startswith(prefix)}
    detail = " (" + " ".join(f"{k[len(prefix) :]} {v:.4f}" for k, v in per_task.items()) + ")" if per_task else ""
    print(
        f"{cfg.name} epoch {row['epoch']:3d}/{cfg.epochs}  train_loss {row['train_loss']:.4f}  "
        f"{split}_loss {row[f'{split}_loss']:.4f}  {split}_auc {row[f'{split}_auc']:.4f}{detail}  lr {row['lr']:.1e}  "
        f"{seconds:.1f}s{marker}",
        flush=True,
    )
    if writer is None:
        return
    step = row["epoch"]
    for key in ("train_loss", f"{split}_loss", f"{split}_auc", "lr", *per_task):
        if not (isinstance(row[key], float) and math.isnan(row[key])):
            writer.add_scalar(key, row[key], step)
    writer.add_scalar("epoch_seconds", seconds, step)
    writer.flush()


def print_final_table(cfg: TrainConfig, summary: TrainResult) -> None:
    split = summary.select_split
    role = (
        "the tuning split chose this epoch; the valid split is scored once, by train_meta or evaluate"
        if split == "tune"
        else "valid chose this epoch, so as a test figure it is optimistic"
    )
    print(f"\n{cfg.name}: {summary.stop_reason}")
    print(f"  best epoch     {summary.best_epoch} of {summary.epochs_run}, chosen on the {split} split")
    print(f"  {split} AUC{' ' * (10 - len(split))} {summary.best_auc:.4f}  ({role})")
    print(f"  {split} loss{' ' * (9 - len(split))} {summary.best_loss:.4f}")
    print(f"  checkpoint     {summary.checkpoint}")
    if len(cfg.tasks) > 1:  # a multi-task run: its per-task views hold the predictions
        views = ", ".join(str(layout.model_dir(cfg.models_dir, t, cfg.plane)) for t in cfg.tasks)
        print(f"  task views     {views}")
    else:
        print(f"  predictions    {summary.predictions}")
    print(f"  metrics        {cfg.run_dir() / layout.METRICS}\n")
