"""What a run carries from epoch to epoch, and the checkpoints that hold it so a run can resume."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .. import layout
from ..checkpoint import save_checkpoint
from ..models import PlaneModel
from .config import TrainConfig


@dataclass
class RunState:
    """What changes from epoch to epoch; saved in every checkpoint so a run can resume."""

    epoch: int = 0  # last completed epoch (1-based); 0 before the first
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf  # higher is better (AUC, or minus the loss)
    monitor: str = "val_auc"
    finished: bool = False
    stop_reason: str = ""
    image_size: int = 256  # slice size the model was trained on; prediction resizes new series to it
    data: dict[str, Any] = field(default_factory=dict)  # fingerprint of the exams (data/fingerprint.py)

    def score(self, row: dict[str, Any]) -> float:
        """The monitored number of an epoch, higher is better (NaN when undefined)."""
        return row["val_auc"] if self.monitor == "val_auc" else -row["val_loss"]

    def record(self, row: dict[str, Any]) -> None:
        """Add an epoch's row; mark it best when its score beats every earlier epoch's."""
        score = self.score(row)
        row["best"] = not math.isnan(score) and score > self.best_score
        self.history.append(row)
        self.epoch = row["epoch"]
        if row["best"]:
            self.best_score, self.best_epoch = score, row["epoch"]

    def check_stop(self, patience: int, epochs: int) -> None:
        """Early stopping after `patience` epochs without a better score (0 = never), or the last epoch."""
        if patience > 0 and self.epoch - self.best_epoch >= patience:
            self.finished, self.stop_reason = True, f"early stop: no improvement for {patience} epochs"
        elif self.epoch == epochs:
            self.finished, self.stop_reason = True, f"reached --epochs {epochs}"


def plateau_signal(state: RunState, row: dict[str, Any]) -> float:
    """What ReduceLROnPlateau (mode 'max') sees: the monitored score, -inf when undefined."""
    score = state.score(row)
    return -math.inf if math.isnan(score) else score


def state_from_checkpoint(ckpt: dict[str, Any]) -> RunState:
    return RunState(
        epoch=ckpt["epoch"],
        history=list(ckpt["history"]),
        best_epoch=ckpt["best_epoch"],
        best_score=ckpt["best_score"],
        monitor=ckpt["monitor"],
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


def summary_from_state(cfg: TrainConfig, state: RunState) -> dict[str, Any]:
    best = next((r for r in state.history if r["epoch"] == state.best_epoch), None)
    return {
        "model": cfg.name,
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_auc": best["val_auc"] if best else math.nan,
        "best_val_loss": best["val_loss"] if best else math.nan,
        "stop_reason": state.stop_reason,
        "checkpoint": str(cfg.run_dir() / layout.BEST),
    }
