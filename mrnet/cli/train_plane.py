"""mrnet-train-plane: train one per-plane MRNet (python scripts/train_plane.py --task acl --plane sagittal)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import PLANES, TASKS
from .common import add_training_args, run_cli, training_config_from_args

if TYPE_CHECKING:  # --help does not import the training library (torch)
    from ..training.state import TrainResult


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False, description="Train one per-plane MRNet model.")
    parser.add_argument(
        "--task",
        required=True,
        choices=(*TASKS, "all"),
        help="the task; all: one network with a logit per task, written as three single-task models",
    )
    parser.add_argument("--plane", required=True, choices=PLANES)
    add_training_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> TrainResult:
    args = get_args_parser().parse_args(argv)
    cfg, explicit = training_config_from_args(args)
    from ..training.trainer import train

    return train(cfg, explicit=explicit)


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
