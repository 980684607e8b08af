"""Predicting new exams: each plane's and the ensemble's probability for every task, and the call at its threshold.

Inputs are checked up front (all problems reported at once, each naming its file), then
the exams are scored plane by plane through the same preprocessing and batched inference
as evaluation, so a prediction here equals the one the evaluation report counts.

The ensemble's output is the number to read: a stacker fitted on the tuning split learned
from probabilities like those of new exams, so it is calibrated (about p of the exams
given p have the finding). The plane models were trained with a class weight, so their
probabilities rank exams but are not calibrated. Beside each ensemble probability stands
the operating point train_meta chose (Youden's J on the tuning split, or on valid without one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import AMP_MODES, PLANES, TASKS, layout
from .data.exams import ExamInput, check_inputs, exams_from_inputs
from .device import Scoring, describe
from .ensemble import ensemble_probabilities, load_ensemble, saved_thresholds
from .errors import at_least, check_options, one_of
from .files import atomic_write, write_json
from .inference import CamOptions, TaskModels, load_task_models, predict_exams
from .runinfo import environment, plain

ENSEMBLE = "ensemble"
OPERATING = ("threshold", "positive")  # per task after its probabilities: the ensemble's threshold and the call


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
    """Each task's stacked probability from its planes' columns (merged by column name, never by position),
    then its operating threshold and the call `positive` (1 when the probability reaches it)."""
    for task, bundle in ensembles.items():
        planes = table[[f"{task}_{p}" for p in bundle["planes"]]]
        planes.columns = list(bundle["planes"])
        probs = ensemble_probabilities(bundle, planes)
        table[f"{task}_{ENSEMBLE}"] = probs
        chosen = saved_thresholds(bundle).get(ENSEMBLE)
        threshold = chosen.threshold if chosen is not None else math.nan
        table[f"{task}_threshold"] = threshold
        table[f"{task}_positive"] = pd.array(probs >= threshold, dtype="Int64") if chosen else pd.NA
    ordered = ["case"] + [f"{t}_{c}" for t in ensembles for c in (*PLANES, ENSEMBLE, *OPERATING)]
    return table[ordered]


def calibration_notes(ensembles: dict[str, dict[str, Any]]) -> list[str]:
    """What each task's ensemble output means, from what its stacker was fitted on."""
    notes = []
    for task, bundle in ensembles.items():
        fit_on, chosen = bundle.get("fit_on", "train"), saved_thresholds(bundle).get(ENSEMBLE)
        if fit_on == "train":
            notes.append(
                f"{task}: the ensemble was fitted on training-set probabilities (--fit-on train); its output ranks "
                "exams but is over-confident, not a calibrated probability (refit with --fit-on tune)"
            )
        if chosen is None:
            notes.append(f"{task}: this ensemble has no saved threshold (fitted by an older version); refit it")
        else:
            notes.append(
                f"{task}: positive when the ensemble >= {chosen.threshold:.3f} (Youden's J on {chosen.chosen_on})"
            )
    return notes


def competition_rows(table: pd.DataFrame) -> pd.DataFrame | None:
    """The competition's output (abnormal, acl, meniscus ensemble probabilities), or None without all tasks."""
    columns = [f"{t}_{ENSEMBLE}" for t in TASKS]
    if not all(c in table for c in columns):
        return None
    return table[columns]


def predictions_json(
    table: pd.DataFrame, exams: Sequence[ExamInput], tasks: Sequence[str], task_models: Sequence[TaskModels]
) -> dict[str, Any]:
    sources = {e.case: e.sources for e in exams}
    exam_rows = []
    for row in table.to_dict("records"):
        exam_rows.append(
            {
                "case": row["case"],
                "inputs": {p: str(sources[row["case"]][p]) for p in PLANES},
                "probabilities": {t: {c: float(row[f"{t}_{c}"]) for c in (*PLANES, ENSEMBLE)} for t in tasks},
                "operating_points": {
                    t: {"threshold": _plain(row[f"{t}_threshold"]), "positive": _plain(row[f"{t}_positive"])}
                    for t in tasks
                },
            }
        )
    return {
        "tasks": list(tasks),
        "image_sizes": {tm.task: tm.image_sizes for tm in task_models},
        "exams": exam_rows,
    }


def _plain(value: Any) -> float | int | None:
    """A JSON value: NaN and pandas' NA become null."""
    if value is None or pd.isna(value):
        return None
    return float(value) if isinstance(value, float) else int(value)


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
    table = predict_exams(exams, task_models, scoring, converted, cam)
    table = add_ensemble_columns(table, ensembles)
    written, notes = write_outputs(cfg, table, predictions_json(table, exams, tasks, task_models))
    return Prediction(table, tasks, written, skipped, calibration_notes(ensembles) + notes)
