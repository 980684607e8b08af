"""What a run carries from epoch to epoch, and the checkpoints that hold it so a run can resume."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from .. import layout
from ..checkpoint import save_checkpoint
from ..models import PlaneModel
from .config import TrainConfig


@dataclass
class RunState:
    """What changes from epoch to epoch; saved in every checkpoint so a run can resume.

    Each history row names the split its numbers come from (`tune_loss`, `tune_auc` or
    `valid_loss`, `valid_auc`), so a tuning figure cannot be mistaken for a test figure.
    """

    epoch: int = 0  # last completed epoch (1-based); 0 before the first
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf  # higher is better (AUC, or minus the loss)
    best_loss: float = math.inf  # the best epoch's loss: breaks ties in AUC
    select_split: str = "tune"  # the split that picks the best epoch: tune or valid
    monitor: str = "auc"  # "auc", or "loss" when the selecting split holds one class for the task
    finished: bool = False
    stop_reason: str = ""
    image_size: int = 256  # slice size the model was trained on; prediction resizes new series to it
    data: dict[str, Any] = field(default_factory=dict)  # fingerprint of the exams (data/fingerprint.py)

    def key(self, metric: str) -> str:
        """The history column of `metric` ('loss' or 'auc') on the selecting split, e.g. 'tune_auc'."""
        return f"{self.select_split}_{metric}"

    def score(self, row: dict[str, Any]) -> float:
        """The monitored number of an epoch, higher is better (NaN when undefined)."""
        return row[self.key("auc")] if self.monitor == "auc" else -row[self.key("loss")]

    def improves(self, row: dict[str, Any]) -> bool:
        """A higher score than every earlier epoch; an equal AUC with a lower loss also counts.

        On a small tuning split many epochs reach the same AUC (often 1.0); keeping the first
        of them would keep an undertrained model, so the loss breaks the tie.
        """
        score, loss = self.score(row), row[self.key("loss")]
        if math.isnan(score):
            return False
        return score > self.best_score or (self.monitor == "auc" and score == self.best_score and loss < self.best_loss)

    def record(self, row: dict[str, Any]) -> None:
        """Add an epoch's row; mark it best when it improves on every earlier epoch."""
        row["best"] = self.improves(row)
        self.history.append(row)
        self.epoch = row["epoch"]
        if row["best"]:
            self.best_score, self.best_loss, self.best_epoch = self.score(row), row[self.key("loss")], row["epoch"]

    def check_stop(self, patience: int, epochs: int) -> None:
        """Early stopping after `patience` epochs without a better score (0 = never), or the last epoch."""
        if patience > 0 and self.epoch - self.best_epoch >= patience:
            self.finished, self.stop_reason = True, f"early stop: no improvement for {patience} epochs"
        elif self.epoch == epochs:
            self.finished, self.stop_reason = True, f"reached --epochs {epochs}"


def plateau_mode(plateau_on: str) -> Literal["min", "max"]:
    """ReduceLROnPlateau's mode: a loss should fall, an AUC rise."""
    return "min" if plateau_on == "loss" else "max"


def plateau_signal(state: RunState, row: dict[str, Any], plateau_on: str) -> float:
    """What ReduceLROnPlateau sees: the selecting split's loss, or its AUC (-inf when undefined)."""
    if plateau_on == "loss":
        return row[state.key("loss")]
    auc = row[state.key("auc")]
    return -math.inf if math.isnan(auc) else auc


def state_from_checkpoint(ckpt: dict[str, Any]) -> RunState:
    history, select_split, monitor = list(ckpt["history"]), ckpt.get("select_split"), ckpt["monitor"]
    if select_split is None:  # saved before the tuning split: 'val_auc' / 'val_loss' on the valid split
        select_split, monitor = "valid", monitor.removeprefix("val_")
        history = [{k.replace("val_", "valid_"): v for k, v in row.items()} for row in history]
    return RunState(
        epoch=ckpt["epoch"],
        history=history,
        best_epoch=ckpt["best_epoch"],
        best_score=ckpt["best_score"],
        best_loss=ckpt.get("best_loss", -math.inf),
        select_split=select_split,
        monitor=monitor,
        finished=ckpt["finished"],
        stop_reason=ckpt.get("stop_reason", ""),
        image_size=ckpt.get("image_size", 256),
        data=ckpt.get("data") or {},
    )


def checkpoint_payload(cfg: TrainConfig, model: PlaneModel, state: RunState) -> dict[str, Any]:
    return {
        "task": cfg.task,
        "plane": cfg.plane,
        "image_size": state.image_size,
        "model_args": model.model_args(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": asdict(cfg),
        "epoch": state.epoch,
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_score": state.best_score,
        "best_loss": state.best_loss,
        "select_split": state.select_split,
        "monitor": state.monitor,
        "finished": state.finished,
        "stop_reason": state.stop_reason,
        "data": state.data,
    }


def save_best(cfg: TrainConfig, model: PlaneModel, state: RunState) -> None:
    save_checkpoint(checkpoint_payload(cfg, model, state), cfg.run_dir() / layout.BEST)


def save_last(
    cfg: TrainConfig,
    model: PlaneModel,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    state: RunState,
) -> None:
    """Everything a resume needs: weights, optimiser, scheduler, loss scaler, the CPU RNG and the history."""
    payload = checkpoint_payload(cfg, model, state)
    payload.update(
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict(),
        torch_rng=torch.get_rng_state(),
    )
    save_checkpoint(payload, cfg.run_dir() / layout.LAST)


@dataclass(frozen=True)
class TrainResult:
    """What train() returns: the best epoch and its numbers, named after the split that selected it.

    `model_state` holds the final weights (on the CPU) only when train() was asked to keep them.
    """

    model: str  # the run's name, e.g. 'acl-sagittal'
    epochs_run: int
    best_epoch: int  # 0 when no epoch was scored
    select_split: str  # tune or valid
    best_auc: float  # NaN when no epoch was scored, or when AUC is undefined on the split
    best_loss: float
    stop_reason: str
    checkpoint: str  # best.pt
    predictions: str  # the best epoch's predictions on the selecting split
    model_state: dict[str, torch.Tensor] | None = None


def summary_from_state(cfg: TrainConfig, state: RunState) -> TrainResult:
    """The best epoch and its numbers, named after the split that selected it."""
    best = next((r for r in state.history if r["epoch"] == state.best_epoch), None)
    return TrainResult(
        model=cfg.name,
        epochs_run=state.epoch,
        best_epoch=state.best_epoch,
        select_split=state.select_split,
        best_auc=best[state.key("auc")] if best else math.nan,
        best_loss=best[state.key("loss")] if best else math.nan,
        stop_reason=state.stop_reason,
        checkpoint=str(cfg.run_dir() / layout.BEST),
        predictions=str(layout.selection_predictions(cfg.models_dir, cfg.task, cfg.plane, state.select_split)),
    )
