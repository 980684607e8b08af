"""Fit the stacked ensemble per task and print the AUC table: python scripts/train_meta.py"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrnet.errors import run_cli  # noqa: E402
from mrnet.ensemble import main  # noqa: E402

if __name__ == "__main__":
    run_cli(main)
