"""mrnet-import-data: write another cohort in the MRNet-v1.0 layout, for training and external validation.

    python scripts/import_data.py dicom SRC --labels LABELS.csv --out DATA
    python scripts/import_data.py kneemri SRC --out DATA

DATA/import/keys.csv and problems.csv name the source's studies: keep them private. Exit
status 2, with a message, on bad options, a bad labels file, or an --out folder that holds
something else.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import PLANES
from ..errors import MRNetError
from .common import ArgumentParser, run_cli

MAX_PRINTED_PROBLEMS = 10


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        allow_abbrev=False,
        description="Import DICOM studies with a labels file, or the KneeMRI set, into the MRNet-v1.0 layout.",
    )
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="{dicom,kneemri}", parser_class=ArgumentParser)
    dicom = kinds.add_parser(
        "dicom", allow_abbrev=False, help="DICOM studies (a PACS export, any nesting) and LABELS.csv"
    )
    dicom.add_argument("src", help="folder holding the studies' DICOM files")
    dicom.add_argument(
        "--labels",
        required=True,
        metavar="LABELS.csv",
        help="header study,abnormal,acl,meniscus[,split]; study = AccessionNumber or StudyInstanceUID; "
        "an empty cell = unknown",
    )
    dicom.add_argument(
        "--series",
        action="append",
        default=[],
        metavar="PLANE=ID",
        help="the series to use for a plane when a study holds several of it: a SeriesDescription (the same in "
        "every study) or SeriesInstanceUID, as in predict (repeat for each plane)",
    )
    dicom.add_argument(
        "--planes",
        nargs="+",
        default=list(PLANES),
        choices=PLANES,
        help="planes to import; a study without one of them is left out (default: all three)",
    )
    kneemri = kinds.add_parser("kneemri", allow_abbrev=False, help="the KneeMRI set (metadata.csv and .pck volumes)")
    kneemri.add_argument("src", help="KneeMRI folder: metadata.csv and the .pck files (in vol01..vol10 or flat)")
    kneemri.add_argument(
        "--acl-positive",
        default="injury",
        choices=("injury", "complete"),
        help="which aclDiagnosis is a positive acl label: injury (1 partial or 2 complete, the default) or "
        "complete (2 only)",
    )
    for sub in (dicom, kneemri):
        sub.add_argument(
            "--out", required=True, metavar="DATA", help="output folder (new, empty, or an import to continue)"
        )
        sub.add_argument("--size", type=int, default=256, help="slice width and height in px (default 256, MRNet's)")
        sub.add_argument(
            "--valid-fraction",
            type=float,
            default=0.2,
            help="share of patients drawn for valid, stratified on the labels (default 0.2)",
        )
        sub.add_argument("--seed", type=int, default=0, help="fixes the split and the case ids (default 0)")
        sub.add_argument("--workers", type=int, default=1, help="studies converted in parallel processes (default 1)")
    return parser


def series_rules(items: Sequence[str]) -> dict[str, str]:
    rules = {}
    for item in items:
        plane, _, rule = item.partition("=")
        if plane not in PLANES or not rule.strip():
            raise MRNetError(f"--series {item}: expected PLANE=ID with PLANE one of {', '.join(PLANES)}")
        rules[plane] = rule
    return rules


def check_args(args: argparse.Namespace) -> None:
    problems = []
    if not 64 <= args.size <= 1024:
        problems.append(f"--size {args.size}: must be between 64 and 1024")
    if not 0.0 <= args.valid_fraction <= 1.0:
        problems.append(f"--valid-fraction {args.valid_fraction}: must be between 0 and 1")
    if args.workers < 1:
        problems.append(f"--workers {args.workers}: must be at least 1")
    if args.seed < 0:
        problems.append(f"--seed {args.seed}: must be at least 0")
    if problems:
        raise MRNetError("; ".join(problems))


def main(argv: Sequence[str] | None = None):
    args = get_args_parser().parse_args(argv)
    check_args(args)
    from tqdm import tqdm

    bars: list[tqdm] = []

    def progress(total: int):
        bars.append(tqdm(total=total, unit="study", desc="importing"))
        return lambda: bars[-1].update(1)

    common = dict(size=args.size, valid_fraction=args.valid_fraction, seed=args.seed, workers=args.workers)
    try:
        if args.kind == "dicom":
            from ..importing.dicom_cohort import import_dicom

            result = import_dicom(
                args.src,
                args.labels,
                args.out,
                planes=tuple(p for p in PLANES if p in args.planes),
                series_rules=series_rules(args.series),
                progress=progress,
                **common,
            )
        else:
            from ..importing.kneemri import import_kneemri

            result = import_kneemri(args.src, args.out, acl_positive=args.acl_positive, progress=progress, **common)
    finally:
        for bar in bars:
            bar.close()
    rate = f" ({result.studies_per_second:.2f} studies/s)" if result.written_now else ""
    print(
        f"{result.out}: {result.written_now} studies written now{rate}, {result.written_before} before; "
        f"train {result.split_counts['train']}, valid {result.split_counts['valid']}; "
        f"label files for {', '.join(result.tasks)}"
    )
    if result.problems:
        print(f"{len(result.problems)} studies or files left out, listed in {result.out}/import/problems.csv:")
        for study, where, problem in result.problems[:MAX_PRINTED_PROBLEMS]:
            print(f"  - {' '.join(x for x in (study, where) if x)}: {problem.splitlines()[0]}")
        if len(result.problems) > MAX_PRINTED_PROBLEMS:
            print(f"  ... {len(result.problems) - MAX_PRINTED_PROBLEMS} more")
    print(f"private (names the source's studies): {result.out}/import/keys.csv, problems.csv, plan.csv")
    return result


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
