"""What an exam page shows, computed from the models: each plane's series as scored, CAMs and slice scores per task.

Exam by exam, so a batch holds one exam's images at a time. The CAMs come from
cam.class_activation_maps: the same maps and exact per-slice shares of the logit as the
PNG heatmaps of predict --cam and of the evaluation report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import PLANES
from ..cam import class_activation_maps
from ..data.series import resize_series
from ..inference import TaskModels
from .page import PlaneImages


def plane_images(
    plane: str, series: np.ndarray, task_models: Sequence[TaskModels], device: torch.device
) -> PlaneImages:
    """A plane's series at the first task's slice size, and every task's CAMs (at that size) and slice scores."""
    size = task_models[0].image_sizes[plane]
    shown = series if series.shape[-1] == size else resize_series(series, size)
    cams, scores = {}, {}
    for tm in task_models:
        own = tm.image_sizes[plane]
        seen = shown if own == size else resize_series(series, own)
        maps, scores[tm.task] = class_activation_maps(tm.models[plane], seen, device)
        cams[tm.task] = maps if own == size else _resize_maps(maps, size)
    return PlaneImages(plane, shown, cams, scores)


def _resize_maps(maps: np.ndarray, size: int) -> np.ndarray:
    x = torch.from_numpy(maps)[:, None]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def exam_images(
    series: Mapping[str, np.ndarray], task_models: Sequence[TaskModels], device: torch.device
) -> list[PlaneImages]:
    """The three planes of one exam, in the usual order (axial, coronal, sagittal)."""
    return [plane_images(plane, series[plane], task_models, device) for plane in PLANES]
