"""Training one per-plane MRNet: the epoch loop reads like the recipe.

train one epoch -> score the selecting split -> step the scheduler -> keep the best ->
stop early -> checkpoint, once per epoch, with everything needed to resume saved after
every epoch. The selecting split is the tuning split carved from train (data/splits.py)
by default, or the public valid split with --select-on valid (the paper's protocol).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .. import layout
from ..data.dataset import SplitData
from ..data.splits import check_against_file, check_both_classes, tune_split_for, write_tune_cases
from ..device import describe, eval_max_slices, stage_series
from ..errors import DataError, MRNetError
from ..lock import RunLock
from ..runinfo import save_run_info
from ..stats.auc import auc_or_nan
from . import distributed
from .config import ALL_TASKS, TrainConfig, merge_resumed_config, validate_config
from .engine import ValidationResult, epoch_augment, shuffled_order, train_one_epoch, validate
from .log import log_epoch, open_tensorboard, print_final_table, write_metrics_csv, write_predictions
from .loss import task_losses, task_scales
from .multitask import mark_views, per_task_aucs, save_task_views
from .setup import (
    Run,
    build_run,
    clear_earlier_run,
    describe_labels,
    describe_one_class,
    load_training_data,
    prepare_run_dir,
)
from .state import (
    TrainResult,
    plateau_signal,
    save_best,
    save_last,
    state_from_checkpoint,
    summary_from_state,
)


def fit(run: Run) -> None:
    """The recipe, once per epoch: train, score the selecting split, schedule, keep the best, stop early, checkpoint."""
    cfg, state = run.cfg, run.state
    run.train = replace(run.train, series=stage_series(run.train.series, run.device))  # once: on the GPU if it fits
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
            task_weights=task_weights(cfg, run.pos_weight),
        )
        check_finite(run, epoch, f"{state.select_split} loss", scored.loss)
        row = epoch_row(run, epoch, train_loss, scored)
        state.record(row)
        if cfg.task == ALL_TASKS:
            mark_views(state.history, cfg.tasks, state.select_split, cfg.view_epochs)
        run.scheduler.step(plateau_signal(state, row, cfg.plateau_on))
        state.check_stop(cfg.patience, cfg.epochs)
        if run.ranks.is_main:
            log_epoch(cfg, row, time.perf_counter() - started, run.writer)
            save_epoch(run, row, scored.probs)
        if state.finished:
            break


def epoch_row(run: Run, epoch: int, train_loss: float, scored: ValidationResult) -> dict[str, Any]:
    """One line of metrics.csv: the losses, the selecting split's AUC (per task too, for a multi-task run), the lr."""
    state = run.state
    labels, probs = run.select.labels, scored.probs
    if labels.ndim == 2:
        aucs = per_task_aucs(labels, probs, run.cfg.tasks, auc_or_nan, state.select_split)
        losses = task_losses(scored.logits, labels, np.atleast_1d(run.pos_weight))
        aucs.update({f"{state.key('loss')}_{task}": float(v) for task, v in zip(run.cfg.tasks, losses, strict=True)})
    else:
        aucs = {state.key("auc"): auc_or_nan(labels, probs)}
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        state.key("loss"): scored.loss,
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
        run.net,  # type: ignore[arg-type]  # the model, or DDP around it: both take the model's call
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
        task_weights=task_weights(cfg, run.pos_weight),
    )
    return distributed.mean_over_ranks(stats.loss_sum, stats.exams, ranks, run.device)


def task_weights(cfg: TrainConfig, pos_weight: float | np.ndarray) -> np.ndarray | None:
    """Each task's factor in a multi-task run's loss (--task-weights); None for a single-task run."""
    if cfg.task != ALL_TASKS:
        return None
    return task_scales(np.atleast_1d(pos_weight)) if cfg.task_weights == "balanced" else np.ones(len(cfg.tasks))


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


# ----------------------------------------------------------------------------- one run, start to end


def train(
    cfg: TrainConfig,
    data: dict[tuple[str, str], SplitData] | None = None,
    explicit: set[str] | None = None,
    keep_model: bool = False,
) -> TrainResult:
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
) -> TrainResult:
    if not cfg.resume:  # a tuning split that cannot serve is refused before anything is written
        try:
            tune = tune_split_for(cfg.data_dir, cfg.tune_fraction, cfg.split_seed)
        except DataError:
            tune = None  # the data checks below report it, with every other problem
        if tune is not None:
            check_both_classes(tune, cfg.tasks)
    lock = RunLock(cfg.run_dir(), layout.RUN_LOCK, "training run") if ranks.is_main else None
    with distributed.stop_together(ranks):
        if lock is not None:
            lock.acquire()  # before looking at the folder: a second run on it is refused, not interleaved
    try:
        return _train_locked(cfg, data, explicit, ranks, device, keep_model)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(
    cfg: TrainConfig, data, explicit: set[str], ranks: distributed.Ranks, device: torch.device, keep_model: bool
) -> TrainResult:
    say = print if ranks.is_main else (lambda *a, **k: None)
    with distributed.stop_together(ranks):  # also a barrier: every rank has read the folder before rank 0 writes
        resumed = prepare_run_dir(cfg)
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
    for note in tune.notes(cfg.tasks):
        say(f"{cfg.name}: {note}")
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
        summary = replace(summary, model_state={k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()})
    return summary
