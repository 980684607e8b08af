"""The exams a reader looks at first, with a viewer page each: per task the most confident true positives
and the worst false positives and false negatives of the ensemble at its operating point.

The operating point is the ensemble's threshold chosen on the training split by Youden's J
(the one the report's sensitivity and specificity use); 0.5 where it is undefined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from .. import PLANES
from ..data.dataset import series_path
from ..data.series import load_series
from ..device import Scoring
from ..inference import PlaneModels
from ..viewer.build import PageExam, write_exam_pages
from ..viewer.page import TaskOutcome

MODELS = (*PLANES, "ensemble")
FALLBACK_THRESHOLD = 0.5
VIEWER_FOLDER = "viewer"
OPERATING_POINT = (
    "each model's threshold chosen on the train split by Youden's J, as in the report's sensitivity and "
    "specificity (0.5 where it is undefined)."
)


@dataclass(frozen=True)
class Shown:
    """An exam picked for a task: why, with which ensemble probability, and its viewer page."""

    task: str
    case: str
    kind: str  # "true positive", "false positive" or "false negative"
    probability: float
    page: Path


def thresholds_of(metrics: pd.DataFrame, task: str) -> dict[str, float]:
    """Each model's train-split Youden threshold for a task, 0.5 where it is undefined (one class in train)."""
    rows = metrics[metrics["task"] == task].set_index("model")["threshold_youden"]
    return {m: FALLBACK_THRESHOLD if math.isnan(float(rows[m])) else float(rows[m]) for m in MODELS if m in rows}


def pick(evaluated: pd.DataFrame, threshold: float, count: int) -> list[tuple[str, str, float]]:
    """(kind, case, probability): the top true positives, then the worst false positives and false negatives."""
    called = evaluated["ensemble"] >= threshold
    positive = evaluated["label"] == 1
    groups = [
        ("true positive", evaluated[positive & called].sort_values("ensemble", ascending=False, kind="stable")),
        ("false positive", evaluated[~positive & called].sort_values("ensemble", ascending=False, kind="stable")),
        ("false negative", evaluated[positive & ~called].sort_values("ensemble", ascending=True, kind="stable")),
    ]
    return [
        (kind, str(row.case), float(row.ensemble)) for kind, rows in groups for row in rows.head(count).itertuples()
    ]


def read_planes(sources: dict[str, Path]) -> dict[str, np.ndarray]:
    return {plane: load_series(source) for plane, source in sources.items()}


def write_showcase(
    data_dir: str,
    models: PlaneModels,
    split: str,
    tables: dict[tuple[str, str], pd.DataFrame],
    metrics: pd.DataFrame,
    tasks: Sequence[str],
    count: int,
    out: Path,
    scoring: Scoring,
) -> dict[str, list[Shown]]:
    """Pick the exams per task, write a viewer page for each (all tasks on it) and viewer/index.html."""
    if count == 0:
        return {}
    thresholds = {task: thresholds_of(metrics, task) for task in tasks}
    picked = {task: pick(tables[(task, split)], thresholds[task]["ensemble"], count) for task in tasks}
    cases = sorted({case for items in picked.values() for _, case, _ in items})
    if not cases:
        return {}
    folder = out / VIEWER_FOLDER
    reasons = {c: [f"{t} {kind}" for t, items in picked.items() for kind, case, _ in items if case == c] for c in cases}
    planes = [p for p in PLANES if all(p in tables[(t, split)] for t in tasks)]  # the planes scored
    task_models = [models.task_models(task, planes) for task in tasks]
    shown = []
    for case in cases:
        rows = {task: tables[(task, split)].set_index("case").loc[case] for task in tasks}
        outcomes = [
            TaskOutcome(t, {m: float(rows[t][m]) for m in (*planes, "ensemble")}, thresholds[t], int(rows[t]["label"]))
            for t in tasks
        ]
        sources = {p: series_path(data_dir, split, p, case) for p in planes}
        shown.append(
            PageExam(
                case=case,
                read_series=partial(read_planes, sources),
                outcomes=outcomes,
                sources={p: s.name for p, s in sources.items()},  # no folder path on a page meant to be shared
                subtitle=f"{split} split; shown in the evaluation report as: {', '.join(reasons[case])}",
                reason="; ".join(reasons[case]),
            )
        )
    note = f"Exams of the {split} split shown in the evaluation report; ensemble probability per task."
    title = "MRNet evaluation: exams to look at first"
    written = write_exam_pages(folder, shown, task_models, scoring, OPERATING_POINT, title, note)
    return {
        task: [Shown(task, case, kind, p, written.pages[case]) for kind, case, p in items]
        for task, items in picked.items()
    }
