"""mrnet-make-synthetic: write synthetic knee MRI exams in the MRNet-v1.0 layout.

    python scripts/make_synthetic.py --out data/synthetic --train 120 --valid 60 --size 256

See mrnet/synthetic/ for what the exams contain. Exit status 2, with a one-line message,
on bad options or when the output folder already holds a dataset (--overwrite replaces it).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from .. import SPLITS, TASKS
from ..errors import MRNetError
from .common import ArgumentParser, run_cli


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(allow_abbrev=False, description="Write synthetic knee MRI exams in the MRNet-v1.0 layout.")
    parser.add_argument("--out", default="data/synthetic", help="output folder (default: data/synthetic)")
    parser.add_argument("--train", type=int, default=120, help="number of train exams (default: 120)")
    parser.add_argument("--valid", type=int, default=60, help="number of valid exams (default: 60)")
    parser.add_argument("--size", type=int, default=256, help="slice width and height in pixels, >= 64 (default: 256)")
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed writes identical files (default: 0)"
    )
    parser.add_argument(
        "--slices",
        type=int,
        nargs=2,
        metavar=("LO", "HI"),
        default=None,
        help="slice-count range for every plane (default: MRNet's per-plane ranges, mean about 31)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    return parser


def positives_table(summary: dict) -> str:
    header = f"{'split':<6} {'exams':>5} {'ids':>11} " + " ".join(f"{task:>9}" for task in TASKS)
    rows = [header]
    for split in SPLITS:
        s = summary[split]
        ids = f"{s['first_id']}-{s['last_id']}"
        rows.append(f"{split:<6} {s['n']:>5} {ids:>11} " + " ".join(f"{s[task]:>9}" for task in TASKS))
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    from tqdm import tqdm

    from ..synthetic import make_dataset

    slices = tuple(args.slices) if args.slices is not None else None
    started = time.perf_counter()
    bars: list[tqdm] = []

    def advance(split: str, case: str) -> None:
        if not bars:  # opened on the first exam, so option errors print no empty bar
            bars.append(tqdm(total=args.train + args.valid, unit="exam", desc="writing"))
        bars[0].update(1)

    try:
        summary = make_dataset(
            args.out,
            n_train=args.train,
            n_valid=args.valid,
            size=args.size,
            seed=args.seed,
            slices=slices,
            overwrite=args.overwrite,
            progress=advance,
        )
    except (ValueError, FileExistsError) as err:
        raise MRNetError(str(err)) from None
    finally:
        for bar in bars:
            bar.close()
    total = summary["train"]["n"] + summary["valid"]["n"]
    slice_text = "MRNet slice ranges" if slices is None else f"{slices[0]}-{slices[1]} slices"
    print(
        f"wrote {total} synthetic exams ({args.size} px, {slice_text}, seed {args.seed}) to {args.out} "
        f"in {time.perf_counter() - started:.1f} s; positives per task:"
    )
    print(positives_table(summary))
    return summary


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
