"""mrnet-train-all: the nine per-plane models, then the stacked ensembles, with one set of options.

Rerunning the same command continues an interrupted sweep: finished models are skipped,
half-finished ones resumed. With several devices, one worker process per device.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import PLANES, TASKS
from ..names import ALL_TASKS
from .common import (
    PLANES_HELP,
    Unique,
    add_ensemble_args,
    add_training_args,
    print_auc_table,
    run_cli,
    start_threads,
    training_config_from_args,
)
from .config_file import CONFIG_HELP, ConfigFileParser

if TYPE_CHECKING:  # --help does not import the training library (torch)
    from ..training.state import TrainResult
    from ..training.sweep import WorkerResult


def get_args_parser() -> argparse.ArgumentParser:
    from ..training.config import TrainConfig  # a dataclass module: no torch import

    parser = ConfigFileParser(
        description="Train all per-plane models and the stacked ensembles.",
        config_class=TrainConfig,
        adapt=sweep_keys,
        config_help=f"{CONFIG_HELP}; a saved model's task and plane give way to --tasks and --planes",
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS, action=Unique)
    parser.add_argument(
        "--task",
        default=None,
        choices=(ALL_TASKS,),
        help="all: one multi-task network per plane (3 networks instead of 9), written as single-task models",
    )
    parser.add_argument("--planes", nargs="+", default=list(PLANES), choices=PLANES, action=Unique, help=PLANES_HELP)
    parser.add_argument("--skip-meta", action="store_true", help="train the plane models only")
    parser.add_argument(
        "--devices",
        nargs="+",
        default=None,
        help="train several models at once, one process per listed device "
        "(default: every visible GPU when there are several)",
    )
    parser.add_argument(
        "--workers",
        default="auto",
        help="on the CPU: models trained at once, by as many worker processes, each with its share of --threads "
        "(default auto: one per thread --threads gives, when that is 2 or more)",
    )
    add_training_args(parser)
    add_ensemble_args(parser)
    return parser


def sweep_keys(values: dict[str, Any]) -> dict[str, Any]:
    """A saved model's config.json names its one task and plane; the sweep's come from --tasks and --planes.

    Its recipe is kept; task all (one network per plane) stays, as --task all.
    """
    values.pop("plane", None)
    if values.get("task") != ALL_TASKS:
        values.pop("task", None)
    return values


def main(argv: Sequence[str] | None = None) -> list[TrainResult] | list[WorkerResult]:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.task == "all" and args.tasks != list(TASKS):
        parser.error("--task all trains every task at once; leave out --tasks")
    base, explicit = training_config_from_args(args, task=args.task or args.tasks[0], plane=args.planes[0])
    explicit -= {"task", "plane", "resume"}
    from .. import layout
    from ..data.dataset import check_and_load
    from ..data.splits import check_both_classes, prepare_tune_split
    from ..device import check_devices
    from ..ensemble.fit import MetaConfig, fit_ensembles
    from ..errors import MRNetError
    from ..training.config import validate_config
    from ..training.sweep import cpu_workers, default_devices, pending_models, train_in_process, train_on_devices

    validate_config(base)
    plan = start_threads(base.threads)
    if not args.skip_meta and args.fit_on == "tune" and base.tune_fraction == 0:
        raise MRNetError("--fit-on tune needs a tuning split: set --tune-fraction above 0, or use --fit-on train")
    devices = default_devices(args.devices, base.device)
    check_devices(devices)
    # Every data problem before hours of work; the headers also tell whether finished models saw this data.
    headers = check_and_load(base.data_dir, args.tasks, args.planes, load=False)
    # Finished models first: a changed dataset is named as such, not as a changed tuning split.
    todo = pending_models(base, [args.task] if args.task else args.tasks, args.planes, explicit=explicit, data=headers)
    # The tuning split, drawn and written once for the whole sweep; --overwrite starts it over.
    if base.overwrite:
        layout.tune_cases_file(base.models_dir).unlink(missing_ok=True)
    tune = prepare_tune_split(base.models_dir, base.data_dir, base.tune_fraction, base.split_seed)
    check_both_classes(tune, args.tasks)
    summaries: list[TrainResult] | list[WorkerResult]
    share = None
    if not devices:
        devices, share = cpu_workers(args.workers, base.device, plan.threads, len(todo))
        if len(devices) > 1:
            print(f"training {len(todo)} models {len(devices)} at a time, one process of {share} thread(s) each")
    if len(devices) > 1:
        summaries = train_on_devices(todo, devices, explicit, share)
    else:
        summaries = train_in_process(todo, explicit)
    if not args.skip_meta:
        meta = MetaConfig(
            data_dir=base.data_dir,
            models_dir=base.models_dir,
            tasks=list(args.tasks),
            planes=list(args.planes),
            fit_on=args.fit_on,
            folds=args.folds,
            seed=base.seed,
            device=base.device,
            amp=base.amp,
            eval_max_slices=base.eval_max_slices,
        )
        print_auc_table(fit_ensembles(meta))
    return summaries


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
