"""mrnet-evaluate: AUC with bootstrap intervals, calibration, operating points, ROC curves, heatmaps, report.md
and report.html.

Every figure is on --split; the output says which split chose each model's epochs, fitted
each stacker and chose each threshold, so a figure from a split that chose something is
never shown as a test figure. For a stacker cross-validated on the evaluated split (--fit-on
valid-cv) the ensemble's figures are out-of-fold, equal to those in auc_table.csv.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .. import AMP_MODES
from .common import (
    EVAL_SLICES_HELP,
    ArgumentParser,
    add_bundle,
    add_models_dir,
    add_planes,
    add_tasks,
    add_threads,
    config_from_args,
    run_cli,
    start_threads,
)


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        allow_abbrev=False,
        description="Evaluate trained models: AUC with bootstrap intervals, operating points, ROC curves, "
        "heatmaps, report.md and competition-format predictions.",
    )
    parser.add_argument(
        "--data-dir", default="data/MRNet-v1.0", help="MRNet-v1.0 layout folder (default data/MRNet-v1.0)"
    )
    add_models_dir(parser, "models", "trained models (default models)")
    add_bundle(parser)
    parser.add_argument(
        "--split", default="valid", choices=("train", "valid"), help="split to evaluate (default valid)"
    )
    parser.add_argument(
        "--out", default=None, help="report folder (default <models-dir>/report; with --bundle, <bundle>-report)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=2000, help="bootstrap resamples for the AUC intervals; 0 = none (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--amp", default="auto", choices=AMP_MODES)
    add_tasks(parser)
    add_planes(parser)
    parser.add_argument("--eval-max-slices", type=int, default=None, help=EVAL_SLICES_HELP)
    parser.add_argument(
        "--heatmap-exams", type=int, default=2, help="positive exams per task shown with heatmaps (default 2)"
    )
    parser.add_argument(
        "--viewer-exams",
        type=int,
        default=2,
        help="per task, this many most confident true positives, worst false positives and worst false negatives "
        "get an exam viewer page linked from report.html; 0 = none (default 2)",
    )
    add_threads(parser)
    return parser


def main(argv: Sequence[str] | None = None):
    args = get_args_parser().parse_args(argv)
    start_threads(args.threads)
    from ..evaluation.evaluator import EvalConfig, run_evaluate
    from ..evaluation.report import plain_text, score_relation, text_table
    from ..export.unpack import bundle_models

    with bundle_models(args.bundle, args.models_dir) as models_dir:
        out = args.out or (str(Path(args.bundle).with_suffix("")) + "-report" if args.bundle else None)
        cfg = config_from_args(EvalConfig, args, models_dir=models_dir, out=out)
        result = run_evaluate(cfg)
    print(
        f"\nEvaluation on the {result.split} split ({result.n_exams} exams); AUC intervals from {result.bootstrap} "
        "bootstrap resamples; thresholds by Youden's J (see 'chosen on' in the report)"
    )
    print(text_table(result.metrics))
    print(
        f"competition score (mean ensemble AUC on {result.split}; ensemble probabilities here: "
        f"{plain_text(score_relation(result.metrics))}): {result.score:.4f}"
    )
    print("how these numbers were made:")
    for note in result.notes:
        print(f"  - {plain_text(note)}")
    print(f"\nreport: {result.report}\n")
    return result.metrics


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
