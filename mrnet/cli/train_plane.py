"""mrnet-train-plane: train one per-plane MRNet (python scripts/train_plane.py --task acl --plane sagittal)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..options import option_field
from ..training.config import TrainConfig  # a dataclass module: no torch import
from .common import add_option, add_training_args, run_cli, start_threads, training_config_from_args
from .config_file import ConfigFileParser

if TYPE_CHECKING:  # --help does not import the training library (torch)
    from ..training.state import TrainResult


def get_args_parser() -> argparse.ArgumentParser:
    parser = ConfigFileParser(description="Train one per-plane MRNet model.", config_class=TrainConfig)
    for name in ("task", "plane"):
        add_option(parser, option_field(TrainConfig, name), required=True)
    add_training_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> TrainResult:
    args = get_args_parser().parse_args(argv)
    cfg, explicit = training_config_from_args(args)
    # Data-parallel ranks started together on one machine share its CPUs.
    start_threads(cfg.threads, workers=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    from ..training.trainer import train

    return train(cfg, explicit=explicit)


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
