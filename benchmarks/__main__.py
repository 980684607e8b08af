"""python -m benchmarks: the throughput benchmark (the same command as scripts/benchmark.py)."""

from benchmarks.throughput import run

if __name__ == "__main__":
    run()
