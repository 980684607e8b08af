"""Training and evaluation throughput against a reference loop: python scripts/benchmark.py --device cpu"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrnet.benchmark import main  # noqa: E402
from mrnet.errors import run_cli  # noqa: E402

if __name__ == "__main__":
    run_cli(main)
