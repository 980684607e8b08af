"""Setting a training run up: its exams, its folder (fresh, resumed or refused), and the Run.

Everything here happens once, before the first epoch; trainer.py holds the epoch loop.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import SELECT_ON, layout
from ..checkpoint import load_checkpoint
from ..data.dataset import SplitData, check_and_load, find_unlabelled_series, label_path, parse_labels
from ..data.fingerprint import describe_changes, fingerprint_of
from ..data.splits import TuneSplit
from ..device import grad_scaler, resolve_amp
from ..errors import CheckpointError, MRNetError
from ..files import check_writable, remove_temporary_leftovers
from ..models import ModelArgs, PlaneModel, build_model, memory_format
from ..stats.auc import has_both_classes
from . import distributed
from .config import ALL_TASKS, RECIPE_FIELDS, TrainConfig
from .loss import pos_weights
from .multitask import check_not_mixed
from .state import RunState, plateau_mode, state_from_checkpoint

FUSED_ADAM_DEVICES = ("cpu", "cuda")


def adam(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """The recipe's Adam, as one fused kernel per step where torch has one (CPU and CUDA).

    The same update as torch's CPU default (a loop over the parameters), rounded differently
    in the last bits; a demo step ran 1.4x faster with it on one CPU core (docs/speed.md, 'Fused Adam').
    """
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=device.type in FUSED_ADAM_DEVICES)


@dataclass
class Exams:
    """Exams of one split (or part of it) of the run's plane, in case order, with the task's labels."""

    cases: list[str]
    series: Sequence[np.ndarray | torch.Tensor]  # uint8 (s, H, W); fit() stages the training ones on the device
    labels: np.ndarray

    @classmethod
    def of(cls, split: SplitData, tasks: tuple[str, ...], multitask: bool, cases: list[str] | None = None) -> Exams:
        """The split's exams, or only `cases` of them; labels (n,) for one task, (n, tasks) for a multi-task run."""
        cases = list(split.cases) if cases is None else cases
        index = {case: i for i, case in enumerate(split.cases)}
        rows = [index[c] for c in cases]
        if multitask:
            labels = np.stack([split.labels_for(t) for t in tasks], axis=1)[rows]
        else:
            labels = np.asarray(split.labels_for(tasks[0]))[rows]
        return cls(cases, [split.series[c] for c in cases], labels.astype(np.int64))


@dataclass
class Run:
    """Everything one training run works with, built once before the first epoch."""

    cfg: TrainConfig
    model: PlaneModel
    net: torch.nn.Module  # the model, wrapped for data parallelism under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    state: RunState
    train: Exams  # the exams trained on: the train split without the tuning exams
    select: Exams  # the exams that pick the best epoch: the tuning split, or valid
    pos_weight: float | np.ndarray  # one per task for a multi-task run
    device: torch.device
    amp_dtype: torch.dtype | None
    ranks: distributed.Ranks
    writer: Any = None


def load_training_data(cfg: TrainConfig) -> dict[tuple[str, str], SplitData]:
    return check_and_load(cfg.data_dir, tasks=cfg.tasks, planes=(cfg.plane,))


def clear_earlier_run(cfg: TrainConfig) -> None:
    """A fresh start (--overwrite) removes what the earlier run left that this one might not rewrite."""
    shutil.rmtree(layout.tensorboard_dir(cfg.models_dir, cfg.task, cfg.plane), ignore_errors=True)
    (cfg.run_dir() / layout.BEST).unlink(missing_ok=True)
    for split in SELECT_ON:
        layout.selection_predictions(cfg.models_dir, cfg.task, cfg.plane, split).unlink(missing_ok=True)


def check_same_data(cfg: TrainConfig, saved: dict[str, Any] | None, current: dict[str, Any], action: str) -> None:
    """Refuse to continue a model on other data than it was trained on, naming what changed."""
    changes = describe_changes(saved, current)
    if changes:
        raise MRNetError(
            f"{action}: the data in {cfg.data_dir} differ from what {cfg.run_dir()} was trained on: "
            + "; ".join(changes)
            + ". Point --data-dir at the original data, or start over with --overwrite"
        )


def prepare_run_dir(cfg: TrainConfig) -> dict[str, Any] | None:
    """Decide between a fresh start and a resume; never silently replace an earlier run."""
    check_not_mixed(cfg)
    last = cfg.run_dir() / layout.LAST
    if cfg.resume:
        if not last.exists():
            raise MRNetError(f"--resume: nothing to resume in {cfg.run_dir()} (no last.pt); start without --resume")
        resumed = load_checkpoint(last, cfg.task, cfg.plane)
        check_one_run(cfg, resumed)
        return resumed
    if last.exists() and not cfg.overwrite:
        raise MRNetError(
            f"{cfg.run_dir()} already holds a run; continue it with --resume or start over with --overwrite"
        )
    return None


def check_one_run(cfg: TrainConfig, resumed: dict[str, Any]) -> None:
    """Refuse a last.pt whose recipe differs from the folder's best.pt or config.json: a file copied in from
    another run would otherwise continue as that run and leave the other run's best.pt to be used."""
    recipe = {name: resumed.get("config", {}).get(name) for name in RECIPE_FIELDS}
    others = {}
    best = cfg.run_dir() / layout.BEST
    if best.exists():
        others[layout.BEST] = load_checkpoint(best, cfg.task, cfg.plane).get("config", {})
    saved_config = cfg.run_dir() / "config.json"
    if saved_config.is_file():
        # An unreadable config.json is rewritten by this run; the checkpoints decide.
        with contextlib.suppress(OSError, ValueError):
            others["config.json"] = json.loads(saved_config.read_text())
    for name, other in others.items():
        differ = [
            f"{field} {recipe[field]!r} against {other[field]!r}"
            for field in RECIPE_FIELDS
            if field in other and recipe[field] is not None and other[field] != recipe[field]
        ]
        if differ:
            raise MRNetError(
                f"--resume: {cfg.run_dir() / layout.LAST} and {name} come from different runs ({'; '.join(differ)}); "
                "put back the run's own last.pt, or start over with --overwrite"
            )


def build_run(
    cfg: TrainConfig,
    data: dict[tuple[str, str], SplitData],
    tune: TuneSplit,
    resumed: dict[str, Any] | None,
    ranks: distributed.Ranks,
    device: torch.device,
) -> Run:
    """Model, optimiser, scheduler, scaler and state: fresh from the seed, or as the checkpoint left them."""
    train_split, valid_split = data[("train", cfg.plane)], data[("valid", cfg.plane)]
    multitask = cfg.task == ALL_TASKS
    train_exams = Exams.of(train_split, cfg.tasks, multitask, tune.training_cases(train_split.cases))
    if cfg.select_on == "tune":
        select_exams = Exams.of(train_split, cfg.tasks, multitask, list(tune.cases))
    else:
        select_exams = Exams.of(valid_split, cfg.tasks, multitask)
    fingerprint = fingerprint_of({"train": train_split, "valid": valid_split}, cfg.task)
    if resumed is not None:
        check_same_data(cfg, resumed.get("data"), fingerprint, "--resume")
    pos_weight = pos_weights(train_exams.labels, cfg.tasks)
    amp_dtype = resolve_amp(cfg.amp, device)
    with distributed.stop_together(ranks):  # before the model is wrapped: DDP's first broadcast would wait
        if ranks.is_main:
            check_writable(cfg.run_dir())
            warn_unlabelled(cfg)
            if resumed is not None and remove_temporary_leftovers(cfg.run_dir()):
                print(f"{cfg.name}: removed the partial file(s) of a write the interrupted run did not finish")

    torch.manual_seed(cfg.seed)  # fixes the initialisation of every layer not loaded from ImageNet
    model = build_model(cfg.pretrained, cfg.weights, ModelArgs(**cfg.model_args())).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=memory_format(model))
    if resumed is None and cfg.init_from:
        load_initial_weights(cfg, model)
    optimizer = adam(model.parameters(), cfg.lr, cfg.weight_decay, device)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=plateau_mode(cfg.plateau_on), factor=cfg.lr_factor, patience=cfg.lr_patience
    )
    scaler = grad_scaler(device, amp_dtype)
    state = RunState(
        select_split=cfg.select_on, monitor="auc" if not one_class_tasks(cfg, select_exams.labels) else "loss"
    )
    if resumed is not None:
        try:
            model.load_state_dict(resumed["model"])
            optimizer.load_state_dict(resumed["optimizer"])
            scheduler.load_state_dict(resumed["scheduler"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(
                f"{cfg.run_dir() / layout.LAST} does not hold this model's weights ({str(err).splitlines()[0]})"
            ) from None
        if resumed.get("scaler"):
            scaler.load_state_dict(resumed["scaler"])
        state = state_from_checkpoint(resumed)
        torch.set_rng_state(resumed["torch_rng"])
        state.finished = False
    state.image_size = most_common_size(train_split)
    state.data = fingerprint
    net = distributed.wrap(model, device, ranks)
    return Run(
        cfg,
        model,
        net,
        optimizer,
        scheduler,
        scaler,
        state,
        train_exams,
        select_exams,
        pos_weight,
        device,
        amp_dtype,
        ranks,
    )


def init_checkpoint(cfg: TrainConfig) -> Path:
    """--init-from as a file: the checkpoint itself, or the same task and plane's best.pt in a models folder."""
    source = Path(str(cfg.init_from))
    return layout.best_checkpoint(source, cfg.task, cfg.plane) if source.is_dir() else source


def load_initial_weights(cfg: TrainConfig, model: PlaneModel) -> None:
    """Start from a trained model (retraining on another cohort): same model arguments, else a clear refusal.

    The path stays in the run's config (config.json and every checkpoint), so a model says where it started.
    """
    path = init_checkpoint(cfg)
    source = load_checkpoint(path)
    wanted, found = model.model_args(), source.get("model_args") or {}
    if found != wanted:
        differ = ", ".join(
            f"{k} {found.get(k)!r} there, {wanted[k]!r} here" for k in wanted if found.get(k) != wanted[k]
        )
        raise CheckpointError(f"--init-from {path}: a model with other arguments ({differ}); it cannot start this one")
    try:
        model.load_state_dict(source["model"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"--init-from {path}: its weights do not fit ({str(err).splitlines()[0]})") from None


def most_common_size(split: SplitData) -> int:
    sizes = pd.Series([s.shape[-1] for s in split.series.values()])
    return int(sizes.mode().iloc[0]) if len(sizes) else 256


def one_class_tasks(cfg: TrainConfig, labels: np.ndarray) -> list[str]:
    """The tasks whose labels on the selecting split hold a single class (no AUC for them)."""
    columns = labels.reshape(len(labels), -1).T  # one row per task
    return [task for task, column in zip(cfg.tasks, columns, strict=True) if not has_both_classes(column)]


def describe_one_class(cfg: TrainConfig, run: Run) -> str:
    return ", ".join(one_class_tasks(cfg, run.select.labels))


def describe_labels(cfg: TrainConfig, run: Run) -> str:
    labels, weights = run.train.labels.reshape(len(run.train.labels), -1), np.atleast_1d(run.pos_weight)
    if len(cfg.tasks) == 1:
        return f"{int(labels.sum())} train positives, pos_weight {weights[0]:.3f}"
    parts = [f"{t} {int(labels[:, i].sum())} ({weights[i]:.3f})" for i, t in enumerate(cfg.tasks)]
    return "train positives (pos_weight): " + ", ".join(parts)


def warn_unlabelled(cfg: TrainConfig) -> None:
    for split in ("train", "valid"):
        table, _ = parse_labels(label_path(cfg.data_dir, split, cfg.tasks[0]))
        extra = find_unlabelled_series(cfg.data_dir, split, cfg.plane, list(table["case"]))
        if extra:
            print(
                f"{cfg.name}: note: {len(extra)} {split}/{cfg.plane} series have no label and are ignored "
                f"(e.g. {', '.join(extra[:5])})"
            )
