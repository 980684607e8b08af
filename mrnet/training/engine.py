"""One training epoch and one scoring pass; both return plain numbers, never log or save."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..data.transforms import SeriesAugment, train_view
from ..device import autocast, stage_series, to_device
from ..inference import predict_logits, progress_off, sigmoid
from ..models import PlaneModel
from . import distributed
from .loss import device_weights, run_loss


@dataclass(frozen=True)
class EpochStats:
    """What one training epoch returns: the loss summed over its exams, so ranks can pool their shares."""

    loss_sum: float
    exams: int

    @property
    def train_loss(self) -> float:
        """The mean loss per exam (0 for an empty epoch)."""
        return self.loss_sum / max(self.exams, 1)


@dataclass(frozen=True)
class ValidationResult:
    """One scoring pass over every exam of a split: the loss, and each exam's logits and probabilities."""

    loss: float
    probs: np.ndarray  # (n,), or (n, tasks) for a multi-task model
    logits: np.ndarray  # same shape as probs


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """An RNG fixed by (seed, epoch, stream): a resumed epoch replays exactly, with no saved state."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 17 + stream)


def shuffled_order(n: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n, generator=epoch_generator(seed, epoch, stream=0)).tolist()


def epoch_augment(seed: int, epoch: int, rank: int = 0) -> SeriesAugment:
    """Each data-parallel rank draws its own transforms; rank 0 matches a single process."""
    return SeriesAugment(seed=seed * 1_000_003 + epoch * 17 + 1 + 7919 * rank)


def chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def train_one_epoch(
    model: PlaneModel,
    optimizer: torch.optim.Optimizer,
    series: Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray,
    order: Sequence[int],
    augment: SeriesAugment | None,
    pos_weight: float | np.ndarray,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    exams_per_step: int = 1,
    progress: str | None = None,
    task_weights: np.ndarray | None = None,
) -> EpochStats:
    """One pass over `order`; with exams_per_step = 1 this is the paper's one exam per step.

    `labels` (n,) with one pos_weight for a single-task model; (n, tasks) with one weight per
    task for a multi-task model: the loss is then the sum of the tasks' losses, each times
    its entry of `task_weights` (--task-weights).

    Nothing in a step comes from the host or waits for the device: the labels, the loss
    weights and the epoch's augmentation draws go to the device once, before the first
    step; `series` already there (`stage_series`, as training passes them) are read in
    place. The loss is summed on the device and read once at the end. `scaler` scales the
    loss for fp16 (a disabled scaler passes everything through unchanged).
    """
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    model.train()
    total = torch.zeros((), device=device, dtype=torch.float64)
    steps = list(chunks(order, exams_per_step))
    label_table = torch.tensor(labels, dtype=torch.float32).to(device)  # (n,) or (n, tasks)
    pos, weights = device_weights(pos_weight, task_weights, device)
    draws = augment.uniforms(len(order)).to(device) if augment is not None else None  # (len(order), 4)
    series = series if all(isinstance(s, torch.Tensor) for s in series) else stage_series(series, device)
    position = 0
    for batch in tqdm(steps, desc=progress, leave=False, disable=progress_off(progress), unit="step"):
        views = [
            train_view(to_device(series[i], device), augment, None if draws is None else draws[position + j])
            for j, i in enumerate(batch)
        ]
        position += len(batch)
        targets = torch.stack([label_table[i] for i in batch])  # device-side views: no host sync
        with autocast(device, amp_dtype):
            if len(views) == 1:
                logits = model(views[0])  # (1,) or (1, tasks)
            else:
                logits = model(torch.cat(views), [v.shape[0] for v in views])  # (k,) or (k, tasks)
        loss = run_loss(logits.float(), targets, pos, weights)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach().double() * len(batch)
    return EpochStats(loss_sum=float(total.item()), exams=len(order))


def validate(
    model: PlaneModel,
    series: Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray,
    pos_weight: float | np.ndarray,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    max_slices: int = 512,
    ranks: distributed.Ranks = distributed.Ranks(),
    progress: str | None = None,
    task_weights: np.ndarray | None = None,
) -> ValidationResult:
    """Loss and probabilities over ALL exams of the scored split (AUC is computed by the caller, once).

    Training scores the split that selects the best epoch: the tuning split, or valid.

    Under data parallelism each rank scores a share and the shares are gathered, so every
    rank holds the same numbers and takes the same decisions.
    """
    mine = list(range(ranks.rank, len(series), ranks.world_size))
    logits = predict_logits(model, [series[i] for i in mine], device, amp_dtype, max_slices, progress)
    logits = distributed.gather_by_index(mine, logits, len(series), ranks)
    loss = run_loss(torch.from_numpy(logits), torch.tensor(labels, dtype=torch.float64), pos_weight, task_weights)
    return ValidationResult(loss=float(loss), probs=sigmoid(logits), logits=logits)
