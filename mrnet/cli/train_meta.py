"""mrnet-train-meta: fit the per-task stacked ensembles and their thresholds; print the valid-split AUC table."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..options import option_field
from ..training.config import TrainConfig  # a dataclass module: no torch import
from .common import (
    ArgumentParser,
    add_ensemble_args,
    add_models_dir,
    add_option,
    add_planes,
    add_tasks,
    config_from_args,
    print_auc_table,
    run_cli,
    start_threads,
)


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        allow_abbrev=False, description="Fit the per-task stacked ensembles and print the AUC table."
    )
    parser.add_argument("--data-dir", default="data/MRNet-v1.0", help="MRNet-v1.0 layout folder")
    add_models_dir(parser, "models", "folder holding the task-plane model folders (default models)")
    add_tasks(parser)
    add_planes(parser)
    add_ensemble_args(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the stacker and its folds")
    for name in ("device", "threads", "amp", "eval_max_slices"):  # as train_all passes them on
        f = option_field(TrainConfig, name)
        add_option(parser, f, default=f.default)
    return parser


def main(argv: Sequence[str] | None = None):
    args = get_args_parser().parse_args(argv)
    start_threads(args.threads)
    from ..ensemble.fit import MetaConfig, fit_ensembles

    cfg = config_from_args(MetaConfig, args)
    table = fit_ensembles(cfg)
    print_auc_table(table)
    return table


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
