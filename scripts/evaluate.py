"""Evaluate trained models and write the report: python scripts/evaluate.py --data-dir DATA --models-dir models"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrnet.errors import run_cli  # noqa: E402
from mrnet.evaluate import main  # noqa: E402

if __name__ == "__main__":
    run_cli(main)
