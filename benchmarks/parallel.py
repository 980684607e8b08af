"""A CPU sweep one model at a time against several at once: `python -m benchmarks.parallel --data-dir DIR`.

Runs `train_all` on the same data with each `--variant` (its `--workers` and `--threads`),
alternating the variants round by round so a change in the machine's other load hits each
alike, and reports each variant's wall time, the load average at its start, and whether its
AUC table and its checkpoints' weights equal the first variant's.

    python -m benchmarks.parallel --data-dir data/demo --epochs 2 \\
        --variant workers=1,threads=2 --variant workers=1,threads=1 --variant workers=2,threads=2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mrnet.cli.common import run_cli
from mrnet.files import write_json

from .busy import command_line, machine

ROOT = Path(__file__).resolve().parents[1]
# The demo's recipe (Makefile, demo), its length given by --epochs.
DEMO = ["--no-pretrained", "--lr", "1e-4", "--weight-decay", "1e-4", "--no-augment", "--patience", "0", "--seed", "0"]


def parse_variant(text: str) -> dict[str, str]:
    """'workers=2,threads=2' -> {'workers': '2', 'threads': '2'}."""
    values = dict(part.split("=", 1) for part in text.split(",") if part)
    unknown = set(values) - {"workers", "threads"}
    if unknown:
        raise argparse.ArgumentTypeError(f"--variant {text}: only workers= and threads=")
    return values


def label(variant: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items())


def run_sweep(data_dir: str, models_dir: Path, epochs: int, variant: dict[str, str]) -> dict[str, Any]:
    """One train_all run in a fresh process; its wall time and the load average when it started."""
    argv = [sys.executable, str(ROOT / "scripts" / "train_all.py"), "--data-dir", data_dir]
    argv += ["--models-dir", str(models_dir), "--epochs", str(epochs), "--overwrite", *DEMO]
    argv += [f"--{name}={value}" for name, value in variant.items()]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{label(variant)}: train_all failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return {"seconds": seconds, "load_at_start": load, "first_line": done.stdout.splitlines()[0]}


def same_weights(a: Path, b: Path) -> bool:
    """Whether every model's best checkpoint holds the same weights in both folders."""
    for path in sorted(a.glob("*/best.pt")):
        left = torch.load(path, map_location="cpu", weights_only=True)["model"]
        right = torch.load(b / path.relative_to(a), map_location="cpu", weights_only=True)["model"]
        if left.keys() != right.keys() or any(not torch.equal(left[k], right[k]) for k in left):
            return False
    return True


def as_record(results: dict[str, Any]) -> dict[str, Any]:
    """The keys that make the results file a docs record (benchmarks.tables, a one-off experiment)."""
    variants = results["variants"]
    loads = [load for v in variants.values() for load in v["load_at_start"]]
    rows = [
        [
            name,
            v["first_line"],
            f"{v['seconds']:.0f}",
            f"{v['speedup_over_first']:.2f}x",
            "yes" if v["auc_table_equal"] else "no",
            "yes" if v["weights_equal"] else "no",
        ]
        for name, v in variants.items()
    ]
    first = next(iter(variants))
    return {
        "title": f"the demo's nine models and three ensembles, {results['epochs']} epochs, one at a time or several "
        "at once",
        "machine": machine(),
        "load": f"load average {min(loads):.1f}-{max(loads):.1f} at the sweeps' starts (other jobs on the machine)",
        "split": "AUC table: valid split, epochs chosen on the tuning split, stackers fitted on it (train_all's "
        f"defaults); 'equal' compares with {first}",
        "columns": ["variant", "its first line", "seconds", "speed-up", "AUC table equal", "weights equal"],
        "rows": rows,
        "provenance": f"written by `{results['command']}` on {time.strftime('%Y-%m-%d')}",
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="an MRNet-layout folder (e.g. the demo's)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per model (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of every variant (default 1)")
    parser.add_argument("--variant", action="append", type=parse_variant, required=True)
    parser.add_argument("--json", default="bench/parallel.json", help="results file ('' writes none)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mrnet-parallel-"))
    runs: dict[str, list[dict[str, Any]]] = {label(v): [] for v in args.variant}
    try:
        for round_ in range(args.rounds):
            order = args.variant if round_ % 2 == 0 else list(reversed(args.variant))
            for variant in order:
                run = run_sweep(args.data_dir, work / label(variant), args.epochs, variant)
                runs[label(variant)].append(run)
                print(
                    f"{label(variant)}: {run['seconds']:.1f} s (load {run['load_at_start']:.1f}); {run['first_line']}"
                )
        first = label(args.variant[0])
        base_auc = pd.read_csv(work / first / "auc_table.csv")
        results = {
            "benchmark": "mrnet parallel CPU sweep",
            "command": command_line(),
            "epochs": args.epochs,
            "cpus": len(os.sched_getaffinity(0)),
            "variants": {
                name: {
                    "seconds": statistics.median(r["seconds"] for r in rs),
                    "seconds_all": [r["seconds"] for r in rs],
                    "load_at_start": [r["load_at_start"] for r in rs],
                    "first_line": rs[0]["first_line"],
                    "speedup_over_first": statistics.median(r["seconds"] for r in runs[first])
                    / statistics.median(r["seconds"] for r in rs),
                    "auc_table_equal": pd.read_csv(work / name / "auc_table.csv").equals(base_auc),
                    "weights_equal": same_weights(work / first, work / name),
                }
                for name, rs in runs.items()
            },
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results.update(as_record(results))
    for name, v in results["variants"].items():
        print(
            f"{name:<22} {v['seconds']:7.1f} s  {v['speedup_over_first']:.2f}x  "
            f"AUC table equal: {v['auc_table_equal']}, weights equal: {v['weights_equal']}"
        )
    if args.json:
        write_json(Path(args.json), results)
    return results


if __name__ == "__main__":
    run_cli(main)
