"""mrnet-predict: each plane's and the ensemble's probability for new exams, with optional heatmaps."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import AMP_MODES, ENGINES, PLANES
from .common import (
    EVAL_SLICES_HELP,
    ArgumentParser,
    add_bundle,
    add_models_dir,
    add_planes,
    add_tasks,
    add_threads,
    config_from_args,
    fmt,
    run_cli,
    start_threads,
)

MAX_PRINTED_EXAMS = 20


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        allow_abbrev=False, description="Predict abnormal / ACL tear / meniscal tear for new exams with trained models."
    )
    add_models_dir(parser, "models", "trained models (default models)")
    add_bundle(parser)
    parser.add_argument(
        "--engine",
        default="torch",
        choices=ENGINES,
        help="what runs the plane models: torch (best.pt) or onnxruntime (model.onnx, see export onnx)",
    )
    source = parser.add_argument_group("input (choose one)")
    for plane in PLANES:
        source.add_argument(f"--{plane}", default=None, metavar="FILE.npy", help=f"the exam's {plane} series")
    source.add_argument(
        "--exam-dir",
        default=None,
        metavar="DIR",
        help="a folder with axial.npy, coronal.npy, sagittal.npy, or DICOM folders axial/ coronal/ sagittal/, "
        "or the DICOM files of a whole exam (each plane's series chosen by its orientation)",
    )
    source.add_argument(
        "--input-csv",
        default=None,
        metavar="FILE",
        help="the competition's input: a header-less CSV of .npy paths, three rows per case",
    )
    parser.add_argument("--out", default="predictions", help="output folder (default predictions)")
    add_tasks(parser)
    add_planes(parser)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--amp", default="auto", choices=AMP_MODES)
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="slice size the models were trained on, for checkpoints that do not record it "
        "(default: the checkpoint's, else 256)",
    )
    parser.add_argument("--max-slices", type=int, default=None, help=EVAL_SLICES_HELP)
    parser.add_argument("--cam", default=None, metavar="OUT_DIR", help="write class activation heatmaps here")
    parser.add_argument("--cam-top-k", type=int, default=3, help="slices per heatmap set (default 3)")
    parser.add_argument("--cam-gif", action="store_true", help="also write an animated GIF through every slice")
    dicom = parser.add_argument_group("DICOM input")
    dicom.add_argument(
        "--series",
        action="append",
        default=[],
        metavar="PLANE=ID",
        help="the series to use for a plane when a folder holds several: its SeriesInstanceUID or "
        "SeriesDescription (repeat for each plane)",
    )
    dicom.add_argument(
        "--ignore-orientation",
        action="store_true",
        help="use a series whose orientation (ImageOrientationPatient) disagrees with its folder or option",
    )
    parser.add_argument(
        "--html",
        default=None,
        metavar="OUT_DIR",
        help="write an exam viewer here: one self-contained HTML page per exam and index.html",
    )
    parser.add_argument(
        "--dicom-sr",
        default=None,
        metavar="OUT_DIR",
        help="for DICOM exams, write a DICOM Structured Report per exam here (research use)",
    )
    add_threads(parser)
    return parser


def print_predictions(table, tasks: Sequence[str]) -> None:
    """Per exam and task: the planes' and the ensemble's probabilities, the threshold and the call."""
    import pandas as pd  # here, not at the top: --help answers without loading the libraries

    models = (*(p for p in PLANES if f"{tasks[0]}_{p}" in table), "ensemble")  # the planes scored
    header = f"{'case':<12}{'task':<10}" + "".join(f"{c:>10}" for c in models) + f"{'threshold':>11}  call"
    print(header)
    print("-" * len(header))
    for row in table.head(MAX_PRINTED_EXAMS).to_dict("records"):
        for task in tasks:
            cells = "".join(f"{fmt(row[f'{task}_{c}']):>10}" for c in models)
            positive = row[f"{task}_positive"]
            call = "n/a" if pd.isna(positive) else ("positive" if positive else "negative")
            print(f"{row['case']!s:<12}{task:<10}{cells}{fmt(row[f'{task}_threshold'], 3):>11}  {call}")
    if len(table) > MAX_PRINTED_EXAMS:
        print(f"... {len(table) - MAX_PRINTED_EXAMS} more exams in the CSV")
    print(
        "Read the ensemble: plane models are trained with a class weight, so their probabilities rank exams "
        "but are not calibrated."
    )


def main(argv: Sequence[str] | None = None):
    args = get_args_parser().parse_args(argv)
    start_threads(args.threads)
    from ..export.unpack import bundle_models
    from ..prediction import PredictConfig, run_predict

    with bundle_models(args.bundle, args.models_dir) as models_dir:
        cfg = config_from_args(PredictConfig, args, models_dir=models_dir)
        result = run_predict(cfg)
    print()
    print_predictions(result.table, result.tasks)
    for note in result.notes:
        print(f"note: {note}")
    if result.removed:
        print(
            f"removed {len(result.removed)} file(s) an earlier predict run wrote there and this one did not: "
            + ", ".join(p.name for p in result.removed[:5])
            + (" ..." if len(result.removed) > 5 else "")
        )
    print("\nwritten: " + ", ".join(str(p) for p in result.written) + (f"; heatmaps in {cfg.cam}" if cfg.cam else ""))
    return result.table


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
