"""Make docs/viewer.png, the picture on docs/viewer.md of the exam viewer (a development tool, not in the package).

Runs predict --html on one exam of the demo (make demo) and photographs its page in headless
Chromium with the state given as the page's URL hash:

    python docs/screenshot.py --models-dir models/demo --data-dir data/synthetic --case 0288
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

from mrnet import PLANES
from mrnet.cli.predict import main as predict
from mrnet.data.dataset import series_path
from mrnet.viewer import browser


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Screenshot of the exam viewer for the docs.")
    parser.add_argument("--models-dir", default="models/demo")
    parser.add_argument("--data-dir", default="data/synthetic")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--case", default="0288", help="an exam with an ACL tear in the demo's valid split")
    parser.add_argument("--state", default="task=acl", help="the viewer's URL hash (task, overlay, opacity, slices)")
    parser.add_argument("--size", default="1280,930", help="window width,height in pixels")
    parser.add_argument("--out", default="docs/viewer.png")
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = get_args_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        inputs = [a for p in PLANES for a in (f"--{p}", str(series_path(args.data_dir, args.split, p, args.case)))]
        with contextlib.redirect_stdout(io.StringIO()):
            predict(["--models-dir", args.models_dir, *inputs, "--out", f"{work}/out", "--html", f"{work}/html"])
        width, height = (int(v) for v in args.size.split(","))
        page = Path(work) / "html" / f"{args.case}.html"
        out = browser.screenshot(browser.page_url(page, args.state), Path(args.out), (width, height))
    print(f"written: {out} ({out.stat().st_size // 1024} KB)")
    return out


if __name__ == "__main__":
    main()
