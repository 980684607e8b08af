"""Predicting new exams: each plane's and the ensemble's probability for every task with trained models.

Inputs are checked up front (all problems reported at once, each naming its file), then
the exams are scored plane by plane through the same preprocessing and batched inference
as evaluation, so a prediction here equals the one the evaluation report counts.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import PLANES, TASKS
from .checkpoint import atomic_write, load_checkpoint
from .data import SeriesProblem, load_series
from .device import AMP_MODES, describe, resolve_amp, resolve_device
from .engine import predict_logits, sigmoid
from .ensemble import checkpoint_path, ensemble_path, ensemble_probabilities, load_ensemble
from .errors import MRNetError
from .model import MRNet, model_for_inference
from .runinfo import environment, plain, write_json

DEFAULT_IMAGE_SIZE = 256  # MRNet-v1.0's slice size, assumed for checkpoints that do not record theirs
ENSEMBLE = "ensemble"
MAX_PRINTED_EXAMS = 20


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
    max_slices: int = 512
    cam: str | None = None
    cam_top_k: int = 3
    cam_gif: bool = False


@dataclass
class ExamInput:
    """One exam to score: its id and, per plane, a .npy file or a DICOM folder."""

    case: str
    sources: dict[str, Path]


@dataclass
class TaskModels:
    """The three plane models of a task, the slice size each was trained on, and its stacker."""

    task: str
    models: dict[str, MRNet]
    image_sizes: dict[str, int]
    ensemble: dict[str, Any]


# ----------------------------------------------------------------------------- inputs

def exams_from_config(cfg: PredictConfig) -> list[ExamInput]:
    plane_files = [cfg.axial, cfg.coronal, cfg.sagittal]
    chosen = sum([any(f is not None for f in plane_files), cfg.exam_dir is not None, cfg.input_csv is not None])
    if chosen != 1:
        raise MRNetError("give exactly one input: --axial/--coronal/--sagittal, --exam-dir or --input-csv")
    if cfg.exam_dir is not None:
        return [exam_from_folder(Path(cfg.exam_dir))]
    if cfg.input_csv is not None:
        return exams_from_csv(Path(cfg.input_csv))
    missing = [f"--{p}" for p, f in zip(PLANES, plane_files) if f is None]
    if missing:
        raise MRNetError(f"an exam needs all three series; missing {', '.join(missing)}")
    sources = {p: Path(f) for p, f in zip(PLANES, plane_files)}
    return [ExamInput(case_id_for(sources), sources)]


def case_id_for(sources: dict[str, Path]) -> str:
    """The file name shared by the three series (MRNet's NNNN.npy), else their shared folder, else the axial name."""
    stems = {p.stem for p in sources.values()}
    if len(stems) == 1:
        return stems.pop()
    parents = {p.resolve().parent.name for p in sources.values()}
    if len(parents) == 1:
        return parents.pop()
    return sources["axial"].stem


def exam_from_folder(folder: Path) -> ExamInput:
    """A folder with axial.npy, coronal.npy, sagittal.npy, or DICOM subfolders axial/, coronal/, sagittal/."""
    if not folder.is_dir():
        raise MRNetError(f"--exam-dir {folder}: folder not found")
    sources, missing = {}, []
    for plane in PLANES:
        if (folder / f"{plane}.npy").is_file():
            sources[plane] = folder / f"{plane}.npy"
        elif (folder / plane).is_dir():
            sources[plane] = folder / plane
        else:
            missing.append(f"{plane}.npy (or a DICOM folder {plane}/)")
    if missing:
        raise MRNetError(f"--exam-dir {folder}: missing {', '.join(missing)}")
    return ExamInput(folder.resolve().name, sources)


def plane_named_in(path: str) -> str | None:
    """The plane a path names by a folder (valid/sagittal/1130.npy) or in its file name, if exactly one."""
    parts = [part.lower() for part in Path(path).parts]
    in_folders = {p for p in PLANES if p in parts[:-1]}
    if len(in_folders) == 1:
        return in_folders.pop()
    in_name = {p for p in PLANES if p in parts[-1]} if parts else set()
    return in_name.pop() if len(in_name) == 1 else None


def exams_from_csv(path: Path) -> list[ExamInput]:
    """The competition's input: a header-less CSV of .npy paths, three rows per case, cases in order.

    Public descriptions disagree on the order of the three rows (axial, coronal, sagittal
    or sagittal, coronal, axial), so each row's plane is taken from its path when the path
    names one (as MRNet-v1.0/valid/sagittal/1130.npy does); otherwise the rows are read as
    axial, coronal, sagittal. Relative paths are taken from the current folder, then from
    the CSV's folder.
    """
    if not path.is_file():
        raise MRNetError(f"--input-csv {path}: file not found")
    rows = [line.split(",")[0].strip() for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise MRNetError(f"--input-csv {path}: no rows")
    if len(rows) % 3:
        raise MRNetError(f"--input-csv {path}: {len(rows)} rows is not a multiple of 3 (three series per case)")
    exams, problems = [], []
    for start in range(0, len(rows), 3):
        group = rows[start:start + 3]
        named = [plane_named_in(r) for r in group]
        if all(n is None for n in named):
            planes = list(PLANES)
        elif sorted(n or "" for n in named) == sorted(PLANES):
            planes = named
        else:
            problems.append(f"rows {start + 1}-{start + 3}: the paths do not name one axial, one coronal and "
                            f"one sagittal series ({', '.join(group)})")
            continue
        sources = {plane: _resolve_listed(row, path.parent) for plane, row in zip(planes, group)}
        exams.append(ExamInput(case_id_for(sources), sources))
    if problems:
        raise MRNetError(f"--input-csv {path}:\n  - " + "\n  - ".join(problems))
    return unique_case_ids(exams)


def _resolve_listed(row: str, csv_folder: Path) -> Path:
    listed = Path(row)
    if listed.is_absolute() or listed.exists():
        return listed
    beside = csv_folder / listed
    return beside if beside.exists() else listed


def unique_case_ids(exams: list[ExamInput]) -> list[ExamInput]:
    """Keep case ids distinct (outputs are keyed by them): a repeated id gets a -2, -3 suffix."""
    seen: dict[str, int] = {}
    for exam in exams:
        count = seen.get(exam.case, 0) + 1
        seen[exam.case] = count
        if count > 1:
            exam.case = f"{exam.case}-{count}"
    return exams


def read_series(source: Path, mmap: bool = False) -> np.ndarray:
    """A .npy file through the same checks as training data, or a DICOM folder converted to uint8."""
    if source.is_dir():
        from .dicom import read_dicom_series  # pydicom is optional; only DICOM input needs it

        return read_dicom_series(source)
    return load_series(source, mmap=mmap)


def check_inputs(exams: Sequence[ExamInput]) -> dict[Path, np.ndarray]:
    """Read every series header (DICOM folders in full); raise one error listing every bad file.

    Returns the converted DICOM series, so they are not converted twice.
    """
    problems, converted = [], {}
    for exam in exams:
        for plane, source in exam.sources.items():
            try:
                series = read_series(source, mmap=True)
            except SeriesProblem as err:
                problems.append(f"{source} ({exam.case}, {plane}): {err}")
                continue
            if source.is_dir():
                converted[source] = series
    if problems:
        count = len(problems)
        raise MRNetError(f"{count} input series cannot be used, no predictions written:\n  - "
                         + "\n  - ".join(problems) + "\nSee 'Bad input' in README.md for what each check expects.")
    return converted


# ----------------------------------------------------------------------------- models

def ready_tasks(models_dir: Path, tasks: Sequence[str]) -> tuple[list[str], list[str]]:
    """Tasks with three plane checkpoints and an ensemble, and a line per task skipped."""
    if not models_dir.is_dir():
        raise MRNetError(f"models folder {models_dir} does not exist (set --models-dir)")
    ready, skipped = [], []
    for task in tasks:
        absent = [str(checkpoint_path(models_dir, task, p)) for p in PLANES
                  if not checkpoint_path(models_dir, task, p).is_file()]
        if not ensemble_path(models_dir, task).is_file():
            absent.append(str(ensemble_path(models_dir, task)))
        if absent:
            skipped.append(f"{task}: skipped, missing {', '.join(absent)}")
        else:
            ready.append(task)
    if not ready:
        raise MRNetError(f"no task has its three plane models and ensemble in {models_dir}:\n  "
                         + "\n  ".join(skipped) + "\ntrain them with scripts/train_all.py")
    return ready, skipped


def load_task_models(models_dir: Path, task: str, device: torch.device, image_size: int | None) -> TaskModels:
    models, sizes = {}, {}
    for plane in PLANES:
        ckpt = load_checkpoint(checkpoint_path(models_dir, task, plane), task, plane)
        models[plane] = model_for_inference(ckpt["model"], device)
        sizes[plane] = int(image_size or ckpt.get("image_size") or DEFAULT_IMAGE_SIZE)
    return TaskModels(task, models, sizes, load_ensemble(ensemble_path(models_dir, task)))


# ----------------------------------------------------------------------------- sizes

def resize_series(series: np.ndarray, size: int) -> np.ndarray:
    """uint8 (s, H, W) -> uint8 (s, size, size), bilinear per slice (antialiased when shrinking)."""
    x = torch.from_numpy(np.ascontiguousarray(series)).float()[:, None]  # (s, 1, H, W)
    shrinking = size < series.shape[-1]
    resized = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
    return resized[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def fit_to_size(series: np.ndarray, size: int, source: Path, warned: set[tuple[Path, int]]) -> np.ndarray:
    """Resize a series to the slice size its model was trained on, warning once per file and size."""
    height = series.shape[-1]
    if height == size:
        return series
    if (source, size) not in warned:
        warned.add((source, size))
        print(f"warning: {source}: slices are {height}x{height} but the model was trained on {size}x{size}; "
              f"resized bilinearly to {size}x{size}", file=sys.stderr)
    return resize_series(series, size)


# ----------------------------------------------------------------------------- prediction

@dataclass
class CamOptions:
    """Where heatmaps go, how many top slices per series, and whether to add a GIF."""

    out_dir: Path
    top_k: int = 3
    gif: bool = False


def predict_exams(
    exams: Sequence[ExamInput],
    task_models: Sequence[TaskModels],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    max_slices: int = 512,
    converted: dict[Path, np.ndarray] | None = None,
    cam: CamOptions | None = None,
) -> pd.DataFrame:
    """One row per exam: `case`, then `{task}_{plane}` and `{task}_ensemble` probabilities.

    Plane by plane, so only one plane's series are held in memory; every task's model for
    that plane scores all exams in batches.
    """
    converted = converted or {}
    table = pd.DataFrame({"case": [e.case for e in exams]})
    warned: set[tuple[Path, int]] = set()
    for plane in PLANES:
        raw = [converted[e.sources[plane]] if e.sources[plane] in converted else read_series(e.sources[plane])
               for e in exams]
        for tm in task_models:
            size = tm.image_sizes[plane]
            series = [fit_to_size(s, size, e.sources[plane], warned) for s, e in zip(raw, exams)]
            logits = predict_logits(tm.models[plane], series, device, amp_dtype, max_slices)
            table[f"{tm.task}_{plane}"] = sigmoid(logits)
            if cam is not None:
                write_cams(cam, exams, series, tm, plane, device)
        del raw
    for tm in task_models:
        planes = table[[f"{tm.task}_{p}" for p in tm.ensemble["planes"]]]
        planes.columns = list(tm.ensemble["planes"])
        table[f"{tm.task}_{ENSEMBLE}"] = ensemble_probabilities(tm.ensemble, planes)
    ordered = ["case"] + [f"{tm.task}_{c}" for tm in task_models for c in (*PLANES, ENSEMBLE)]
    return table[ordered]


def write_cams(cam: CamOptions, exams: Sequence[ExamInput], series: Sequence[np.ndarray], tm: TaskModels,
               plane: str, device: torch.device) -> None:
    """Heatmaps of the top slices per exam into <cam>/<case>/; a GIF through all slices if asked."""
    from .cam import class_activation_maps, save_cam_gif, save_cam_overlays  # matplotlib only when asked

    for exam, volume in zip(exams, series):
        cams, scores = class_activation_maps(tm.models[plane], volume, device)
        folder = cam.out_dir / exam.case
        save_cam_overlays(volume, cams, scores, folder, f"{tm.task}-{plane}", top_k=cam.top_k)
        if cam.gif:
            save_cam_gif(volume, cams, scores, folder / f"{tm.task}-{plane}.gif")


# ----------------------------------------------------------------------------- outputs

def competition_rows(table: pd.DataFrame) -> pd.DataFrame | None:
    """The competition's output (abnormal, acl, meniscus ensemble probabilities), or None without all tasks."""
    columns = [f"{t}_{ENSEMBLE}" for t in TASKS]
    if not all(c in table for c in columns):
        return None
    return table[columns]


def predictions_json(table: pd.DataFrame, exams: Sequence[ExamInput], tasks: Sequence[str],
                     task_models: Sequence[TaskModels]) -> dict[str, Any]:
    sources = {e.case: e.sources for e in exams}
    exam_rows = []
    for row in table.to_dict("records"):
        exam_rows.append({
            "case": row["case"],
            "inputs": {p: str(sources[row["case"]][p]) for p in PLANES},
            "probabilities": {t: {c: float(row[f"{t}_{c}"]) for c in (*PLANES, ENSEMBLE)} for t in tasks},
        })
    return {
        "tasks": list(tasks),
        "image_sizes": {tm.task: tm.image_sizes for tm in task_models},
        "exams": exam_rows,
    }


def print_predictions(table: pd.DataFrame, tasks: Sequence[str]) -> None:
    header = f"{'case':<12}{'task':<10}" + "".join(f"{c:>10}" for c in (*PLANES, ENSEMBLE))
    print(header)
    print("-" * len(header))
    for row in table.head(MAX_PRINTED_EXAMS).to_dict("records"):
        for task in tasks:
            cells = "".join(f"{_fmt(row[f'{task}_{c}']):>10}" for c in (*PLANES, ENSEMBLE))
            print(f"{str(row['case']):<12}{task:<10}{cells}")
    if len(table) > MAX_PRINTED_EXAMS:
        print(f"... {len(table) - MAX_PRINTED_EXAMS} more exams in the CSV")


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def write_outputs(cfg: PredictConfig, table: pd.DataFrame, payload: dict[str, Any]) -> list[Path]:
    out = Path(cfg.out)
    written = [out / "predictions.csv", out / "predictions.json"]
    # Full precision: rounding could tie nearly equal probabilities and change an AUC computed from the file.
    atomic_write(written[0], lambda tmp: table.to_csv(tmp, index=False))
    write_json(written[1], payload)
    if cfg.input_csv is not None:
        rows = competition_rows(table)
        if rows is None:
            print("note: competition.csv needs all three tasks; it was not written")
        else:
            written.append(out / "competition.csv")
            atomic_write(written[-1], lambda tmp: rows.to_csv(tmp, index=False, header=False))
    write_json(out / "predict_config.json", plain(cfg))
    write_json(out / "predict_environment.json", environment())
    return written


# ----------------------------------------------------------------------------- the command

def validate_predict_config(cfg: PredictConfig) -> None:
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise MRNetError(f"--tasks {' '.join(unknown)}: choose from {', '.join(TASKS)}")
    if cfg.image_size is not None and cfg.image_size < 64:
        raise MRNetError(f"--image-size {cfg.image_size}: must be at least 64")
    if cfg.cam_top_k < 1:
        raise MRNetError(f"--cam-top-k {cfg.cam_top_k}: must be at least 1")
    if cfg.amp not in AMP_MODES:
        raise MRNetError(f"--amp {cfg.amp}: choose one of {', '.join(AMP_MODES)}")


def run_predict(cfg: PredictConfig) -> pd.DataFrame:
    validate_predict_config(cfg)
    models_dir = Path(cfg.models_dir)
    tasks, skipped = ready_tasks(models_dir, cfg.tasks)
    for line in skipped:
        print(line)
    exams = exams_from_config(cfg)
    converted = check_inputs(exams)
    device = resolve_device(cfg.device)
    amp_dtype = resolve_amp(cfg.amp, device)
    task_models = [load_task_models(models_dir, task, device, cfg.image_size) for task in tasks]
    print(f"predict: {len(exams)} exam(s), tasks {', '.join(tasks)}, device {describe(device)}")
    cam = CamOptions(Path(cfg.cam), cfg.cam_top_k, cfg.cam_gif) if cfg.cam else None
    table = predict_exams(exams, task_models, device, amp_dtype, cfg.max_slices, converted, cam)
    written = write_outputs(cfg, table, predictions_json(table, exams, tasks, task_models))
    print()
    print_predictions(table, tasks)
    print("\nwritten: " + ", ".join(str(p) for p in written) + (f"; heatmaps in {cfg.cam}" if cam else ""))
    return table


def get_args_parser() -> argparse.ArgumentParser:
    d = PredictConfig()
    parser = argparse.ArgumentParser(
        description="Predict abnormal / ACL tear / meniscal tear for new exams with trained models.")
    parser.add_argument("--models-dir", default=d.models_dir, help=f"trained models (default {d.models_dir})")
    source = parser.add_argument_group("input (choose one)")
    for plane in PLANES:
        source.add_argument(f"--{plane}", default=None, metavar="FILE.npy", help=f"the exam's {plane} series")
    source.add_argument("--exam-dir", default=None, metavar="DIR",
                        help="a folder with axial.npy, coronal.npy, sagittal.npy (or DICOM folders axial/ coronal/ sagittal/)")
    source.add_argument("--input-csv", default=None, metavar="FILE",
                        help="the competition's input: a header-less CSV of .npy paths, three rows per case")
    parser.add_argument("--out", default=d.out, help=f"output folder (default {d.out})")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda (default auto)")
    parser.add_argument("--amp", default=d.amp, choices=AMP_MODES)
    parser.add_argument("--image-size", type=int, default=None,
                        help="slice size the models were trained on, for checkpoints that do not record it "
                             f"(default: the checkpoint's, else {DEFAULT_IMAGE_SIZE})")
    parser.add_argument("--max-slices", type=int, default=d.max_slices, help="slices per forward pass")
    parser.add_argument("--cam", default=None, metavar="OUT_DIR", help="write class activation heatmaps here")
    parser.add_argument("--cam-top-k", type=int, default=d.cam_top_k, help="slices per heatmap set (default 3)")
    parser.add_argument("--cam-gif", action="store_true", help="also write an animated GIF through every slice")
    return parser


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    args = get_args_parser().parse_args(argv)
    cfg = PredictConfig(
        models_dir=args.models_dir, axial=args.axial, coronal=args.coronal, sagittal=args.sagittal,
        exam_dir=args.exam_dir, input_csv=args.input_csv, out=args.out, tasks=list(args.tasks),
        device=args.device, amp=args.amp, image_size=args.image_size, max_slices=args.max_slices,
        cam=args.cam, cam_top_k=args.cam_top_k, cam_gif=args.cam_gif,
    )
    return run_predict(cfg)
