"""The demo's records for the docs: its AUC table, and the spread of that table over seeds.

Reads what `train_all` wrote into each run folder (auc_table.csv, the config of a model), so
the docs show what the command printed, not figures copied by hand:

    python -m benchmarks.demo models/demo models/demo-seed1 models/demo-seed2 \\
        --table docs/measured/demo-auc.json --seeds docs/measured/demo-seeds.json

The first run's table becomes the getting-started page's; every run gives one row of the
spread (each task's ensemble AUC on the valid split, held out, and the mean).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mrnet import TASKS
from mrnet.files import write_json

from .results import cpu_model_name

COMMAND = (
    "`make demo` (`make_synthetic.py --out data/synthetic --train 200 --valid 100 --size 64 --slices 8 14 --seed 0`, "
    "then `train_all.py --no-pretrained --epochs 8 --lr 1e-4 --weight-decay 1e-4 --no-augment --patience 0 --seed S`)"
)


def run_seed(run: Path) -> int:
    """The seed the run's models were trained with, from one model's saved config."""
    configs = sorted(run.glob("*-*/config.json"))
    if not configs:
        raise SystemExit(f"{run}: no trained model with a config.json")
    return int(json.loads(configs[0].read_text())["seed"])


def auc_rows(run: Path) -> list[dict[str, Any]]:
    path = run / "auc_table.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; run train_all (or train_meta) first")
    table = pd.read_csv(path)
    return json.loads(table[table["task"].isin(TASKS)].to_json(orient="records"))


def machine(threads: str) -> str:
    return f"{cpu_model_name()}, {os.cpu_count()} cores, torch {torch_version()}; {threads}"


def torch_version() -> str:
    import torch

    return torch.__version__


def table_record(run: Path, load: str, threads: str) -> dict[str, Any]:
    return {
        "command": COMMAND.replace("--seed S", f"--seed {run_seed(run)}"),
        "machine": machine(threads),
        "load": load,
        "provenance": f"{run}/auc_table.csv, written by the command, read by python -m benchmarks.demo",
        "auc_table": auc_rows(run),
    }


def seeds_record(runs: Sequence[Path], load: str, threads: str) -> dict[str, Any]:
    rows = []
    for run in runs:
        by_task = {row["task"]: row["ensemble"] for row in auc_rows(run)}
        aucs = [by_task[t] for t in TASKS]
        rows.append([str(run_seed(run)), *(f"{a:.4f}" for a in aucs), f"{sum(aucs) / len(aucs):.4f}"])
    columns = ["seed", *TASKS, "mean"]
    spread = [f"{min(float(r[i]) for r in rows):.4f}-{max(float(r[i]) for r in rows):.4f}" for i in range(1, 5)]
    return {
        "title": "The demo's ensemble AUCs over seeds (same data, same machine)",
        "command": COMMAND,
        "machine": machine(threads),
        "load": load,
        "split": "each task's ensemble on the valid split, held out; the 20-exam tuning split chose every "
        "model's epoch and fitted the stackers",
        "columns": columns,
        "rows": [*rows, ["range", *spread]],
        "provenance": "the runs' auc_table.csv files, read by python -m benchmarks.demo: "
        + ", ".join(str(r) for r in runs),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of `make demo`, one per seed")
    parser.add_argument("--table", type=Path, help="write the first run's AUC table record here")
    parser.add_argument("--seeds", type=Path, help="write the spread over the runs' seeds here")
    parser.add_argument("--load", default="not recorded", help="the machine's load while the runs trained")
    parser.add_argument("--threads", default="threads as the command chose", help="how many threads the runs used")
    args = parser.parse_args(argv)
    if args.table:
        write_json(args.table, table_record(args.runs[0], args.load, args.threads))
    if args.seeds:
        write_json(args.seeds, seeds_record(args.runs, args.load, args.threads))


if __name__ == "__main__":
    main()
