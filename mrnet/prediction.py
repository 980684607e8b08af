"""Predicting new exams: each plane's and the ensemble's probability for every task, written to files.

Inputs are checked up front (all problems reported at once, each naming its file), then
the exams are scored plane by plane through the same preprocessing and batched inference
as evaluation, so a prediction here equals the one the evaluation report counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import AMP_MODES, PLANES, TASKS, layout
from .data.exams import ExamInput, check_inputs, exams_from_inputs
from .device import Scoring, describe
from .ensemble import ensemble_probabilities, load_ensemble
from .errors import at_least, check_options, one_of
from .files import atomic_write, write_json
from .inference import CamOptions, TaskModels, load_task_models, predict_exams
from .runinfo import environment, plain

ENSEMBLE = "ensemble"


@dataclass
class PredictConfig:
    """Options of predict (saved as predict_config.json next to the predictions)."""

    models_dir: str = "models"
    axial: str | None = None
    coronal: str | None = None
    sagittal: str | None = None
    exam_dir: str | None = None
    input_csv: str | None = None
    out: str = "predictions"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    device: str = "auto"
    amp: str = "auto"
    image_size: int | None = None  # overrides the size recorded in the checkpoints
    max_slices: int | None = None  # None: the device's default (64 on the CPU, 512 on CUDA)
    cam: str | None = None
    cam_top_k: int = 3
    cam_gif: bool = False


@dataclass
class Prediction:
    """What a prediction run produced: the table, the files written, and what was skipped."""

    table: pd.DataFrame
    tasks: list[str]
    written: list[Path]
    skipped: list[str]
    notes: list[str]


def add_ensemble_columns(table: pd.DataFrame, ensembles: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Each task's stacked probability from its planes' columns, merged by column name, never by position."""
    for task, bundle in ensembles.items():
        planes = table[[f"{task}_{p}" for p in bundle["planes"]]]
        planes.columns = list(bundle["planes"])
        table[f"{task}_{ENSEMBLE}"] = ensemble_probabilities(bundle, planes)
    ordered = ["case"] + [f"{t}_{c}" for t in ensembles for c in (*PLANES, ENSEMBLE)]
    return table[ordered]


def competition_rows(table: pd.DataFrame) -> pd.DataFrame | None:
    """The competition's output (abnormal, acl, meniscus ensemble probabilities), or None without all tasks."""
    columns = [f"{t}_{ENSEMBLE}" for t in TASKS]
    if not all(c in table for c in columns):
        return None
    return table[columns]


def predictions_json(
    table: pd.DataFrame,
    exams: Sequence[ExamInput],
    tasks: Sequence[str],
    task_models: Sequence[TaskModels],
    attention: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The table per exam with its input files; with attention-pooling models, each slice's weight."""
    sources = {e.case: e.sources for e in exams}
    exam_rows = []
    for row in table.to_dict("records"):
        exam_rows.append(
            {
                "case": row["case"],
                "inputs": {p: str(sources[row["case"]][p]) for p in PLANES},
                "probabilities": {t: {c: float(row[f"{t}_{c}"]) for c in (*PLANES, ENSEMBLE)} for t in tasks},
            }
        )
        if attention and row["case"] in attention:
            exam_rows[-1]["slice_attention"] = attention[row["case"]]
    return {
        "tasks": list(tasks),
        "image_sizes": {tm.task: tm.image_sizes for tm in task_models},
        "exams": exam_rows,
    }


def write_outputs(cfg: PredictConfig, table: pd.DataFrame, payload: dict[str, Any]) -> tuple[list[Path], list[str]]:
    """predictions.csv and .json, competition.csv for CSV input; returns the files written and notes."""
    out = Path(cfg.out)
    written, notes = [out / "predictions.csv", out / "predictions.json"], []
    # Full precision: rounding could tie nearly equal probabilities and change an AUC computed from the file.
    atomic_write(written[0], lambda tmp: table.to_csv(tmp, index=False))
    write_json(written[1], payload)
    if cfg.input_csv is not None:
        rows = competition_rows(table)
        if rows is None:
            notes.append("competition.csv needs all three tasks; it was not written")
        else:
            written.append(out / "competition.csv")
            atomic_write(written[-1], lambda tmp: rows.to_csv(tmp, index=False, header=False))
    write_json(out / "predict_config.json", plain(cfg))
    write_json(out / "predict_environment.json", environment())
    return written, notes


def validate_predict_config(cfg: PredictConfig) -> None:
    check_options(
        [
            *(one_of("--tasks", task, TASKS) for task in cfg.tasks),
            at_least("--image-size", cfg.image_size, 64),
            at_least("--cam-top-k", cfg.cam_top_k, 1),
            one_of("--amp", cfg.amp, AMP_MODES),
            at_least("--max-slices", cfg.max_slices, 1),
        ]
    )


def run_predict(cfg: PredictConfig, log: Callable[[str], None] = print) -> Prediction:
    """Check the inputs, score every exam with each ready task's planes and stacker, write the files."""
    validate_predict_config(cfg)
    models_dir = Path(cfg.models_dir)
    tasks, skipped = layout.ready_tasks(models_dir, cfg.tasks)
    exams = exams_from_inputs([cfg.axial, cfg.coronal, cfg.sagittal], cfg.exam_dir, cfg.input_csv)
    converted = check_inputs(exams)
    scoring = Scoring.resolve(cfg.device, cfg.amp, cfg.max_slices)
    task_models = [load_task_models(models_dir, task, scoring.device, cfg.image_size) for task in tasks]
    ensembles = {task: load_ensemble(layout.ensemble_file(models_dir, task)) for task in tasks}
    for line in skipped:
        log(line)
    log(f"predict: {len(exams)} exam(s), tasks {', '.join(tasks)}, device {describe(scoring.device)}")
    cam = CamOptions(Path(cfg.cam), cfg.cam_top_k, cfg.cam_gif) if cfg.cam else None
    attention: dict[str, Any] = {}
    table = predict_exams(exams, task_models, scoring, converted, cam, attention)
    table = add_ensemble_columns(table, ensembles)
    written, notes = write_outputs(cfg, table, predictions_json(table, exams, tasks, task_models, attention))
    return Prediction(table, tasks, written, skipped, notes)
