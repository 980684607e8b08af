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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import AMP_MODES, ENGINES, LOGIT, PLANES, TASKS, layout, plane_order
from .data.dicom import DicomOptions
from .data.exams import CheckedInputs, ExamInput, check_inputs, exams_from_inputs
from .device import Scoring, describe
from .ensemble.file import SavedEnsemble, load_ensemble
from .ensemble.stacker import ensemble_probabilities
from .errors import at_least, check_options, one_of
from .export.dicom_sr import write_reports
from .export.onnx_export import load_onnx_task_models
from .files import atomic_write, check_writable, write_json
from .inference import PlaneModels, TaskModels, exam_series, predict_exams
from .invocation import command
from .outputs import OutputFolders
from .runinfo import environment, plain

ENSEMBLE = "ensemble"
FIXED_OPERATING_POINT = 0.5
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
    planes: list[str] = field(default_factory=lambda: list(PLANES))  # the series an exam has: the models scoring them
    device: str = "auto"
    amp: str = "auto"
    image_size: int | None = None  # overrides the size recorded in the checkpoints
    max_slices: int | None = None  # None: the device's default (64 on the CPU, 512 on CUDA)
    cam: str | None = None
    cam_top_k: int = 3
    cam_gif: bool = False
    series: list[str] = field(default_factory=list)  # PLANE=SeriesInstanceUID or SeriesDescription, for DICOM
    ignore_orientation: bool = False  # use a DICOM series whose orientation disagrees with its plane
    html: str | None = None  # folder for the exam viewer pages
    engine: str = "torch"  # or "onnxruntime": the plane models' model.onnx (export onnx)
    dicom_sr: str | None = None  # folder for a DICOM Structured Report per DICOM exam


@dataclass
class Prediction:
    """What a prediction run produced: the table, the files written, and what was skipped."""

    table: pd.DataFrame
    tasks: list[str]
    written: list[Path]
    skipped: list[str]
    notes: list[str]
    removed: list[Path] = field(default_factory=list)  # files of an earlier predict run in the same folders


def add_ensemble_columns(table: pd.DataFrame, ensembles: dict[str, SavedEnsemble]) -> pd.DataFrame:
    """Each task's stacked probability from its planes' columns (merged by column name, never by position),
    then its operating threshold and the call `positive` (1 when the probability reaches it)."""
    for task, saved in ensembles.items():
        planes = table[[f"{task}_{p}{suffix}" for suffix in ("", LOGIT) for p in saved.planes]]
        planes.columns = [f"{p}{suffix}" for suffix in ("", LOGIT) for p in saved.planes]
        probs = ensemble_probabilities(saved, planes)
        table[f"{task}_{ENSEMBLE}"] = probs
        chosen = saved.thresholds.get(ENSEMBLE)
        threshold = chosen.threshold if chosen is not None else math.nan
        table[f"{task}_threshold"] = threshold
        called = chosen is not None and math.isfinite(threshold)  # none chosen (one class): no call, never "negative"
        table[f"{task}_positive"] = pd.array(probs >= threshold, dtype="Int64") if called else pd.NA
    columns = {t: (*plane_order(s.planes), ENSEMBLE, *OPERATING) for t, s in ensembles.items()}
    ordered = ["case"] + [f"{t}_{c}" for t, cs in columns.items() for c in cs]
    return table[ordered]


def calibration_notes(ensembles: dict[str, SavedEnsemble]) -> list[str]:
    """What each task's ensemble output means, from what its stacker was fitted on."""
    notes = []
    for task, saved in ensembles.items():
        fit_on, chosen = saved.fit_on, saved.thresholds.get(ENSEMBLE)
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
    table: pd.DataFrame,
    exams: Sequence[ExamInput],
    tasks: Sequence[str],
    task_models: Sequence[TaskModels],
    input_notes: dict[str, list[str]] | None = None,
    attention: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The predictions with each exam's inputs; for DICOM, how each series was chosen and converted; with
    attention-pooling models, each slice's weight."""
    sources = {e.case: e.sources for e in exams}
    planes = [p for p in PLANES if f"{tasks[0]}_{p}" in table]  # the planes scored
    exam_rows = []
    for row in table.to_dict("records"):
        exam_rows.append(
            {
                "case": row["case"],
                "inputs": {p: shown_source(s) for p, s in sources[row["case"]].items()},
                "probabilities": {t: {c: float(row[f"{t}_{c}"]) for c in (*planes, ENSEMBLE)} for t in tasks},
                "input_notes": (input_notes or {}).get(row["case"], []),
                "operating_points": {
                    t: {"threshold": _plain(row[f"{t}_threshold"]), "positive": _plain(row[f"{t}_positive"])}
                    for t in tasks
                },
            }
        )
        if attention and row["case"] in attention:
            exam_rows[-1]["slice_attention"] = attention[row["case"]]
    return {
        "tasks": list(tasks),
        "image_sizes": {tm.task: tm.image_sizes for tm in task_models},
        "exams": exam_rows,
    }


def shown_source(path: Path) -> str:
    """An input as outputs name it: the file or folder name only. Folder paths of PACS exports often hold
    patient names, and predictions and viewer pages are meant to be shared."""
    return Path(path).name


def _plain(value: Any) -> float | int | None:
    """A JSON value: NaN and pandas' NA become null."""
    if value is None or pd.isna(value):
        return None
    return float(value) if isinstance(value, float) else int(value)


def write_outputs(cfg: PredictConfig, table: pd.DataFrame, payload: dict[str, Any]) -> tuple[list[Path], list[str]]:
    """predictions.csv and .json, competition.csv for CSV input, the run's config and environment; returns the
    files written (the config and environment last) and notes."""
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
    written += [out / "predict_config.json", out / "predict_environment.json"]
    write_json(written[-2], plain(cfg))
    write_json(written[-1], environment())
    return written, notes


def dicom_options(cfg: PredictConfig) -> DicomOptions:
    """--series PLANE=ID pairs (already checked) and --ignore-orientation, for the DICOM reader."""
    chosen = dict(item.split("=", 1) for item in cfg.series)
    return DicomOptions({plane.strip(): value.strip() for plane, value in chosen.items()}, cfg.ignore_orientation)


def series_rule(item: str) -> tuple[bool, str]:
    """A rule for check_options: a --series value is PLANE=ID with a known plane and a non-empty ID."""
    plane, _, value = item.partition("=")
    ok = plane.strip() in PLANES and bool(value.strip())
    return ok, f"--series {item}: expected PLANE=SeriesInstanceUID or PLANE=SeriesDescription, PLANE one of " + (
        ", ".join(PLANES)
    )


def validate_predict_config(cfg: PredictConfig) -> None:
    check_options(
        [
            *(one_of("--tasks", task, TASKS) for task in cfg.tasks),
            *(one_of("--planes", plane, PLANES) for plane in cfg.planes),
            *(series_rule(item) for item in cfg.series),
            at_least("--image-size", cfg.image_size, 64),
            at_least("--cam-top-k", cfg.cam_top_k, 1),
            one_of("--amp", cfg.amp, AMP_MODES),
            at_least("--max-slices", cfg.max_slices, 1),
            one_of("--engine", cfg.engine, ENGINES),
            (cfg.engine == "torch" or not (cfg.cam or cfg.html), "--cam and --html need --engine torch"),
        ]
    )


def run_predict(cfg: PredictConfig, log: Callable[[str], None] = print) -> Prediction:
    """Check the inputs, score every exam with each ready task's planes and stacker, write the files."""
    validate_predict_config(cfg)
    models_dir, planes = Path(cfg.models_dir), plane_order(cfg.planes)
    tasks, skipped = layout.ready_tasks(models_dir, cfg.tasks, planes)
    ensembles = {task: load_ensemble(layout.ensemble_file(models_dir, task), task, planes) for task in tasks}
    check_writable(Path(cfg.out), "--out")
    if cfg.cam:
        check_writable(Path(cfg.cam), "--cam")
    if cfg.html:
        check_writable(Path(cfg.html), "--html")
    if cfg.dicom_sr:
        check_writable(Path(cfg.dicom_sr), "--dicom-sr")
    exams = exams_from_inputs([cfg.axial, cfg.coronal, cfg.sagittal], cfg.exam_dir, cfg.input_csv, planes)
    inputs = check_inputs(exams, dicom_options(cfg))
    scoring = Scoring.resolve(cfg.device, cfg.amp, cfg.max_slices)
    # Each model read once, its bytes hashed and checked against its stacker; scoring, heatmaps and pages reuse it.
    models = PlaneModels(models_dir, scoring.device, cfg.image_size)
    for task, saved in ensembles.items():
        models.check_fitted(task, saved.checkpoints, layout.ensemble_file(models_dir, task))
    if cfg.engine == "torch":
        task_models = [models.task_models(task, planes) for task in tasks]
    else:  # each ONNX file is checked to come from the weights in its best.pt
        task_models = [
            load_onnx_task_models(models_dir, task, scoring.device, cfg.image_size, planes) for task in tasks
        ]
    for line in skipped + inputs.notes:
        log(line)
    log(f"predict: {len(exams)} exam(s), tasks {', '.join(tasks)}, device {describe(scoring.device)}")
    attention: dict[str, Any] = {}
    table = predict_exams(exams, task_models, scoring, inputs.converted, attention)
    outputs = OutputFolders("predict", cfg.out, cfg.html, cfg.cam, cfg.dicom_sr)
    if cfg.cam:
        from .cam import CamOptions, write_cams  # matplotlib only when asked

        outputs.add(
            write_cams(
                CamOptions(Path(cfg.cam), cfg.cam_top_k, cfg.cam_gif),
                exams,
                task_models,
                scoring.device,
                inputs.converted,
            )
        )
    table = add_ensemble_columns(table, ensembles)
    written, notes = write_outputs(
        cfg, table, predictions_json(table, exams, tasks, task_models, inputs.notes_by_case, attention)
    )
    outputs.add(written)
    written = written[:-2]  # the config and environment are not results
    if cfg.html:
        started = time.perf_counter()
        pages = write_viewer(Path(cfg.html), exams, inputs, task_models, table, ensembles, scoring)
        outputs.add(pages)
        written += pages
        log(f"viewer: {len(exams)} page(s) in {cfg.html} ({time.perf_counter() - started:.1f} s)")
    if cfg.dicom_sr:
        reports = write_reports(Path(cfg.dicom_sr), exams, table, tasks, models_dir, dicom_options(cfg))
        outputs.add(reports)
        written += reports
    removed = outputs.finish()
    return Prediction(table, tasks, written, skipped, calibration_notes(ensembles) + notes, removed)


# ----------------------------------------------------------------------------- the exam viewer


def operating_points(ensembles: dict[str, SavedEnsemble]) -> tuple[dict[str, dict[str, float]], str]:
    """The threshold each probability is called at on the viewer pages, and how it was chosen, said honestly.

    train_meta saves each model's threshold (Youden's J on the tuning split, or on valid)
    with the ensemble; a model without one (an ensemble fitted by an older version) is
    called at the fixed cut-off 0.5.
    """
    thresholds, stored, fixed = {}, {}, []
    for task, ensemble in ensembles.items():
        saved = {model: t.threshold for model, t in ensemble.thresholds.items()}
        if ENSEMBLE not in saved and ensemble.threshold is not None:
            saved[ENSEMBLE] = ensemble.threshold
        models = (*plane_order(ensemble.planes), ENSEMBLE)
        thresholds[task] = {m: float(saved.get(m, FIXED_OPERATING_POINT)) for m in models}
        chosen = {t.chosen_on for t in ensemble.thresholds.values()}
        if saved:
            stored[task] = ", ".join(sorted(chosen)) if chosen else "stored"
        if len(saved) < len(models):
            fixed.append(task)
    parts = []
    if stored:
        parts.append(
            "Thresholds stored with the ensembles (Youden's J): "
            + ", ".join(f"{task} (chosen on {where})" for task, where in stored.items())
            + "."
        )
    if fixed:
        parts.append(
            f"{FIXED_OPERATING_POINT}, a fixed cut-off, for the models of {', '.join(fixed)} that carry no tuned "
            f"threshold (refit the ensembles with {command('train-meta')} to store them)."
        )
    return thresholds, " ".join(parts)


def exam_planes(exam: ExamInput, converted: dict[tuple[Path, str], np.ndarray]) -> dict[str, np.ndarray]:
    """An exam's series, as scored (read when its viewer page is built)."""
    return {plane: exam_series(exam, plane, converted) for plane in exam.sources}


def write_viewer(
    folder: Path,
    exams: Sequence[ExamInput],
    inputs: CheckedInputs,
    task_models: Sequence[TaskModels],
    table: pd.DataFrame,
    ensembles: dict[str, SavedEnsemble],
    scoring: Scoring,
) -> list[Path]:
    """One viewer page per exam and index.html, exam by exam (one exam's images in memory at a time)."""
    from .viewer.build import PageExam, write_exam_pages  # CAMs and PNG encoding: only when the viewer is asked for
    from .viewer.page import TaskOutcome

    thresholds, note = operating_points(ensembles)
    rows_by_case = table.set_index("case").to_dict("index")
    shown = []
    for exam in exams:
        row = rows_by_case[exam.case]
        outcomes = [
            TaskOutcome(tm.task, {m: float(row[f"{tm.task}_{m}"]) for m in (*tm.models, ENSEMBLE)}, thresholds[tm.task])
            for tm in task_models
        ]
        shown.append(
            PageExam(
                case=exam.case,
                read_series=partial(exam_planes, exam, inputs.converted),
                outcomes=outcomes,
                sources={plane: shown_source(source) for plane, source in exam.sources.items()},
                notes=inputs.notes_by_case.get(exam.case, []),
            )
        )
    index_note = "Ensemble probability per task. " + note
    written = write_exam_pages(folder, shown, task_models, scoring, note, "MRNet predictions", index_note)
    return [written.index, *written.pages.values()]
