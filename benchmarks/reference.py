"""The reference side: training and evaluation written like the public MRNet code, overheads included.

Each function reproduces a habit of those loops on purpose (a disk read and PIL work per
step, float64 preprocessing, 3 identical channels, a host sync and a fresh ROC AUC per exam,
evaluation without `torch.no_grad`), so the benchmark measures what the project's paths save.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

from mrnet.data.transforms import MRNET_MEAN, MRNET_STD

from .exams import ExamSet

MAX_ROTATION_DEG, MAX_SHIFT_PX_AT_256 = 25.0, 25.0


def reference_augment(volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation, shift and flip applied one slice at a time through PIL, as the public loaders do.

    One draw per series (the public code drew per slice, a defect that does not change the
    work done), so both sides apply the same kind of transform.
    """
    size = volume.shape[-1]
    angle = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
    shift_x, shift_y = rng.uniform(-MAX_SHIFT_PX_AT_256, MAX_SHIFT_PX_AT_256, size=2) * size / 256
    flip = rng.random() < 0.5
    out = np.empty_like(volume)
    for index, image in enumerate(volume):
        warped = Image.fromarray(image).rotate(angle, resample=Image.Resampling.BILINEAR, translate=(shift_x, shift_y))
        if flip:
            warped = warped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out[index] = np.asarray(warped)
    return out


def reference_read_exam(path: str, rng: np.random.Generator | None) -> np.ndarray:
    """Per step, as the public loaders do: read from disk, augment, scale in float64, copy to 3 channels.

    uint8 (s, H, W) on disk -> float32 (s, 3, H, W).
    """
    volume = np.load(path)
    if rng is not None:
        volume = reference_augment(volume, rng)
    low, high = volume.min(), volume.max()
    scaled = (volume - low) / max(float(high) - float(low), 1e-6) * 255.0  # float64
    normalised = (scaled - MRNET_MEAN) / MRNET_STD
    return np.stack([normalised] * 3, axis=1).astype(np.float32)


def auc_so_far(y_true: Sequence[int], y_prob: Sequence[float]) -> float:
    """ROC AUC over the exams seen so far, recomputed after every exam as the public loops do."""
    if len(set(y_true)) < 2:
        return math.nan
    return float(roc_auc_score(y_true, y_prob))


def reference_train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    exams: ExamSet,
    indices: Sequence[int],
    pos_weight: float,
    device: torch.device,
    rng: np.random.Generator,
) -> None:
    """One exam per step in fp32, with the per-step host syncs and metrics of the public loops."""
    model.train()
    weight = torch.tensor([pos_weight], device=device)
    y_true: list[int] = []
    y_prob: list[float] = []
    for i in indices:
        slices = torch.from_numpy(reference_read_exam(exams.paths[i], rng)).to(device)
        target = torch.tensor([float(exams.labels[i])], device=device)
        logit = model(slices)
        loss = F.binary_cross_entropy_with_logits(logit, target, pos_weight=weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # logged per step: a host sync on CUDA
        y_true.append(exams.labels[i])
        y_prob.append(torch.sigmoid(logit).item())
        auc_so_far(y_true, y_prob)


def reference_evaluate(
    model: nn.Module, exams: ExamSet, indices: Sequence[int], pos_weight: float, device: torch.device
) -> None:
    """One exam per forward pass and, as in the public loops, no torch.no_grad: autograd records every pass."""
    model.eval()
    weight = torch.tensor([pos_weight], device=device)
    y_true: list[int] = []
    y_prob: list[float] = []
    for i in indices:
        slices = torch.from_numpy(reference_read_exam(exams.paths[i], None)).to(device)
        target = torch.tensor([float(exams.labels[i])], device=device)
        logit = model(slices)
        F.binary_cross_entropy_with_logits(logit, target, pos_weight=weight).item()
        y_true.append(exams.labels[i])
        y_prob.append(torch.sigmoid(logit).item())
        auc_so_far(y_true, y_prob)
