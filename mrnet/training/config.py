"""The typed config of one per-plane training run, its checks, and what a resumed run may change."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import AMP_MODES, LEGACY_RECIPE, PLANES, PLATEAU_ON, SELECT_ON, TASKS, layout
from ..errors import SEED_LIMIT, MRNetError, check_options
from ..names import ALL_TASKS, BACKBONE_NAMES, BN_NAMES, POOL_NAMES, TASK_WEIGHTS, VIEW_EPOCHS, VOLUME_BACKBONES
from ..options import LENGTH, RECIPE, RUN, at_least, between, finite_above, names_with_role, option, rules
from ..threads import check_threads

MAX_TUNE_FRACTION = 0.5
EVAL_SLICES_HELP = (
    "slices per forward pass when scoring (default: 64 on the CPU, where it measured fastest; 512 on CUDA)"
)


def tasks_of(task: str) -> tuple[str, ...]:
    """The tasks one run learns: all three for a multi-task run, else the one named."""
    return TASKS if task == ALL_TASKS else (task,)


@dataclass
class TrainConfig:
    """Everything that defines one per-plane training run (saved as config.json and in checkpoints).

    Each field is also a command-line option of train_plane and train_all (see mrnet.options):
    its help, choices, range and role are written here and nowhere else.
    """

    task: str = option(
        "acl",
        "the task; all: one network with a logit per task, written as three single-task models",
        role=RECIPE,
        choices=(*TASKS, ALL_TASKS),
        per_model=True,
    )
    plane: str = option("sagittal", "the plane", role=RECIPE, choices=PLANES, per_model=True)
    data_dir: str = option("data/MRNet-v1.0", "MRNet-v1.0 layout folder (default {default})", role=RUN)
    models_dir: str = option(
        "models",
        "where models and logs go (default {default}; --output-dir is the same)",
        role=RUN,
        aliases=("--output-dir",),
    )
    epochs: int = option(50, "maximum epochs (default {default})", role=LENGTH, check=at_least(1))
    lr: float = option(
        1e-5, "Adam learning rate (default {default})", role=RECIPE, check=finite_above(0, strictly=True)
    )
    weight_decay: float = option(0.01, "Adam weight decay (default {default})", role=RECIPE, check=finite_above(0))
    patience: int = option(
        10,
        "stop after this many epochs without a better AUC on the --select-on split; 0 = never (default {default})",
        role=LENGTH,
        check=at_least(0),
    )
    # ReduceLROnPlateau, as in the baseline code.
    lr_patience: int = option(5, "ReduceLROnPlateau patience (default {default})", role=RECIPE, check=at_least(0))
    # ReduceLROnPlateau multiplies the lr by the factor: 1 or more never lowers it, 0 stops training.
    lr_factor: float = option(
        0.3, "ReduceLROnPlateau factor (default {default})", role=RECIPE, check=between(0, 1, exclusive=True)
    )
    tune_fraction: float = option(
        0.1,
        "share of the train exams held out as the tuning split, stratified on label combination and never "
        "trained on; 0 = none, the paper's protocol (default {default})",
        role=RECIPE,
        check=between(0, MAX_TUNE_FRACTION),
    )
    split_seed: int = option(
        0, "fixes which exams the tuning split holds (default {default})", role=RECIPE, check=at_least(0)
    )
    select_on: str = option(
        "tune",
        "the split that picks the best epoch and drives the LR schedule and early stopping: tune keeps the "
        "public valid split untouched until train_meta/evaluate; valid is the paper's protocol (default {default})",
        role=RECIPE,
        choices=SELECT_ON,
    )
    plateau_on: str = option(
        "loss",
        "what ReduceLROnPlateau watches on the --select-on split: loss (as the baseline code) or auc "
        "(default {default})",
        role=RECIPE,
        choices=PLATEAU_ON,
    )
    seed: int = option(
        0,
        "fixes data order, augmentation and initialisation (default {default})",
        role=RECIPE,
        check=between(0, SEED_LIMIT),  # numpy's and scikit-learn's seeds are 32-bit
    )
    device: str = option("auto", "auto, cpu or cuda (default {default})", role=RUN)
    threads: str = option(
        "auto",
        "CPU threads: auto (the CPUs this process may use that other work leaves free; OMP_NUM_THREADS "
        "wins when set) or a number (default {default})",
        role=RUN,
        check=check_threads,
    )
    backbone: str = option(
        "alexnet",
        "per-slice network (r3d_18: one 3-D network over the volume) (default {default}, the paper's)",
        role=RECIPE,
        choices=BACKBONE_NAMES,
    )
    pool: str = option(
        "max",
        "pooling over slices; attention: gated attention (Ilse et al. 2018) (default {default}, the paper's)",
        role=RECIPE,
        choices=POOL_NAMES,
    )
    depth: int = option(
        32, "r3d_18: slices resampled to this depth (default {default})", role=RECIPE, check=at_least(1)
    )
    bn: str = option(
        "train",
        "BatchNorm backbones while training: train (statistics of each step's slices) or frozen "
        "(running statistics kept) (default {default})",
        role=RECIPE,
        choices=BN_NAMES,
    )
    task_weights: str = option(
        "balanced",
        "--task all: balanced scales each task's pos-weighted BCE to the same total weight before the sum; "
        "sum adds them as they are (default {default})",
        role=RECIPE,
        choices=TASK_WEIGHTS,
    )
    view_epochs: str = option(
        "task",
        "--task all: task keeps each task's model at the epoch with that task's best AUC, as a single-task "
        "run would; mean keeps all three at the epoch with the best mean AUC (default {default})",
        role=RECIPE,
        choices=VIEW_EPOCHS,
    )
    pretrained: bool = option(
        True, "train the backbone from scratch instead of ImageNet (Kinetics for r3d_18) weights", role=RECIPE
    )
    weights: str | None = option(None, "a local torchvision weights file of the backbone (no download)", role=RECIPE)
    init_from: str | None = option(
        None,
        "start from a trained model's weights instead of ImageNet's: a checkpoint (RUN/acl-sagittal/best.pt), or a "
        "models folder, where each model starts from its own task and plane's best.pt; the model arguments "
        "(backbone, pool, bn, depth, outputs) must match",
        role=RECIPE,
    )
    augment: bool = option(True, "switch off rotation/shift/flip augmentation", role=RECIPE)
    exams_per_step: int = option(
        1, "exams per optimiser step (default {default}, the paper's recipe)", role=RECIPE, check=at_least(1)
    )
    # None: the device's default (64 on the CPU, 512 on CUDA).
    eval_max_slices: int | None = option(None, EVAL_SLICES_HELP, role=RUN, check=at_least(1))
    amp: str = option(
        "auto",
        "autocast: auto (bf16 on CUDA and on CPUs with native bf16, else off), off, bf16, "
        "fp16 (CUDA only, with loss scaling) (default {default})",
        role=RUN,
        choices=AMP_MODES,
    )
    # Measured faster on the CPU (docs/speed.md).
    channels_last: bool = option(True, "keep the default NCHW memory format instead of channels_last", role=RUN)
    resume: bool = option(False, "continue the run in the output folder from its last completed epoch", role=RUN)
    overwrite: bool = option(False, "replace an earlier run in the output folder", role=RUN)

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
RECIPE_FIELDS = names_with_role(TrainConfig, RECIPE)
# Fields that only say where or how to run: they follow the command line.
RUN_FIELDS = names_with_role(TrainConfig, RUN)


def validate_config(cfg: TrainConfig) -> None:
    """Every option's choices and range (from its field), then the rules that tie options together."""
    check_options(
        [
            *rules(cfg),
            (
                cfg.backbone not in VOLUME_BACKBONES or cfg.pool == "max",
                f"--pool {cfg.pool}: the 3-D backbone {cfg.backbone} pools its volume itself; leave --pool at max",
            ),
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
    for name in names_with_role(TrainConfig, LENGTH):
        if name not in explicit and name in saved:
            setattr(merged, name, saved[name])
    return merged
