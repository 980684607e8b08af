"""A CPU sweep one model at a time against several at once: `python -m benchmarks.parallel --data-dir DIR`.

Runs `train_all` on the same data with each `--variant` (its `--workers` and `--threads`, or
`source=DIR`: the `train_all` of another checkout of this project, e.g. an earlier commit),
alternating the variants round by round so a change in the machine's other load hits each
alike, and reports each variant's wall time, the load average at its start, its ensemble
AUCs, and whether its AUC table and its checkpoints' weights equal the first variant's.

    python -m benchmarks.parallel --data-dir data/demo --epochs 2 \\
        --variant workers=1,threads=2 --variant workers=1,threads=1 --variant workers=2,threads=2
    git worktree add /tmp/before ec27034   # the code before the thread policy and parallel sweeps
    python -m benchmarks.parallel --data-dir data/synthetic --epochs 8 --rounds 2 \\
        --variant source=/tmp/before --variant workers=auto
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
    unknown = set(values) - {"workers", "threads", "source"}
    if unknown:
        raise argparse.ArgumentTypeError(f"--variant {text}: only workers=, threads= and source=")
    if "source" in values and not (Path(values["source"]) / "scripts" / "train_all.py").is_file():
        raise argparse.ArgumentTypeError(f"--variant {text}: {values['source']} holds no scripts/train_all.py")
    return values


def revision(source: Path) -> str:
    """The checkout's commit, short, with '+changes' when its tracked files differ from it."""
    git = ["git", "-C", str(source)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD"], capture_output=True).returncode != 0
    return (head or "unknown") + ("+changes" if dirty else "")


def label(variant: dict[str, str]) -> str:
    """'workers=2,threads=2'; another checkout is named by its folder: 'source=before'."""
    return ",".join(f"{k}={Path(v).name if k == 'source' else v}" for k, v in variant.items())


def run_sweep(data_dir: str, models_dir: Path, epochs: int, variant: dict[str, str]) -> dict[str, Any]:
    """One train_all run in a fresh process; its wall time and the load average when it started."""
    source = Path(variant.get("source", ROOT)).resolve()
    argv = [sys.executable, str(source / "scripts" / "train_all.py"), "--data-dir", str(Path(data_dir).resolve())]
    argv += ["--models-dir", str(models_dir), "--epochs", str(epochs), "--overwrite", *DEMO]
    argv += [f"--{name}={value}" for name, value in variant.items() if name != "source"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(source)  # that checkout's package, not the one installed
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=source)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{label(variant)}: train_all failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return {
        "seconds": seconds,
        "load_at_start": load,
        "load_at_end": os.getloadavg()[0],
        "first_line": done.stdout.splitlines()[0],
        "code": revision(source),
    }


def ensemble_aucs(models_dir: Path) -> str:
    """Each task's ensemble AUC on valid, as the run's auc_table.csv holds it: 'abnormal 0.9994, acl …'."""
    table = pd.read_csv(models_dir / "auc_table.csv")
    table = table[table["task"] != "mean"]
    return ", ".join(f"{row.task} {row.ensemble:.4f}" for row in table.itertuples())


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
            v["code"],
            v["first_line"] if v["first_line"].startswith("cpu (") else "(none: torch's own thread count)",
            " and ".join(f"{seconds:.0f}" for seconds in v["seconds_all"]),
            f"{v['speedup_over_first']:.2f}x",
            v["ensemble_aucs"],
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
        "load": f"load average {min(loads):.1f}-{max(loads):.1f} at the sweeps' starts",
        "split": "ensemble AUCs and AUC table: valid split, held out (the tuning split chose the epochs and fitted "
        f"the stackers, train_all's defaults); speed-up (of the medians), 'equal': against {first}",
        "columns": [
            "variant",
            "code",
            "its first line",
            "seconds, round by round",
            "speed-up",
            "ensemble AUCs (valid)",
            "AUC table equal",
            "weights equal",
        ],
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
                    "load_at_end": [r["load_at_end"] for r in rs],
                    "first_line": rs[0]["first_line"],
                    "code": rs[0]["code"],
                    "ensemble_aucs": ensemble_aucs(work / name),
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
