"""Training and evaluation throughput against a reference loop: python scripts/benchmark.py --device cpu

Runs from a clone with nothing installed: scripts/benchmarks and scripts/mrnet link to the
benchmark folder and the package. From the repository root, `python -m benchmarks` is the same.
"""

from benchmarks.throughput import run

if __name__ == "__main__":
    run()
