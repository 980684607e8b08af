"""The typed config of one per-plane training run, its checks, and what a resumed run may change."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import AMP_MODES, LEGACY_RECIPE, PLANES, PLATEAU_ON, SELECT_ON, TASKS, layout
from ..errors import MRNetError, at_least, check_options, finite_above, one_of, seed_rule

ALL_TASKS = "all"  # --task all: one network per plane with a logit for each of TASKS
# The model options, as in mrnet.models (not imported here: this module must not import torch).
BACKBONE_NAMES = ("alexnet", "resnet18", "resnet34", "efficientnet_b0", "mobilenet_v3_small", "r3d_18")
VOLUME_BACKBONES = ("r3d_18",)
POOL_NAMES = ("max", "mean", "attention")
BN_NAMES = ("train", "frozen")
# --task all: how the three tasks' losses add up, and which epoch each task's view keeps.
TASK_WEIGHTS = ("balanced", "sum")
VIEW_EPOCHS = ("task", "mean")


def tasks_of(task: str) -> tuple[str, ...]:
    """The tasks one run learns: all three for a multi-task run, else the one named."""
    return TASKS if task == ALL_TASKS else (task,)


@dataclass
class TrainConfig:
    """Everything that defines one per-plane training run (saved as config.json and in checkpoints)."""

    task: str = "acl"
    plane: str = "sagittal"
    data_dir: str = "data/MRNet-v1.0"
    models_dir: str = "models"
    epochs: int = 50
    lr: float = 1e-5
    weight_decay: float = 0.01
    patience: int = 10  # early stopping: epochs without a better score on the selecting split (0 = off)
    lr_patience: int = 5  # ReduceLROnPlateau, as in the baseline code
    lr_factor: float = 0.3
    seed: int = 0
    tune_fraction: float = 0.1  # train exams held out as the tuning split (0: none, the paper's protocol)
    split_seed: int = 0  # fixes which exams the tuning split holds
    select_on: str = "tune"  # the split that picks the best epoch and drives the scheduler and early stopping
    plateau_on: str = "loss"  # what the scheduler watches on that split: its loss, as the baseline code does
    device: str = "auto"
    backbone: str = "alexnet"  # the paper's; see mrnet.models.backbones
    pool: str = "max"  # over slices: the paper's max, mean, or gated attention
    depth: int = 32  # 3-D backbone: slices resampled to this depth
    bn: str = "train"  # BatchNorm statistics while training: per exam ("train") or "frozen"
    task_weights: str = "balanced"  # --task all: each task's loss scaled to the same total weight, or a plain "sum"
    view_epochs: str = "task"  # --task all: each view at its own task's best epoch, or all at the best "mean"
    pretrained: bool = True
    weights: str | None = None
    augment: bool = True
    exams_per_step: int = 1
    eval_max_slices: int | None = None  # None: the device's default (64 on the CPU, 512 on CUDA)
    amp: str = "auto"
    channels_last: bool = True  # measured faster on the CPU (README, 'Speed'); --no-channels-last
    resume: bool = False
    overwrite: bool = False

    @property
    def name(self) -> str:
        return layout.model_name(self.task, self.plane)

    def run_dir(self) -> Path:
        return layout.model_dir(self.models_dir, self.task, self.plane)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tasks_of(self.task)

    def model_args(self) -> dict[str, Any]:
        """The mrnet.models.ModelArgs fields of this run, as plain types."""
        return {
            "backbone": self.backbone,
            "pool": self.pool,
            "outputs": len(self.tasks) if self.task == ALL_TASKS else 1,
            "depth": self.depth,
            "bn": self.bn,
        }


# Fields that change what is learned: a resumed run must keep them as they were.
RECIPE_FIELDS = (
    "task",
    "plane",
    "lr",
    "weight_decay",
    "lr_patience",
    "lr_factor",
    "seed",
    "backbone",
    "pool",
    "depth",
    "bn",
    "pretrained",
    "weights",
    "augment",
    "exams_per_step",
    "tune_fraction",
    "split_seed",
    "select_on",
    "plateau_on",
    "task_weights",
    "view_epochs",
)
MAX_TUNE_FRACTION = 0.5
# Fields that only say where or how to run: they follow the command line.
RUN_FIELDS = ("data_dir", "models_dir", "device", "eval_max_slices", "amp", "channels_last", "resume", "overwrite")


def validate_config(cfg: TrainConfig) -> None:
    check_options(
        [
            one_of("--task", cfg.task, (*TASKS, ALL_TASKS)),
            one_of("--backbone", cfg.backbone, BACKBONE_NAMES),
            one_of("--pool", cfg.pool, POOL_NAMES),
            one_of("--bn", cfg.bn, BN_NAMES),
            one_of("--task-weights", cfg.task_weights, TASK_WEIGHTS),
            one_of("--view-epochs", cfg.view_epochs, VIEW_EPOCHS),
            at_least("--depth", cfg.depth, 1),
            (
                cfg.backbone not in VOLUME_BACKBONES or cfg.pool == "max",
                f"--pool {cfg.pool}: the 3-D backbone {cfg.backbone} pools its volume itself; leave --pool at max",
            ),
            one_of("--plane", cfg.plane, PLANES),
            at_least("--epochs", cfg.epochs, 1),
            finite_above("--lr", cfg.lr, 0, strictly=True),
            finite_above("--weight-decay", cfg.weight_decay, 0),
            at_least("--patience", cfg.patience, 0),
            at_least("--lr-patience", cfg.lr_patience, 0),
            # ReduceLROnPlateau multiplies the lr by the factor: 1 or more never lowers it, 0 stops training.
            (0 < cfg.lr_factor < 1, f"--lr-factor {cfg.lr_factor}: must be between 0 and 1 (exclusive)"),
            seed_rule(cfg.seed),
            at_least("--exams-per-step", cfg.exams_per_step, 1),
            at_least("--eval-max-slices", cfg.eval_max_slices, 1),
            one_of("--amp", cfg.amp, AMP_MODES),
            (
                0 <= cfg.tune_fraction <= MAX_TUNE_FRACTION,
                f"--tune-fraction {cfg.tune_fraction}: must be between 0 and {MAX_TUNE_FRACTION}",
            ),
            at_least("--split-seed", cfg.split_seed, 0),
            one_of("--select-on", cfg.select_on, SELECT_ON),
            one_of("--plateau-on", cfg.plateau_on, PLATEAU_ON),
            (
                not (cfg.select_on == "tune" and cfg.tune_fraction == 0),
                "--select-on tune needs a tuning split: set --tune-fraction above 0, or select on valid "
                "(--select-on valid, the paper's protocol)",
            ),
            (not (cfg.resume and cfg.overwrite), "--resume and --overwrite contradict each other; pick one"),
        ]
    )


def merge_resumed_config(cfg: TrainConfig, saved: dict[str, Any], explicit: set[str]) -> TrainConfig:
    """Recipe fields come from the checkpoint; an explicit different value is an error."""
    merged = copy.copy(cfg)
    conflicts = []
    for name in RECIPE_FIELDS:
        if name not in saved and name not in LEGACY_RECIPE:
            continue
        value = saved.get(name, LEGACY_RECIPE.get(name))
        if name in explicit and getattr(cfg, name) != value:
            conflicts.append(f"{name}={getattr(cfg, name)!r} (the run used {value!r})")
        setattr(merged, name, value)
    if conflicts:
        raise MRNetError(
            "--resume: these options differ from the run being resumed: "
            + ", ".join(conflicts)
            + "; drop them or start a new run with --overwrite"
        )
    for name in ("epochs", "patience"):
        if name not in explicit and name in saved:
            setattr(merged, name, saved[name])
    return merged
