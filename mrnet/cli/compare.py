"""mrnet-compare: is run B really better than run A? Per task and model, on the same exams.

    python scripts/compare.py models/run-a models/run-b [--split valid]

Prints, per task and model (each plane and the ensemble), AUC A, AUC B, B - A with its 95 %
interval and the p-value of DeLong's test for correlated ROC curves, with a paired
bootstrap's p-value beside it (n/a where DeLong's variance is undefined, a warning below 5 exams of a
class); writes the same table as CSV, by default comparison-SPLIT.csv in RUN_B's folder.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

from .. import AMP_MODES, SPLITS
from .common import (
    EVAL_SLICES_HELP,
    ArgumentParser,
    add_tasks,
    add_threads,
    config_from_args,
    fmt,
    run_cli,
    start_threads,
)


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description="Compare two runs (models folders) on the same exams: AUC difference, its 95 % interval and "
        "DeLong's test, per task and model.",
    )
    parser.add_argument("run_a", metavar="RUN_A", help="models folder (or bundle .zip) of run A")
    parser.add_argument(
        "run_b", metavar="RUN_B", help="models folder (or bundle .zip) of run B (differences are B - A)"
    )
    parser.add_argument(
        "--data-dir", default="data/MRNet-v1.0", help="MRNet-v1.0 layout folder (default data/MRNet-v1.0)"
    )
    parser.add_argument(
        "--split", default="valid", choices=SPLITS, help="split both runs are scored on (default valid)"
    )
    add_tasks(parser)
    parser.add_argument(
        "--bootstrap", type=int, default=2000, help="paired bootstrap resamples beside DeLong's test (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument(
        "--out",
        "--csv",
        dest="csv",
        default=None,
        help="CSV file the table goes to (default RUN_B/comparison-SPLIT.csv)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--amp", default="auto", choices=AMP_MODES)
    parser.add_argument("--eval-max-slices", type=int, default=None, help=EVAL_SLICES_HELP)
    add_threads(parser)
    return parser


def print_comparison(table, cfg) -> None:
    first = table.iloc[0]
    print(
        f"\nRun A: {cfg.run_a}\nRun B: {cfg.run_b}\nAUC on the {cfg.split} split of {cfg.data_dir}, the same "
        f"{first['n']} exams for both runs; difference B - A with DeLong's 95 % interval and two-sided p-value "
        "(correlated ROC curves), and a paired bootstrap's p-value"
    )
    header = f"{'task':<10}{'model':<10}{'AUC A':>8}{'AUC B':>8}  {'B - A (95% CI)':<26}{'p boot':>8}  {'p DeLong'}"
    print(header)
    print("-" * len(header))
    for row in table.to_dict("records"):
        interval = difference_text(row)
        print(
            f"{row['task']:<10}{row['model']:<10}{fmt(row['auc_a']):>8}{fmt(row['auc_b']):>8}  {interval:<26}"
            f"{fmt(row['p_bootstrap'], 3):>8}  {p_text(row)}"
        )


def difference_text(row: dict) -> str:
    """B - A with its interval; n/a, with the reason, where DeLong's variance is undefined."""
    if math.isnan(row["difference"]):
        return "n/a (one class)"
    if math.isnan(row["ci_low"]):
        smaller = min(row["positives"], row["n"] - row["positives"])
        reason = "too few exams" if smaller < 2 else "zero variance"
        return f"{row['difference']:+.4f} n/a ({reason})"
    return f"{row['difference']:+.4f} ({row['ci_low']:+.3f}, {row['ci_high']:+.3f})"


def p_text(row: dict) -> str:
    p = row["p_delong"]
    if not math.isnan(p):
        return fmt(p, 3)
    return "n/a (too few exams)" if min(row["positives"], row["n"] - row["positives"]) < 2 else "n/a"


def main(argv: Sequence[str] | None = None):
    args = get_args_parser().parse_args(argv)
    start_threads(args.threads)
    from ..evaluation.compare import CompareConfig, compare_runs
    from ..export.unpack import bundle_models

    bundles = [run if run.endswith(".zip") and Path(run).is_file() else None for run in (args.run_a, args.run_b)]
    with bundle_models(bundles[0], args.run_a) as run_a, bundle_models(bundles[1], args.run_b) as run_b:
        result = compare_runs(config_from_args(CompareConfig, args, run_a=run_a, run_b=run_b))
    cfg = config_from_args(CompareConfig, args)
    print_comparison(result.table, cfg)
    for warning in result.warnings:
        print(f"warning: {warning}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"\ntable: {result.csv}\n")
    return result.table


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
