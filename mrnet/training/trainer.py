"""Training one per-plane MRNet: the epoch loop reads like the recipe.

train one epoch -> score the selecting split -> step the scheduler -> keep the best ->
stop early -> checkpoint, once per epoch, with everything needed to resume saved after
every epoch. The selecting split is the tuning split carved from train (data/splits.py)
by default, or the public valid split with --select-on valid (the paper's protocol).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import SELECT_ON, layout
from ..checkpoint import load_checkpoint
from ..data.dataset import SplitData, check_and_load, find_unlabelled_series, label_path, parse_labels
from ..data.fingerprint import describe_changes, fingerprint_of
from ..data.splits import TuneSplit, check_against_file, check_both_classes, tune_split_for, write_tune_cases
from ..device import describe, eval_max_slices, grad_scaler, resolve_amp
from ..errors import CheckpointError, DataError, MRNetError
from ..evaluation.metrics import auc_or_nan, has_both_classes
from ..files import check_writable, remove_temporary_leftovers
from ..lock import RunLock
from ..models import ModelArgs, PlaneModel, build_model, memory_format
from ..runinfo import save_run_info
from . import distributed
from .config import ALL_TASKS, TrainConfig, merge_resumed_config, validate_config
from .engine import epoch_augment, shuffled_order, train_one_epoch, validate
from .log import log_epoch, open_tensorboard, print_final_table, write_metrics_csv, write_predictions
from .loss import pos_weights, task_losses
from .multitask import check_not_mixed, mark_views, per_task_aucs, save_task_views
from .state import (
    RunState,
    plateau_mode,
    plateau_signal,
    save_best,
    save_last,
    state_from_checkpoint,
    summary_from_state,
)


@dataclass
class Exams:
    """Exams of one split (or part of it) of the run's plane, in case order, with the task's labels."""

    cases: list[str]
    series: list[np.ndarray]
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


def fit(run: Run) -> None:
    """The recipe, once per epoch: train, score the selecting split, schedule, keep the best, stop early, checkpoint."""
    cfg, state = run.cfg, run.state
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        started = time.perf_counter()
        train_loss = train_epoch(run, epoch)
        check_finite(run, epoch, "training loss", train_loss)
        scored = validate(
            run.model,
            run.select.series,
            run.select.labels,
            run.pos_weight,
            run.device,
            run.amp_dtype,
            eval_max_slices(cfg.eval_max_slices, run.device),
            run.ranks,
            balanced=balanced_tasks(cfg),
        )
        check_finite(run, epoch, f"{state.select_split} loss", scored["loss"])
        row = epoch_row(run, epoch, train_loss, scored)
        state.record(row)
        if cfg.task == ALL_TASKS:
            mark_views(state.history, cfg.tasks, state.select_split, cfg.view_epochs)
        run.scheduler.step(plateau_signal(state, row, cfg.plateau_on))
        state.check_stop(cfg.patience, cfg.epochs)
        if run.ranks.is_main:
            log_epoch(cfg, row, time.perf_counter() - started, run.writer)
            save_epoch(run, row, scored["probs"])
        if state.finished:
            break


def epoch_row(run: Run, epoch: int, train_loss: float, scored: dict[str, Any]) -> dict[str, Any]:
    """One line of metrics.csv: the losses, the selecting split's AUC (per task too, for a multi-task run), the lr."""
    state = run.state
    labels, probs = run.select.labels, scored["probs"]
    if labels.ndim == 2:
        aucs = per_task_aucs(labels, probs, run.cfg.tasks, auc_or_nan, state.select_split)
        losses = task_losses(scored["logits"], labels, run.pos_weight)
        aucs.update({f"{state.key('loss')}_{task}": float(v) for task, v in zip(run.cfg.tasks, losses, strict=True)})
    else:
        aucs = {state.key("auc"): auc_or_nan(labels, probs)}
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        state.key("loss"): scored["loss"],
        state.key("auc"): aucs.pop(state.key("auc")),
        "lr": run.optimizer.param_groups[0]["lr"],
        **aucs,
    }


def check_finite(run: Run, epoch: int, what: str, value: float) -> None:
    """Stop a diverged run before it writes anything of the bad epoch: the last good checkpoints stay."""
    bad = what if not math.isfinite(value) else None
    if bad is None and what != "training loss":
        bad = next((f"weight {name}" for name, p in run.model.named_parameters() if not p.isfinite().all()), None)
    if bad is None:
        return
    kept = f"last.pt and best.pt of epoch {run.state.epoch} are kept" if run.state.epoch else "no checkpoint was saved"
    raise MRNetError(
        f"{run.cfg.name}: training diverged in epoch {epoch} ({bad} is {value if bad == what else 'not finite'}); "
        f"{kept}. Start over with a lower --lr (this run used {run.cfg.lr:g}) and --overwrite"
    )


def train_epoch(run: Run, epoch: int) -> float:
    """One epoch over this rank's share of the shuffled exams; the mean loss over all ranks."""
    cfg, ranks = run.cfg, run.ranks
    stats = train_one_epoch(
        run.net,
        run.optimizer,
        run.train.series,
        run.train.labels,
        order=distributed.shard(shuffled_order(len(run.train.series), cfg.seed, epoch), ranks),
        augment=epoch_augment(cfg.seed, epoch, ranks.rank) if cfg.augment else None,
        pos_weight=run.pos_weight,
        device=run.device,
        amp_dtype=run.amp_dtype,
        scaler=run.scaler,
        exams_per_step=cfg.exams_per_step,
        progress=f"{cfg.name} epoch {epoch}" if ranks.is_main else None,
        balanced=balanced_tasks(cfg),
    )
    return distributed.mean_over_ranks(stats["loss_sum"], stats["exams"], ranks)


def balanced_tasks(cfg: TrainConfig) -> bool:
    """A multi-task run whose task losses are scaled to the same total weight (--task-weights balanced)."""
    return cfg.task == ALL_TASKS and cfg.task_weights == "balanced"


def save_epoch(run: Run, row: dict[str, Any], probs: np.ndarray) -> None:
    """The best epoch's predictions and weights, then the resume state, then metrics.csv.

    Predictions before weights: a kill between leaves last.pt pointing at the previous epoch,
    which is replayed on resume and rewrites both. metrics.csv last: it is rebuilt from the
    checkpoint's history on resume.
    """
    cfg, state = run.cfg, run.state
    if cfg.task == ALL_TASKS:
        save_task_views(cfg, run.model, state, row, run.select.cases, run.select.labels, probs)
    elif row["best"]:
        path = layout.selection_predictions(cfg.models_dir, cfg.task, cfg.plane, state.select_split)
        write_predictions(path, run.select.cases, run.select.labels, probs)
    if row["best"]:
        save_best(cfg, run.model, state)
    save_last(cfg, run.model, run.optimizer, run.scheduler, run.scaler, state)
    write_metrics_csv(cfg.run_dir() / layout.METRICS, state.history, state.select_split)


# ----------------------------------------------------------------------------- setting a run up


def train(
    cfg: TrainConfig,
    data: dict[tuple[str, str], SplitData] | None = None,
    explicit: set[str] | None = None,
    keep_model: bool = False,
) -> dict[str, Any]:
    """Train one model; returns a summary (best epoch, AUC, paths).

    `data` lets a sweep share series already loaded; `explicit` names the options the user
    set (a resumed run keeps its recipe otherwise); `keep_model` adds the final weights to
    the summary. Under torchrun each rank calls this and only rank 0 writes.
    """
    validate_config(cfg)
    ranks, device = distributed.setup(cfg.device)
    try:
        summary = _train(cfg, data, explicit or set(), ranks, device, keep_model)
    except BaseException:
        distributed.abandon(ranks)
        raise
    distributed.teardown(ranks)
    return summary


def _train(
    cfg: TrainConfig, data, explicit: set[str], ranks: distributed.Ranks, device: torch.device, keep_model: bool
) -> dict[str, Any]:
    if not cfg.resume:  # a tuning split that cannot serve is refused before anything is written
        try:
            tune = tune_split_for(cfg.data_dir, cfg.tune_fraction, cfg.split_seed)
        except DataError:
            tune = None  # the data checks below report it, with every other problem
        if tune is not None:
            check_both_classes(tune, cfg.tasks)
    lock = RunLock(cfg.run_dir(), layout.RUN_LOCK, "training run") if ranks.is_main else None
    if lock is not None:
        lock.acquire()  # before looking at the folder: a second run on it is refused, not interleaved
    try:
        return _train_locked(cfg, data, explicit, ranks, device, keep_model)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(
    cfg: TrainConfig, data, explicit: set[str], ranks: distributed.Ranks, device: torch.device, keep_model: bool
) -> dict[str, Any]:
    say = print if ranks.is_main else (lambda *a, **k: None)
    resumed = prepare_run_dir(cfg)
    distributed.barrier(ranks)  # every rank has read the run folder before rank 0 writes to it
    if resumed is not None:
        cfg = merge_resumed_config(cfg, resumed["config"], explicit)
        validate_config(cfg)
        if resumed.get("finished") and cfg.epochs <= resumed["epoch"]:
            say(f"{cfg.name}: already finished at epoch {resumed['epoch']}; nothing to do")
            return summary_from_state(cfg, state_from_checkpoint(resumed))

    data = data if data is not None else load_training_data(cfg)
    tune = tune_split_for(cfg.data_dir, cfg.tune_fraction, cfg.split_seed)
    check_both_classes(tune, cfg.tasks)
    write_file = check_against_file(cfg.models_dir, tune)  # on every rank, before rank 0 writes anything
    distributed.barrier(ranks)
    run = build_run(cfg, data, tune, resumed, ranks, device)
    if ranks.is_main and write_file:
        write_tune_cases(cfg.models_dir, tune)
    split = run.state.select_split
    say(
        f"{cfg.name}: {len(run.train.cases)} train exams ({len(tune.cases)} more held out as the tuning split), "
        f"best epoch chosen on {split} ({len(run.select.cases)} exams, {cfg.plateau_on} drives the LR schedule), "
        f"{describe_labels(cfg, run)}, device {describe(device)}"
        + (f", {ranks.world_size} data-parallel ranks" if ranks.distributed else "")
    )
    if tune.pooled:
        say(f"{cfg.name}: note: label combinations {', '.join(tune.pooled)} are too rare to stratify alone; pooled")
    if run.state.monitor == "loss":
        say(
            f"{cfg.name}: warning: the {split} split has only one class for {describe_one_class(cfg, run)}, "
            f"so AUC is undefined; the best epoch is chosen by {split} loss instead"
        )
    if resumed is not None:
        say(f"{cfg.name}: resuming after epoch {run.state.epoch} (best so far: epoch {run.state.best_epoch})")
    if ranks.is_main:
        if resumed is None:
            clear_earlier_run(cfg)
        save_run_info(cfg.run_dir(), cfg, describe(device))
        run.writer = open_tensorboard(cfg, run.state.epoch)
    try:
        fit(run)
    finally:
        if run.writer is not None:
            run.writer.close()
    summary = summary_from_state(cfg, run.state)
    if ranks.is_main:
        print_final_table(cfg, summary)
    if keep_model:
        summary["model_state"] = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    return summary


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
        return load_checkpoint(last, cfg.task, cfg.plane)
    if last.exists() and not cfg.overwrite:
        raise MRNetError(
            f"{cfg.run_dir()} already holds a run; continue it with --resume or start over with --overwrite"
        )
    return None


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
    if ranks.is_main:
        check_writable(cfg.run_dir())
        warn_unlabelled(cfg)
        if resumed is not None and remove_temporary_leftovers(cfg.run_dir()):
            print(f"{cfg.name}: removed the partial file(s) of a write the interrupted run did not finish")

    torch.manual_seed(cfg.seed)  # fixes the initialisation of every layer not loaded from ImageNet
    model = build_model(cfg.pretrained, cfg.weights, ModelArgs(**cfg.model_args())).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=memory_format(model))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
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
