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
from ..device import Scoring, autocast
from ..inference import TaskModels
from .page import PlaneImages


def plane_images(plane: str, series: np.ndarray, task_models: Sequence[TaskModels], scoring: Scoring) -> PlaneImages:
    """A plane's series at the first task's slice size, and every task's CAMs (at that size) and slice scores.

    Under the command's autocast, like the prediction itself: the scores then add up to the
    logit the probability came from, and the maps cost half the time on bf16 hardware.
    """
    size = task_models[0].image_sizes[plane]
    shown = series if series.shape[-1] == size else resize_series(series, size)
    cams, scores = {}, {}
    for tm in task_models:
        own = tm.image_sizes[plane]
        seen = shown if own == size else resize_series(series, own)
        with autocast(scoring.device, scoring.amp_dtype):
            maps, scores[tm.task] = class_activation_maps(tm.models[plane], seen, scoring.device)
        cams[tm.task] = maps if own == size else _resize_maps(maps, size)
    return PlaneImages(plane, shown, cams, scores)


def _resize_maps(maps: np.ndarray, size: int) -> np.ndarray:
    x = torch.from_numpy(maps)[:, None]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def exam_images(
    series: Mapping[str, np.ndarray], task_models: Sequence[TaskModels], scoring: Scoring
) -> list[PlaneImages]:
    """The three planes of one exam, in the usual order (axial, coronal, sagittal)."""
    return [plane_images(plane, series[plane], task_models, scoring) for plane in PLANES]
