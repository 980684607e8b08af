"""Training one per-plane MRNet: the epoch loop reads like the recipe.

train -> evaluate -> schedule -> log -> checkpoint, once per epoch, with the best epoch
kept by validation AUC and everything needed to resume saved after every epoch.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from . import PLANES, TASKS
from .checkpoint import atomic_write, load_checkpoint, remove_temporary_leftovers, save_checkpoint
from .data import SplitData, check_and_load, find_unlabelled_series, label_path, parse_labels
from .device import AMP_MODES, describe, resolve_amp
from . import distributed
from .engine import epoch_augment, predict_logits, shuffled_order, sigmoid, train_one_epoch, weighted_bce
from .errors import MRNetError
from .metrics import auc_or_nan, has_both_classes, positive_class_weight
from .model import MRNet, build_model
from .runinfo import save_run_info

METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "val_auc", "lr", "best")


@dataclass
class TrainConfig:
    """Everything that defines one per-plane training run (saved as config.json and in checkpoints)."""

    task: str = "acl"
    plane: str = "sagittal"
    data_dir: str = "data/MRNet-v1.0"
    output_dir: str = "models"
    epochs: int = 50
    lr: float = 1e-5
    weight_decay: float = 0.01
    patience: int = 10  # early stopping: epochs without a better validation score (0 = off)
    lr_patience: int = 5  # ReduceLROnPlateau, as in the baseline code
    lr_factor: float = 0.3
    seed: int = 0
    device: str = "auto"
    pretrained: bool = True
    weights: str | None = None
    augment: bool = True
    exams_per_step: int = 1
    eval_max_slices: int = 512
    amp: str = "auto"
    channels_last: bool = True  # measured faster on the CPU (README, 'Speed'); --no-channels-last
    resume: bool = False
    overwrite: bool = False

    @property
    def name(self) -> str:
        return f"{self.task}-{self.plane}"

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def tensorboard_dir(self) -> Path:
        return Path(self.output_dir) / "runs" / self.name


# Fields that change what is learned: a resumed run must keep them as they were.
RECIPE_FIELDS = (
    "task", "plane", "lr", "weight_decay", "lr_patience", "lr_factor", "seed",
    "pretrained", "weights", "augment", "exams_per_step",
)
# Fields that only say where or how to run: they follow the command line.
RUN_FIELDS = ("data_dir", "output_dir", "device", "eval_max_slices", "amp", "channels_last", "resume", "overwrite")


def validate_config(cfg: TrainConfig) -> None:
    problems = []
    if cfg.task not in TASKS:
        problems.append(f"--task {cfg.task}: choose one of {', '.join(TASKS)}")
    if cfg.plane not in PLANES:
        problems.append(f"--plane {cfg.plane}: choose one of {', '.join(PLANES)}")
    if cfg.epochs < 1:
        problems.append(f"--epochs {cfg.epochs}: must be at least 1")
    if not cfg.lr > 0:
        problems.append(f"--lr {cfg.lr}: must be positive")
    if cfg.weight_decay < 0:
        problems.append(f"--weight-decay {cfg.weight_decay}: must be 0 or more")
    if cfg.exams_per_step < 1:
        problems.append(f"--exams-per-step {cfg.exams_per_step}: must be at least 1")
    if cfg.amp not in AMP_MODES:
        problems.append(f"--amp {cfg.amp}: choose one of {', '.join(AMP_MODES)}")
    if cfg.resume and cfg.overwrite:
        problems.append("--resume and --overwrite contradict each other; pick one")
    if problems:
        raise MRNetError("; ".join(problems))


# ----------------------------------------------------------------------------- run state

@dataclass
class RunState:
    """What changes from epoch to epoch; saved in every checkpoint so a run can resume."""

    epoch: int = 0  # last completed epoch (1-based); 0 before the first
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf  # higher is better (AUC, or minus the loss)
    monitor: str = "val_auc"
    finished: bool = False
    stop_reason: str = ""
    image_size: int = 256  # slice size the model was trained on; prediction resizes new series to it


def score_of(row: dict[str, Any], monitor: str) -> float:
    return row["val_auc"] if monitor == "val_auc" else -row["val_loss"]


def improved(score: float, best: float) -> bool:
    return not math.isnan(score) and score > best


# ----------------------------------------------------------------------------- outputs

def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewritten whole each epoch from the saved history, so a resumed run leaves no stray row."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in history:
                writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write(path, write)


def write_predictions(path: Path, cases: Sequence[str], labels: np.ndarray, probs: np.ndarray) -> None:
    table = pd.DataFrame({"case": list(cases), "label": labels.astype(int), "prob": probs})
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.8f"))


def check_writable(folder: Path) -> None:
    """Fail before training, not after the first epoch, when outputs cannot be saved."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise MRNetError(f"output folder {folder} is not writable ({err.strerror or err}); set --output-dir") from None


def open_tensorboard(cfg: TrainConfig, start_epoch: int):
    """tensorboardX writer; purge_step drops events a killed run logged past its checkpoint."""
    from tensorboardX import SummaryWriter

    return SummaryWriter(logdir=str(cfg.tensorboard_dir()), purge_step=start_epoch + 1 if start_epoch else None)


# ----------------------------------------------------------------------------- the run

def load_training_data(cfg: TrainConfig) -> dict[tuple[str, str], SplitData]:
    return check_and_load(cfg.data_dir, tasks=(cfg.task,), planes=(cfg.plane,))


def prepare_run_dir(cfg: TrainConfig) -> dict[str, Any] | None:
    """Decide between a fresh start and a resume; never silently replace an earlier run."""
    last = cfg.run_dir() / "last.pt"
    if cfg.resume:
        if not last.exists():
            raise MRNetError(f"--resume: nothing to resume in {cfg.run_dir()} (no last.pt); start without --resume")
        return load_checkpoint(last, cfg.task, cfg.plane)
    if last.exists() and not cfg.overwrite:
        raise MRNetError(
            f"{cfg.run_dir()} already holds a run; continue it with --resume or start over with --overwrite"
        )
    return None


def merge_resumed_config(cfg: TrainConfig, saved: dict[str, Any], explicit: set[str]) -> TrainConfig:
    """Recipe fields come from the checkpoint; an explicit different value is an error."""
    merged = copy.copy(cfg)
    conflicts = []
    for name in RECIPE_FIELDS:
        if name not in saved:
            continue
        if name in explicit and getattr(cfg, name) != saved[name]:
            conflicts.append(f"{name}={getattr(cfg, name)!r} (the run used {saved[name]!r})")
        setattr(merged, name, saved[name])
    if conflicts:
        raise MRNetError(
            "--resume: these options differ from the run being resumed: " + ", ".join(conflicts)
            + "; drop them or start a new run with --overwrite"
        )
    for name in ("epochs", "patience"):
        if name not in explicit and name in saved:
            setattr(merged, name, saved[name])
    return merged


def train(cfg: TrainConfig, data: dict[tuple[str, str], SplitData] | None = None,
          explicit: set[str] | None = None, keep_model: bool = False) -> dict[str, Any]:
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


def _train(cfg: TrainConfig, data, explicit: set[str], ranks: distributed.Ranks, device: torch.device,
           keep_model: bool) -> dict[str, Any]:
    say = print if ranks.is_main else (lambda *a, **k: None)
    resumed = prepare_run_dir(cfg)
    distributed.barrier(ranks)  # every rank has read the run folder before rank 0 writes to it
    if resumed is not None:
        cfg = merge_resumed_config(cfg, resumed["config"], explicit)
        validate_config(cfg)
        if resumed.get("finished") and cfg.epochs <= resumed["epoch"]:
            say(f"{cfg.name}: already finished at epoch {resumed['epoch']}; nothing to do")
            return summary_from_state(cfg, state_from_checkpoint(resumed))

    if data is None:
        data = load_training_data(cfg)
    train_split, valid_split = data[("train", cfg.plane)], data[("valid", cfg.plane)]
    train_labels, valid_labels = train_split.labels_for(cfg.task), valid_split.labels_for(cfg.task)
    pos_weight = positive_class_weight(train_labels, f"train-{cfg.task}.csv labels")
    amp_dtype = resolve_amp(cfg.amp, device)
    if ranks.is_main:
        check_writable(cfg.run_dir())
        warn_unlabelled(cfg)
        if resumed is not None and remove_temporary_leftovers(cfg.run_dir()):
            say(f"{cfg.name}: removed the partial file(s) of a write the interrupted run did not finish")

    model, optimizer, scheduler, state = build_training(cfg, device, resumed, valid_labels)
    state.image_size = most_common_size(train_split)
    say(f"{cfg.name}: {len(train_split.cases)} train / {len(valid_split.cases)} valid exams, "
        f"{int(train_labels.sum())} train positives, pos_weight {pos_weight:.3f}, device {describe(device)}"
        + (f", {ranks.world_size} data-parallel ranks" if ranks.distributed else ""))
    if state.monitor == "val_loss":
        say(f"{cfg.name}: warning: the valid split has only one class for {cfg.task}, so AUC is undefined; "
            "the best epoch is chosen by validation loss instead")
    if resumed is not None:
        say(f"{cfg.name}: resuming after epoch {state.epoch} (best so far: epoch {state.best_epoch})")
    if ranks.is_main:
        save_run_info(cfg.run_dir(), cfg, describe(device))

    net = distributed.wrap(model, device, ranks)
    writer = open_tensorboard(cfg, state.epoch) if ranks.is_main else None
    train_series = [train_split.series[c] for c in train_split.cases]
    valid_series = [valid_split.series[c] for c in valid_split.cases]
    try:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            started = time.perf_counter()
            stats = train_one_epoch(
                net, optimizer, train_series, train_labels,
                order=distributed.shard(shuffled_order(len(train_series), cfg.seed, epoch), ranks),
                augment=epoch_augment(cfg.seed, epoch, ranks.rank) if cfg.augment else None,
                pos_weight=pos_weight, device=device, amp_dtype=amp_dtype,
                exams_per_step=cfg.exams_per_step, progress=f"{cfg.name} epoch {epoch}" if ranks.is_main else None,
            )
            probs, val_loss = validate(model, valid_series, valid_labels, pos_weight, device, amp_dtype,
                                       cfg.eval_max_slices, ranks)
            row = {
                "epoch": epoch,
                "train_loss": distributed.mean_over_ranks(stats["loss_sum"], stats["exams"], ranks),
                "val_loss": val_loss,
                "val_auc": auc_or_nan(valid_labels, probs),
                "lr": optimizer.param_groups[0]["lr"],
            }
            score = score_of(row, state.monitor)
            row["best"] = improved(score, state.best_score)
            scheduler.step(score if not math.isnan(score) else -math.inf)
            state.history.append(row)
            state.epoch = epoch
            if row["best"]:
                state.best_score, state.best_epoch = score, epoch
            if cfg.patience > 0 and epoch - state.best_epoch >= cfg.patience:
                state.finished, state.stop_reason = True, f"early stop: no improvement for {cfg.patience} epochs"
            elif epoch == cfg.epochs:
                state.finished, state.stop_reason = True, f"reached --epochs {cfg.epochs}"
            if ranks.is_main:
                log_epoch(cfg, row, time.perf_counter() - started, writer)
                if row["best"]:
                    save_best(cfg, model, state, valid_split.cases, valid_labels, probs)
                save_last(cfg, model, optimizer, scheduler, state)
                # After last.pt: metrics.csv is rebuilt from the checkpoint's history on resume.
                write_metrics_csv(cfg.run_dir() / "metrics.csv", state.history)
            if state.finished:
                break
    finally:
        if writer is not None:
            writer.close()
    summary = summary_from_state(cfg, state)
    if ranks.is_main:
        print_final_table(cfg, summary)
    if keep_model:
        summary["model_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return summary


def build_training(cfg: TrainConfig, device: torch.device, resumed: dict[str, Any] | None, valid_labels: np.ndarray):
    """Model, optimiser, scheduler and run state: fresh from the seed, or as the checkpoint left them."""
    torch.manual_seed(cfg.seed)  # fixes the initialisation of every layer not loaded from ImageNet
    model = build_model(pretrained=cfg.pretrained, weights_path=cfg.weights).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=cfg.lr_factor, patience=cfg.lr_patience
    )
    state = RunState(monitor="val_auc" if has_both_classes(valid_labels) else "val_loss")
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        state = state_from_checkpoint(resumed)
        torch.set_rng_state(resumed["torch_rng"])
        state.finished = False
    return model, optimizer, scheduler, state


def validate(model: MRNet, series, labels: np.ndarray, pos_weight: float, device, amp_dtype, max_slices: int,
             ranks: distributed.Ranks) -> tuple[np.ndarray, float]:
    """Probabilities and loss over ALL validation exams; ranks score a share each and gather."""
    mine = list(range(ranks.rank, len(series), ranks.world_size))
    logits = predict_logits(model, [series[i] for i in mine], device, amp_dtype, max_slices)
    logits = distributed.gather_by_index(mine, logits, len(series), ranks)
    loss = weighted_bce(torch.from_numpy(logits), torch.tensor(labels, dtype=torch.float64), pos_weight)
    return sigmoid(logits), float(loss)


def most_common_size(split: SplitData) -> int:
    sizes = pd.Series([s.shape[-1] for s in split.series.values()])
    return int(sizes.mode().iloc[0]) if len(sizes) else 256


def log_epoch(cfg: TrainConfig, row: dict[str, Any], seconds: float, writer) -> None:
    marker = "  *best*" if row["best"] else ""
    print(f"{cfg.name} epoch {row['epoch']:3d}/{cfg.epochs}  train_loss {row['train_loss']:.4f}  "
          f"val_loss {row['val_loss']:.4f}  val_auc {row['val_auc']:.4f}  lr {row['lr']:.1e}  "
          f"{seconds:.1f}s{marker}", flush=True)
    if writer is None:
        return
    step = row["epoch"]
    for key in ("train_loss", "val_loss", "val_auc", "lr"):
        if not (isinstance(row[key], float) and math.isnan(row[key])):
            writer.add_scalar(key, row[key], step)
    writer.add_scalar("epoch_seconds", seconds, step)
    writer.flush()


def checkpoint_payload(cfg: TrainConfig, model: MRNet, state: RunState) -> dict[str, Any]:
    return {
        "task": cfg.task,
        "plane": cfg.plane,
        "image_size": state.image_size,
        "model_args": model.model_args(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": asdict(cfg),
        "epoch": state.epoch,
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_score": state.best_score,
        "monitor": state.monitor,
        "finished": state.finished,
        "stop_reason": state.stop_reason,
    }


def save_best(cfg: TrainConfig, model: MRNet, state: RunState, cases, labels, probs) -> None:
    # Predictions first, then the weights: a kill between leaves last.pt pointing at the
    # previous epoch, which is replayed on resume and rewrites both.
    write_predictions(cfg.run_dir() / "valid_predictions.csv", cases, labels, probs)
    save_checkpoint(checkpoint_payload(cfg, model, state), cfg.run_dir() / "best.pt")


def save_last(cfg: TrainConfig, model: MRNet, optimizer, scheduler, state: RunState) -> None:
    payload = checkpoint_payload(cfg, model, state)
    payload.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), torch_rng=torch.get_rng_state())
    save_checkpoint(payload, cfg.run_dir() / "last.pt")


def state_from_checkpoint(ckpt: dict[str, Any]) -> RunState:
    return RunState(
        epoch=ckpt["epoch"], history=list(ckpt["history"]), best_epoch=ckpt["best_epoch"],
        best_score=ckpt["best_score"], monitor=ckpt["monitor"], finished=ckpt["finished"],
        stop_reason=ckpt.get("stop_reason", ""), image_size=ckpt.get("image_size", 256),
    )


def summary_from_state(cfg: TrainConfig, state: RunState) -> dict[str, Any]:
    best = next((r for r in state.history if r["epoch"] == state.best_epoch), None)
    return {
        "model": cfg.name,
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_auc": best["val_auc"] if best else math.nan,
        "best_val_loss": best["val_loss"] if best else math.nan,
        "stop_reason": state.stop_reason,
        "checkpoint": str(cfg.run_dir() / "best.pt"),
    }


def print_final_table(cfg: TrainConfig, summary: dict[str, Any]) -> None:
    print(f"\n{cfg.name}: {summary['stop_reason']}")
    print(f"  best epoch     {summary['best_epoch']} of {summary['epochs_run']}")
    print(f"  val AUC        {summary['best_val_auc']:.4f}")
    print(f"  val loss       {summary['best_val_loss']:.4f}")
    print(f"  checkpoint     {summary['checkpoint']}")
    print(f"  predictions    {cfg.run_dir() / 'valid_predictions.csv'}")
    print(f"  metrics        {cfg.run_dir() / 'metrics.csv'}\n")


def warn_unlabelled(cfg: TrainConfig) -> None:
    for split in ("train", "valid"):
        table, _ = parse_labels(label_path(cfg.data_dir, split, cfg.task))
        extra = find_unlabelled_series(cfg.data_dir, split, cfg.plane, list(table["case"]))
        if extra:
            print(f"{cfg.name}: note: {len(extra)} {split}/{cfg.plane} series have no label and are ignored "
                  f"(e.g. {', '.join(extra[:5])})")


# ----------------------------------------------------------------------------- command line

def add_common_training_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by train_plane and train_all. Defaults are None so an explicit value can be told apart."""
    d = TrainConfig()
    parser.add_argument("--data-dir", default=None, help=f"MRNet-v1.0 layout folder (default {d.data_dir})")
    parser.add_argument("--output-dir", default=None, help=f"where models and logs go (default {d.output_dir})")
    parser.add_argument("--epochs", type=int, default=None, help=f"maximum epochs (default {d.epochs})")
    parser.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {d.lr})")
    parser.add_argument("--weight-decay", type=float, default=None, help=f"Adam weight decay (default {d.weight_decay})")
    parser.add_argument("--patience", type=int, default=None,
                        help=f"stop after this many epochs without a better validation AUC; 0 = never (default {d.patience})")
    parser.add_argument("--lr-patience", type=int, default=None, help=f"ReduceLROnPlateau patience (default {d.lr_patience})")
    parser.add_argument("--lr-factor", type=float, default=None, help=f"ReduceLROnPlateau factor (default {d.lr_factor})")
    parser.add_argument("--seed", type=int, default=None, help=f"fixes data order, augmentation and initialisation (default {d.seed})")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default auto)")
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_const", const=False, default=None,
                        help="train AlexNet from scratch instead of ImageNet weights")
    parser.add_argument("--weights", default=None, help="a local torchvision AlexNet weights file (no download)")
    parser.add_argument("--no-augment", dest="augment", action="store_const", const=False, default=None,
                        help="switch off rotation/shift/flip augmentation")
    parser.add_argument("--exams-per-step", type=int, default=None,
                        help="exams per optimiser step (default 1, the paper's recipe)")
    parser.add_argument("--eval-max-slices", type=int, default=None,
                        help=f"slices per forward pass when evaluating (default {d.eval_max_slices})")
    parser.add_argument("--amp", default=None, choices=AMP_MODES,
                        help="autocast: auto (bf16 on CUDA, off on CPU), off, bf16, fp16 (default auto)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_const", const=False, default=None,
                        help="keep the default NCHW memory format instead of channels_last")
    parser.add_argument("--resume", action="store_const", const=True, default=None,
                        help="continue the run in the output folder from its last completed epoch")
    parser.add_argument("--overwrite", action="store_const", const=True, default=None,
                        help="replace an earlier run in the output folder")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train one per-plane MRNet model.")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--plane", required=True, choices=PLANES)
    add_common_training_args(parser)
    return parser


def config_from_args(args: argparse.Namespace, **overrides: Any) -> tuple[TrainConfig, set[str]]:
    """A TrainConfig from parsed options; also the names the user set explicitly."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    values.update(overrides)
    explicit = set(values)
    return TrainConfig(**values), explicit


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = get_args_parser().parse_args(argv)
    cfg, explicit = config_from_args(args)
    return train(cfg, explicit=explicit)
