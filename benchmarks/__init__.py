"""Benchmarks of this project, kept outside the installed `mrnet` package.

`python -m benchmarks` (from the repository root) or `python scripts/benchmark.py` (from a
clone with nothing installed) measures training and evaluation throughput against a
reference loop written like public MRNet code; see `benchmarks.throughput`.
"""
