"""Scoring exams with trained plane models: one batched path for validation, stacking, evaluation and prediction.

Everything that turns series into probabilities goes through predict_logits with the shared
preprocessing, so a probability is the same whichever command computed it. Only numbers come
out: the heatmap files of predict --cam are written by cam.write_cams.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import LOGIT, PLANES, layout
from .checkpoint import read_checkpoint
from .data.dataset import check_and_load
from .data.exams import ExamInput, read_series
from .data.series import MAX_SIZE, MIN_SIZE, resize_series
from .data.transforms import preprocess
from .device import Scoring, autocast, describe, to_device
from .errors import CheckpointError, MRNetError
from .invocation import command
from .lock import lock_holder
from .models import MRNet, PlaneModel, model_for_inference
from .models.pooling import GatedAttentionPool

DEFAULT_IMAGE_SIZE = 256  # MRNet-v1.0's slice size, assumed for checkpoints that do not record theirs


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
    model: PlaneModel,
    series: Sequence[np.ndarray | torch.Tensor],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    max_slices: int = 512,
    progress: str | None = None,
) -> np.ndarray:
    """Logits (n,) for every series ((n, tasks) for a multi-task model), several exams per forward pass.

    Each exam is pooled inside its own slices, so the numbers match one
    exam at a time; batching only changes how many slices the convolutions see at once.
    """
    model = getattr(model, "module", model)  # inference needs no gradient sync across ranks
    model.eval()
    outputs: list[torch.Tensor] = []
    groups = list(batches_by_slices([s.shape[0] for s in series], max_slices))
    for group in tqdm(groups, desc=progress, leave=False, disable=progress_off(progress), unit="batch"):
        views = [preprocess(to_device(series[i], device)) for i in group]
        with autocast(device, amp_dtype):
            logits = model(torch.cat(views), [v.shape[0] for v in views])
        outputs.append(logits.float())
    if not outputs:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(outputs).double().cpu().numpy()


@torch.inference_mode()
def slice_attention(model: PlaneModel, series: np.ndarray, device: torch.device) -> np.ndarray | None:
    """(s,) attention weights of one series' slices (they sum to 1): which slices decided; None unless
    the model pools slices by attention."""
    if not isinstance(getattr(model, "slice_pool", None), GatedAttentionPool):
        return None
    weights = model.slice_weights(preprocess(to_device(series, device))) if isinstance(model, MRNet) else None
    return None if weights is None else weights.double().cpu().numpy()


def require_finite(logits: np.ndarray, model: str, cases: Sequence[str]) -> None:
    """Stop where a model gave NaN or infinity: such a score would read as a confident negative call."""
    bad = ~np.isfinite(logits).reshape(len(logits), -1).all(axis=1)
    if bad.any():
        first = cases[int(np.flatnonzero(bad)[0])]
        raise MRNetError(
            f"the {model} model gave NaN or infinite logits for {int(bad.sum())} of {len(logits)} exam(s) "
            f"(first: {first}); nothing is reported. Its weights or the input are broken (under --amp fp16 an "
            "overflow does this: try --amp off)"
        )


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def progress_off(progress: str | None) -> bool | None:
    """No bar without a label; otherwise tqdm's own rule (shown on terminals, hidden in logs)."""
    return True if progress is None else None


# ----------------------------------------------------------------------------- trained models


@dataclass
class TaskModels:
    """The three plane models of a task and the slice size each was trained on."""

    task: str
    models: dict[str, PlaneModel]
    image_sizes: dict[str, int]


@dataclass(frozen=True)
class LoadedModel:
    """A plane model as one command uses it throughout: built from the bytes whose sha256 it carries."""

    model: PlaneModel
    image_size: int
    sha256: str
    config: dict[str, Any]  # the training options the checkpoint records


class PlaneModels:
    """Every plane model a command uses, each read once: its bytes hashed, checked and built into the model.

    Scoring, heatmaps and viewer pages of one command all take their model from here, so a
    best.pt replaced while the command runs (a resumed training on the same folder) is
    never mixed in: what was hashed is what was built, and it is built once. A folder whose
    training run holds its lock is refused, since its best.pt may change at any epoch.
    """

    def __init__(self, models_dir: str | Path, device: torch.device, image_size: int | None = None) -> None:
        self.models_dir = Path(models_dir)
        self.device = device
        self.image_size = image_size
        self._loaded: dict[tuple[str, str], LoadedModel] = {}

    def get(self, task: str, plane: str) -> LoadedModel:
        key = (task, plane)
        if key not in self._loaded:
            self._loaded[key] = self._load(task, plane)
        return self._loaded[key]

    def task_models(self, task: str, planes: Sequence[str] = PLANES) -> TaskModels:
        loaded = {plane: self.get(task, plane) for plane in planes}
        return TaskModels(task, {p: m.model for p, m in loaded.items()}, {p: m.image_size for p, m in loaded.items()})

    def hashes(self, task: str, planes: Sequence[str] = PLANES) -> dict[str, str]:
        """plane -> sha256 of the bytes each of the task's models was built from (loading them if need be)."""
        return {plane: self.get(task, plane).sha256 for plane in planes}

    def check_fitted(self, task: str, fitted: Mapping[str, str], source: Path) -> None:
        """Refuse a stacker (`source`) fitted on other plane models than the ones this command loaded."""
        changed = [
            str(layout.best_checkpoint(self.models_dir, task, plane))
            for plane, digest in self.hashes(task, list(fitted)).items()
            if fitted.get(plane) != digest
        ]
        if changed:
            raise MRNetError(
                f"{source} was fitted on other plane models than the ones now in {self.models_dir}: "
                f"{', '.join(changed)} changed since (retrained?); refit the ensembles with {command('train-meta')}"
            )

    def _load(self, task: str, plane: str) -> LoadedModel:
        path = layout.best_checkpoint(self.models_dir, task, plane)
        refuse_if_training(self.models_dir, task, plane)
        ckpt, digest = read_checkpoint(path, task, plane)
        try:
            saved = ckpt.get("image_size")
            size = self.image_size or checked_image_size(DEFAULT_IMAGE_SIZE if saved is None else saved)
            model = model_for_inference(ckpt.get("model") or {}, self.device, ckpt.get("model_args"))
        except CheckpointError as err:
            raise CheckpointError(f"{path}: {err}") from None
        config = ckpt.get("config")
        return LoadedModel(model, size, digest, config if isinstance(config, dict) else {})


def refuse_if_training(models_dir: Path, task: str, plane: str) -> None:
    """Stop where a training run holds the folder a plane's best.pt comes from: it may be replaced at any epoch.

    A multi-task run (all-<plane>) writes the per-task views' best.pt too, so its lock counts.
    """
    for folder in (layout.model_dir(models_dir, task, plane), layout.model_dir(models_dir, "all", plane)):
        pid = lock_holder(folder, layout.RUN_LOCK)
        if pid is not None:
            raise MRNetError(
                f"{folder} is being trained by PID {pid}: its best.pt may change while it is read; wait for the "
                "training to finish (or stop it), then try again"
            )


def load_plane_model(
    models_dir: str | Path, task: str, plane: str, device: torch.device, image_size: int | None = None
) -> tuple[PlaneModel, int]:
    """A plane's best checkpoint as an eval-mode model, and the slice size it was trained on."""
    loaded = PlaneModels(models_dir, device, image_size).get(task, plane)
    return loaded.model, loaded.image_size


def checked_image_size(saved: Any) -> int:
    """The slice size a checkpoint records, refused unless a whole number in the range series may have."""
    if type(saved) is not int or not MIN_SIZE <= saved <= MAX_SIZE:
        raise CheckpointError(f"image_size {saved!r} is not a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}")
    return saved


def load_task_models(models_dir: Path, task: str, device: torch.device, image_size: int | None) -> TaskModels:
    return PlaneModels(models_dir, device, image_size).task_models(task)


def fit_to_size(series: np.ndarray, size: int, source: Path, warned: set[tuple[Path, int]]) -> np.ndarray:
    """Resize a series to the slice size its model was trained on, warning once per file and size."""
    height = series.shape[-1]
    if height == size:
        return series
    if (source, size) not in warned:
        warned.add((source, size))
        print(
            f"warning: {source}: slices are {height}x{height} but the model was trained on {size}x{size}; "
            f"resized bilinearly to {size}x{size}",
            file=sys.stderr,
        )
    return resize_series(series, size)


# ----------------------------------------------------------------------------- a labelled split


def plane_probabilities(
    data_dir: str | Path,
    models_dir: str | Path,
    tasks: Sequence[str],
    splits: Sequence[str],
    scoring: Scoring,
    cases: Mapping[str, Sequence[str]] | None = None,
    models: PlaneModels | None = None,
    planes: Sequence[str] = PLANES,
) -> dict[tuple[str, str], pd.DataFrame]:
    """(task, split) -> table case, label, then per plane (axial, coronal, sagittal, or those of `planes`) its
    probabilities, then their float64 logits as axial_logit, ... (what the stacker takes).

    `cases` limits a split to some of its exams (the tuning split is part of train). Works
    plane by plane so only one plane's series are in memory, and each series is read once
    for all tasks. Series are resized to the slice size each model was trained on, as
    prediction does (fit_to_size), so both give the same probability for an exam.

    `models`: the command's loaded models, to be reused after scoring (heatmaps, the hashes
    a stacker records); without it each plane's models are loaded here and let go after use.
    """
    check_and_load(data_dir, tasks, planes, splits, load=False)  # every problem up front, cheaply
    print(f"ensemble: computing per-plane probabilities on {', '.join(splits)} with {describe(scoring.device)}")
    cases = cases or {}
    columns: dict[tuple[str, str], list[pd.DataFrame]] = {(t, s): [] for t in tasks for s in splits}
    warned: set[tuple[Path, int]] = set()
    for plane in planes:
        data = check_and_load(data_dir, tasks, (plane,), splits)
        store = models if models is not None else PlaneModels(models_dir, scoring.device)
        loaded = {task: store.get(task, plane) for task in tasks}
        for split in splits:
            split_data = data[(split, plane)]
            chosen = list(cases.get(split, split_data.cases))
            unknown = sorted(set(chosen) - set(split_data.cases))
            if unknown:
                raise MRNetError(f"{split}: no exams {', '.join(unknown[:8])} in {data_dir}")
            position = {case: i for i, case in enumerate(split_data.cases)}
            raw = [split_data.series[c] for c in chosen]
            for task in tasks:
                model, size = loaded[task].model, loaded[task].image_size
                series = [fit_to_size(s, size, Path(split, plane), warned) for s in raw]
                labels = split_data.labels_for(task)[[position[c] for c in chosen]]
                logits = predict_logits(model, series, *scoring.args(), progress=f"{task}-{plane} {split}")
                require_finite(logits, f"{task}-{plane}", chosen)
                scored = {plane: sigmoid(logits), f"{plane}{LOGIT}": logits}
                columns[(task, split)].append(pd.DataFrame({"case": chosen, "label": labels, **scored}))
        del data, loaded
    order = ["case", "label", *planes, *(f"{plane}{LOGIT}" for plane in planes)]
    return {key: merge_on_case(frames)[order] for key, frames in columns.items()}


def merge_on_case(frames: list[pd.DataFrame]) -> pd.DataFrame:
    merged = frames[0]
    for frame in frames[1:]:
        merged = merged.merge(frame, on=["case", "label"], how="inner", validate="one_to_one")
    if len(merged) != len(frames[0]):
        raise MRNetError("per-plane predictions cover different cases; check the label files")
    return merged.sort_values("case").reset_index(drop=True)


# ----------------------------------------------------------------------------- new exams


def predict_exams(
    exams: Sequence[ExamInput],
    task_models: Sequence[TaskModels],
    scoring: Scoring,
    converted: dict[tuple[Path, str], np.ndarray] | None = None,
    attention: dict[str, dict[str, dict[str, list[float]]]] | None = None,
) -> pd.DataFrame:
    """One row per exam: `case`, each task's `{task}_{plane}` probabilities (the stackers come after), then
    their float64 logits `{task}_{plane}_logit` (what the stackers take).

    `attention`, when given, is filled with case -> task -> plane -> per-slice attention
    weights for the models that pool slices by attention.

    Plane by plane, so only one plane's series are held in memory; every task's model for
    that plane scores all exams in batches.
    """
    converted = converted or {}
    table = pd.DataFrame({"case": [e.case for e in exams]})
    warned: set[tuple[Path, int]] = set()
    planes = [p for p in PLANES if all(p in tm.models for tm in task_models)]  # the planes the models were loaded for
    for plane in planes:
        raw = [exam_series(e, plane, converted) for e in exams]
        for tm in task_models:
            size = tm.image_sizes[plane]
            series = [fit_to_size(s, size, e.sources[plane], warned) for s, e in zip(raw, exams, strict=True)]
            logits = predict_logits(tm.models[plane], series, *scoring.args())
            require_finite(logits, f"{tm.task}-{plane}", [e.case for e in exams])
            table[f"{tm.task}_{plane}"] = sigmoid(logits)
            table[f"{tm.task}_{plane}{LOGIT}"] = logits
            if attention is not None:
                for exam, volume in zip(exams, series, strict=True):
                    weights = slice_attention(tm.models[plane], volume, scoring.device)
                    if weights is not None:
                        attention.setdefault(exam.case, {}).setdefault(tm.task, {})[plane] = weights.tolist()
        del raw
    probabilities = [f"{tm.task}_{plane}" for tm in task_models for plane in planes]
    return table[["case", *probabilities, *(f"{c}{LOGIT}" for c in probabilities)]]


def exam_series(exam: ExamInput, plane: str, converted: dict[tuple[Path, str], np.ndarray]) -> np.ndarray:
    """An exam's series for a plane: converted already (DICOM), else read from its .npy file."""
    source = exam.sources[plane]
    if (source, plane) in converted:
        return converted[(source, plane)]
    return read_series(source, plane)[0]
