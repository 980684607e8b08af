"""What every command shares: turning library errors into messages, and the option groups used by several."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import AMP_MODES, FIT_ON, PLATEAU_ON, SELECT_ON, TASKS
from ..errors import MRNetError

EVAL_SLICES_HELP = (
    "slices per forward pass when scoring (default: 64 on the CPU, where it measured fastest; 512 on CUDA)"
)


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run a command's main(); turn user errors, Ctrl-C and SIGTERM into a message and an exit status.

    SIGTERM (a job scheduler's stop, `kill`) takes the same path as Ctrl-C, so completed
    epochs stay saved, the run lock is released and the user is told how to continue.
    """
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        main(argv)
    except MRNetError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        signum = err.args[0] if err.args and isinstance(err.args[0], int) else signal.SIGINT
        print("\ninterrupted: completed epochs are saved; continue with --resume", file=sys.stderr)
        sys.exit(128 + signum)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signum)


class Unique(argparse.Action):
    """A list option (--tasks acl acl) with each value once, in the order given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, list(dict.fromkeys(values)))


def parser(description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(allow_abbrev=False, description=description)  # --lr must not stand for --lr-factor


def add_models_dir(parser: argparse.ArgumentParser, default: str | None, help_text: str) -> None:
    """One name for the models folder in every command; --output-dir stays as the training commands' alias."""
    parser.add_argument("--models-dir", "--output-dir", dest="models_dir", default=default, help=help_text)


def add_switch(parser: argparse.ArgumentParser, flag: str, dest: str, value: bool, help_text: str) -> None:
    """A flag that sets a config field to `value`; absent, the field stays None so the config's default applies."""
    parser.add_argument(flag, dest=dest, action="store_const", const=value, default=None, help=help_text)


def add_training_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by train_plane and train_all. Defaults are None so an explicit value can be told apart."""
    from ..training.config import TrainConfig  # a dataclass module: no torch import

    d = TrainConfig()
    parser.add_argument("--data-dir", default=None, help=f"MRNet-v1.0 layout folder (default {d.data_dir})")
    add_models_dir(parser, None, f"where models and logs go (default {d.models_dir}; --output-dir is the same)")
    parser.add_argument("--epochs", type=int, default=None, help=f"maximum epochs (default {d.epochs})")
    parser.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {d.lr})")
    parser.add_argument(
        "--weight-decay", type=float, default=None, help=f"Adam weight decay (default {d.weight_decay})"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop after this many epochs without a better AUC on the --select-on split; 0 = never "
        f"(default {d.patience})",
    )
    parser.add_argument(
        "--lr-patience", type=int, default=None, help=f"ReduceLROnPlateau patience (default {d.lr_patience})"
    )
    parser.add_argument(
        "--lr-factor", type=float, default=None, help=f"ReduceLROnPlateau factor (default {d.lr_factor})"
    )
    parser.add_argument(
        "--tune-fraction",
        type=float,
        default=None,
        help="share of the train exams held out as the tuning split, stratified on label combination and never "
        f"trained on; 0 = none, the paper's protocol (default {d.tune_fraction})",
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help=f"fixes which exams the tuning split holds (default {d.split_seed})",
    )
    parser.add_argument(
        "--select-on",
        default=None,
        choices=SELECT_ON,
        help="the split that picks the best epoch and drives the LR schedule and early stopping: tune keeps the "
        "public valid split untouched until train_meta/evaluate; valid is the paper's protocol "
        f"(default {d.select_on})",
    )
    parser.add_argument(
        "--plateau-on",
        default=None,
        choices=PLATEAU_ON,
        help="what ReduceLROnPlateau watches on the --select-on split: loss (as the baseline code) or auc "
        f"(default {d.plateau_on})",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help=f"fixes data order, augmentation and initialisation (default {d.seed})"
    )
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default auto)")
    from ..training.config import BACKBONE_NAMES, BN_NAMES, POOL_NAMES, TASK_WEIGHTS, VIEW_EPOCHS

    parser.add_argument(
        "--backbone",
        default=None,
        choices=BACKBONE_NAMES,
        help=f"per-slice network (r3d_18: one 3-D network over the volume) (default {d.backbone}, the paper's)",
    )
    parser.add_argument(
        "--pool",
        default=None,
        choices=POOL_NAMES,
        help=f"pooling over slices; attention: gated attention (Ilse et al. 2018) (default {d.pool}, the paper's)",
    )
    parser.add_argument(
        "--depth", type=int, default=None, help=f"r3d_18: slices resampled to this depth (default {d.depth})"
    )
    parser.add_argument(
        "--bn",
        default=None,
        choices=BN_NAMES,
        help="BatchNorm backbones while training: train (statistics of each step's slices) or frozen "
        f"(running statistics kept) (default {d.bn})",
    )
    parser.add_argument(
        "--task-weights",
        default=None,
        choices=TASK_WEIGHTS,
        help="--task all: balanced scales each task's pos-weighted BCE to the same total weight before the sum; "
        f"sum adds them as they are (default {d.task_weights})",
    )
    parser.add_argument(
        "--view-epochs",
        default=None,
        choices=VIEW_EPOCHS,
        help="--task all: task keeps each task's model at the epoch with that task's best AUC, as a single-task "
        f"run would; mean keeps all three at the epoch with the best mean AUC (default {d.view_epochs})",
    )
    add_switch(
        parser,
        "--no-pretrained",
        "pretrained",
        False,
        "train the backbone from scratch instead of ImageNet (Kinetics for r3d_18) weights",
    )
    parser.add_argument(
        "--weights", default=None, help="a local torchvision weights file of the backbone (no download)"
    )
    add_switch(parser, "--no-augment", "augment", False, "switch off rotation/shift/flip augmentation")
    parser.add_argument(
        "--exams-per-step", type=int, default=None, help="exams per optimiser step (default 1, the paper's recipe)"
    )
    parser.add_argument("--eval-max-slices", type=int, default=None, help=EVAL_SLICES_HELP)
    parser.add_argument(
        "--amp",
        default=None,
        choices=AMP_MODES,
        help="autocast: auto (bf16 on CUDA and on CPUs with native bf16, else off), off, bf16, "
        "fp16 (CUDA only, with loss scaling) (default auto)",
    )
    add_switch(
        parser,
        "--no-channels-last",
        "channels_last",
        False,
        "keep the default NCHW memory format instead of channels_last",
    )
    add_switch(
        parser, "--resume", "resume", True, "continue the run in the output folder from its last completed epoch"
    )
    add_switch(parser, "--overwrite", "overwrite", True, "replace an earlier run in the output folder")


def config_from_args(config_class: type, args: argparse.Namespace, **overrides: Any):
    """A command's config dataclass from the parsed options of the same names (the option names are the fields')."""
    from dataclasses import fields

    values = {f.name: getattr(args, f.name) for f in fields(config_class) if hasattr(args, f.name)}
    return config_class(**{**values, **overrides})


def training_config_from_args(args: argparse.Namespace, **overrides: Any):
    """A TrainConfig from parsed options; also the names the user set explicitly."""
    from dataclasses import fields

    from ..training.config import TrainConfig

    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    values.update(overrides)
    explicit = set(values)
    return TrainConfig(**values), explicit


def add_ensemble_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fit-on",
        default=None,
        choices=FIT_ON,
        help="what the stacker learns from: tune (the CNNs' probabilities on the tuning exams, which they did "
        "not train on; the default when the models folder has a tuning split); train (the paper's protocol: "
        "the exams the CNNs trained on; the default without a tuning split); valid-cv (cross-validated on valid)",
    )
    parser.add_argument(
        "--folds", type=int, default=5, help="folds for --fit-on valid-cv and out-of-fold thresholds (default 5)"
    )


def add_tasks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS, action=Unique)


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for a table, or n/a where it is undefined."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_auc_table(table) -> None:
    """The AUC table as console text: a row per task, the mean over tasks, then the ensemble against its best plane."""
    columns = ["axial", "coronal", "sagittal", "ensemble"]
    fit_on, scored = table["ensemble_fit_on"].iloc[0], table["ensemble_scored"].iloc[0]
    print(f"\nAUC on the valid split (ensemble fitted on: {fit_on}; its valid figures are {scored})")
    header = f"{'task':<10}" + "".join(f"{c:>10}" for c in columns) + f"  {'ensemble vs best plane':<30}"
    print(header)
    print("-" * len(header))
    for row in table.to_dict("records"):
        cells = "".join(f"{fmt(row[c]):>10}" for c in columns)
        verdict = (
            "beats" if row["ensemble_minus_best"] > 0 else ("ties" if row["ensemble_minus_best"] == 0 else "below")
        )
        versus = (
            f"{verdict} {row['best_plane']}: {row['ensemble_minus_best']:+.4f} (DeLong p {fmt(row['p_delong'], 3)})"
        )
        print(f"{row['task']:<10}{cells}  {versus}")
    if len(table) > 1:
        mean = table[columns].mean(skipna=False)  # n/a when a task's AUC is undefined, as evaluate reports it
        print(f"{'mean':<10}" + "".join(f"{fmt(mean[c]):>10}" for c in columns))
    print()
