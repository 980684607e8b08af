"""One training epoch and batched inference; both return plain numbers, never log or save."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .device import autocast, to_device
from .model import MRNet
from .transforms import SeriesAugment, preprocess, train_view


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """An RNG fixed by (seed, epoch, stream): a resumed epoch replays exactly, with no saved state."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 17 + stream)


def shuffled_order(n: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n, generator=epoch_generator(seed, epoch, stream=0)).tolist()


def epoch_augment(seed: int, epoch: int, rank: int = 0) -> SeriesAugment:
    """Each data-parallel rank draws its own transforms; rank 0 matches a single process."""
    return SeriesAugment(seed=seed * 1_000_003 + epoch * 17 + 1 + 7919 * rank)


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Mean BCE over exams with the positive term weighted by negatives/positives."""
    weight = torch.tensor(pos_weight, device=logits.device, dtype=logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), pos_weight=weight)


def chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def train_one_epoch(
    model: MRNet,
    optimizer: torch.optim.Optimizer,
    series: Sequence[np.ndarray],
    labels: np.ndarray,
    order: Sequence[int],
    augment: SeriesAugment | None,
    pos_weight: float,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    exams_per_step: int = 1,
    progress: str | None = None,
) -> dict[str, float]:
    """One pass over `order`; with exams_per_step = 1 this is the paper's one exam per step.

    The loss is summed on the device and read once at the end, so the loop never waits
    for the device to report a number.
    """
    model.train()
    total = torch.zeros((), device=device, dtype=torch.float64)
    steps = list(chunks(order, exams_per_step))
    label_table = torch.tensor(labels, dtype=torch.float32).to(device)  # one copy per epoch, not per step
    for batch in tqdm(steps, desc=progress, leave=False, disable=_progress_off(progress), unit="step"):
        views = [train_view(to_device(series[i], device), augment) for i in batch]
        targets = torch.stack([label_table[i] for i in batch])  # device-side views: no host sync
        with autocast(device, amp_dtype):
            if len(views) == 1:
                logits = model(views[0])  # (1,)
            else:
                logits = model(torch.cat(views), [v.shape[0] for v in views])  # (k,)
        loss = weighted_bce(logits.float(), targets, pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * len(batch)
    loss_sum = float(total.item())
    return {"train_loss": loss_sum / max(len(order), 1), "loss_sum": loss_sum, "exams": len(order)}


def batches_by_slices(slice_counts: Sequence[int], max_slices: int) -> Iterator[list[int]]:
    """Consecutive exam indices whose slices add up to at most max_slices (at least one exam)."""
    batch: list[int] = []
    used = 0
    for index, count in enumerate(slice_counts):
        if batch and used + count > max_slices:
            yield batch
            batch, used = [], 0
        batch.append(index)
        used += count
    if batch:
        yield batch


@torch.inference_mode()
def predict_logits(
    model: MRNet,
    series: Sequence[np.ndarray],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    max_slices: int = 512,
    progress: str | None = None,
) -> np.ndarray:
    """Logits (n,) for every series, several exams per forward pass (deterministic path).

    The per-exam max is taken inside each exam's own slices, so the numbers match one
    exam at a time; batching only changes how many slices the convolutions see at once.
    """
    model = getattr(model, "module", model)  # inference needs no gradient sync across ranks
    model.eval()
    outputs: list[torch.Tensor] = []
    groups = list(batches_by_slices([s.shape[0] for s in series], max_slices))
    for group in tqdm(groups, desc=progress, leave=False, disable=_progress_off(progress), unit="batch"):
        views = [preprocess(to_device(series[i], device)) for i in group]
        with autocast(device, amp_dtype):
            logits = model(torch.cat(views), [v.shape[0] for v in views])
        outputs.append(logits.float())
    if not outputs:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(outputs).double().cpu().numpy()


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def evaluate(
    model: MRNet,
    series: Sequence[np.ndarray],
    labels: np.ndarray,
    pos_weight: float,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    max_slices: int = 512,
    progress: str | None = None,
) -> dict:
    """Validation loss and probabilities over all exams (AUC is computed by the caller, once)."""
    logits = predict_logits(model, series, device, amp_dtype, max_slices, progress)
    loss = weighted_bce(torch.from_numpy(logits), torch.tensor(labels, dtype=torch.float64), pos_weight)
    return {"val_loss": float(loss), "probs": sigmoid(logits)}


def _progress_off(progress: str | None) -> bool | None:
    """No bar without a label; otherwise tqdm's own rule (shown on terminals, hidden in logs)."""
    return True if progress is None else None
