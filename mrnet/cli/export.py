"""mrnet-export: a trained run as one shareable file, and its plane models as ONNX.

python scripts/export.py bundle --models-dir RUN --out knee-model.zip [--license mit] [--card-notes FILE]
python scripts/export.py unpack knee-model.zip --out RUN
python scripts/export.py onnx --models-dir RUN
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import PLANES
from .common import ArgumentParser, add_models_dir, add_tasks, run_cli


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        allow_abbrev=False,
        description="Share trained models: a bundle (one zip with safetensors weights, stackers, model card and "
        "manifest), unpack one back into a run folder, or export the plane models as ONNX.",
    )
    actions = parser.add_subparsers(
        dest="action", required=True, metavar="{bundle,unpack,onnx}", parser_class=ArgumentParser
    )
    bundle = actions.add_parser("bundle", allow_abbrev=False, help="write a run as one verifiable zip file")
    add_models_dir(bundle, "models", "the trained run (default models)")
    bundle.add_argument("--out", required=True, metavar="FILE.zip", help="the bundle to write")
    bundle.add_argument("--name", default=None, help="the model's name (default: the file name without .zip)")
    bundle.add_argument("--model-version", default="1.0", help="the model's version, for its users (default 1.0)")
    bundle.add_argument(
        "--license", dest="license_id", default="other", help="the weights' license, as the model card states it"
    )
    bundle.add_argument("--card-notes", default=None, metavar="FILE", help="Markdown added to MODEL_CARD.md")
    add_tasks(bundle)
    unpack = actions.add_parser("unpack", allow_abbrev=False, help="verify a bundle and write it as a run folder")
    unpack.add_argument("bundle", metavar="BUNDLE", help="the bundle (zip) to unpack")
    unpack.add_argument("--out", required=True, metavar="DIR", help="the run folder to write (new or empty)")
    onnx = actions.add_parser("onnx", allow_abbrev=False, help="write model.onnx beside each best.pt, checked")
    add_models_dir(onnx, "models", "the trained run (default models)")
    add_tasks(onnx)
    return parser


def main(argv: Sequence[str] | None = None):
    args = get_args_parser().parse_args(argv)
    if args.action == "bundle":
        from ..export.bundle import make_bundle

        made = make_bundle(
            args.models_dir,
            args.out,
            name=args.name,
            version=args.model_version,
            license_id=args.license_id,
            card_notes=args.card_notes,
            tasks=args.tasks,
        )
        onnx = f", ONNX for {len(made.onnx)} models" if made.onnx else ", no ONNX (run export onnx first to add it)"
        print(f"bundle: {made.path} ({len(made.members)} members{onnx})\nsha256: {made.sha256}")
        return made
    if args.action == "unpack":
        from ..export.unpack import unpack_bundle

        bundle = unpack_bundle(args.bundle, args.out)
        print(f"unpacked {bundle.path} (verified, sha256 {bundle.sha256}) into {args.out}")
        return bundle
    from .. import layout
    from ..export.onnx_export import TOLERANCE, export_plane

    checks = []
    ready, skipped = layout.ready_tasks(args.models_dir, args.tasks)
    for line in skipped:
        print(line)
    for task in ready:
        for plane in PLANES:
            check = export_plane(args.models_dir, task, plane)
            checks.append(check)
            print(
                f"{check.path}: max |logit difference| against torch {check.max_difference:.2e} "
                f"(fp32, exams of {', '.join(map(str, check.slices))} slices; limit {TOLERANCE:.0e})"
            )
    return checks


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
