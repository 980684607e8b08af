"""Building viewer pages: what each exam page shows, computed from the models, and the pages with their index.

write_exam_pages is the one entry point, used by predict --html and by the evaluation report.
Exam by exam, so a batch holds one exam's images at a time. The CAMs come from
cam.class_activation_maps: the same maps and exact per-slice shares of the logit as the
PNG heatmaps of predict --cam and of the evaluation report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import PLANES
from ..cam import class_activation_maps
from ..data.series import resize_series
from ..device import Scoring, autocast
from ..inference import TaskModels
from .index import IndexRow, write_index
from .page import ExamView, PlaneImages, TaskOutcome, page_names, write_exam_page


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
    """The planes of one exam, in the usual order (axial, coronal, sagittal): those the models score."""
    planes = [p for p in PLANES if all(p in tm.models for tm in task_models)]
    return [plane_images(plane, series[plane], task_models, scoring) for plane in planes]


@dataclass
class PageExam:
    """One exam to show: its outcomes and inputs; its series are read only when its page is built."""

    case: str
    read_series: Callable[[], Mapping[str, np.ndarray]]  # plane -> uint8 (s, H, W)
    outcomes: list[TaskOutcome]
    sources: dict[str, str]  # plane -> input file or folder
    notes: list[str] = field(default_factory=list)
    subtitle: str = ""
    reason: str = ""  # why the exam is listed, for the index


@dataclass
class ViewerPages:
    """The pages written: index.html and each exam's page by case."""

    index: Path
    pages: dict[str, Path]


def write_exam_pages(
    folder: Path,
    exams: Sequence[PageExam],
    task_models: Sequence[TaskModels],
    scoring: Scoring,
    operating_point: str,
    title: str,
    note: str,
) -> ViewerPages:
    """One page per exam (all tasks on it) and index.html listing each exam's ensemble probability per task.

    `operating_point` says on each page how its thresholds were chosen; `title` and `note` head the index.
    """
    names = page_names([exam.case for exam in exams])
    pages, rows = {}, []
    for exam in exams:
        view = ExamView(
            case=exam.case,
            planes=exam_images(exam.read_series(), task_models, scoring),
            outcomes=exam.outcomes,
            operating_point=operating_point,
            sources=exam.sources,
            notes=exam.notes,
            subtitle=exam.subtitle,
        )
        pages[exam.case] = write_exam_page(view, folder, names[exam.case])
        values = {o.task: o.probabilities["ensemble"] for o in exam.outcomes}
        labels = {o.task: o.label for o in exam.outcomes if o.label is not None}
        rows.append(IndexRow(exam.case, pages[exam.case].name, values, labels, exam.reason))
    index = write_index(folder / "index.html", rows, [tm.task for tm in task_models], title, note)
    return ViewerPages(index, pages)
