"""Whole sweeps side by side: backbone x pooling x single/multi-task on one dataset.

Each configuration runs the real `train_all` command in a fresh process, so its time is
the wait a user would see (training, the tuning split's predictions, the stackers), then
reads back what that command wrote:

    AUC          per task, the ensemble's on the valid split (auc_table.csv). Under the
                 default protocol the tuning split chose the epochs and fitted the
                 stackers, and the valid split was scored once, at the end.
    parameters   of one trained network (a multi-task network has three outputs)
    predict      seconds per exam with every model loaded: `run_predict` on the first
                 `--predict-exams` valid exams, less a one-exam run (loading, start-up),
                 the fastest of 3 runs each

A configuration is BACKBONE/POOL/single|multi, e.g. `alexnet/max/single` (the demo's nine
models) or `resnet18/max/multi` (`--task all`: three networks). Each finished one leaves
`<out>/<name>.json`; rerunning skips it, so configurations can run in separate processes. The models
folders and training logs go to `--models-out` (default: `--out`), so the results can live apart from
them (the docs read theirs from docs/measured/).

    python -m benchmarks.sweeps --data-dir data/synthetic --out bench/sweeps alexnet/max/single alexnet/max/multi
    python -m benchmarks.sweeps --out bench/sweeps --table
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mrnet import PLANES, TASKS
from mrnet.checkpoint import load_checkpoint
from mrnet.cli.common import run_cli
from mrnet.errors import MRNetError
from mrnet.files import json_text, write_json
from mrnet.models import ModelArgs
from mrnet.models.build import new_model
from mrnet.names import BACKBONE_NAMES, POOL_NAMES
from mrnet.prediction import PredictConfig, run_predict

# `make demo`'s training settings: from scratch, 8 epochs, no augmentation.
DEMO_SETTINGS = "--no-pretrained --epochs 8 --lr 1e-4 --weight-decay 1e-4 --no-augment --patience 0 --seed 0"
KINDS = ("single", "multi")
REPEATS = 3  # prediction runs timed per exam count; the fastest counts (least disturbed by other work)


@dataclass(frozen=True)
class Sweep:
    """One configuration of the table: which network, which pooling, nine models or three."""

    backbone: str
    pool: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.backbone}-{self.pool}-{self.kind}"

    def train_args(self) -> list[str]:
        args = ["--backbone", self.backbone, "--pool", self.pool]
        return args + (["--task", "all"] if self.kind == "multi" else [])


def parse_sweep(text: str) -> Sweep:
    """BACKBONE/POOL/single|multi, each part checked against the options train_all accepts."""
    parts = text.split("/")
    if len(parts) != 3:
        raise MRNetError(f"configuration {text!r}: expected BACKBONE/POOL/single|multi, e.g. alexnet/max/single")
    sweep = Sweep(*parts)
    for what, value, allowed in (
        ("backbone", sweep.backbone, BACKBONE_NAMES),
        ("pool", sweep.pool, POOL_NAMES),
        ("kind", sweep.kind, KINDS),
    ):
        if value not in allowed:
            raise MRNetError(f"configuration {text!r}: {what} {value!r} is not one of {', '.join(allowed)}")
    return sweep


def train_sweep(sweep: Sweep, data_dir: Path, models_dir: Path, settings: list[str]) -> tuple[float, list[str]]:
    """Run train_all in its own process; wall seconds and the command line. Its output goes to train.log."""
    command = [sys.executable, "-m", "mrnet", "train-all", "--data-dir", str(data_dir), "--models-dir", str(models_dir)]
    command += settings + sweep.train_args() + ["--overwrite"]
    models_dir.mkdir(parents=True, exist_ok=True)
    log = models_dir.parent / f"{sweep.name}.train.log"
    started = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise MRNetError(f"{sweep.name}: train_all exited with {done.returncode}; see {log}")
    return seconds, command


def network_parameters(models_dir: Path, sweep: Sweep) -> int:
    """Parameters of one trained network, rebuilt (without weights) from its checkpoint's model_args."""
    owner = "all" if sweep.kind == "multi" else TASKS[0]
    ckpt = load_checkpoint(models_dir / f"{owner}-{PLANES[-1]}" / "best.pt")
    with torch.device("meta"):
        model = new_model(ModelArgs.from_dict(ckpt.get("model_args")))
    return sum(p.numel() for p in model.parameters())


def valid_cases(data_dir: Path, count: int) -> Path:
    """A competition-style input CSV (three rows per case) of the first `count` valid exams."""
    cases = sorted(p.stem for p in (data_dir / "valid" / PLANES[0]).glob("*.npy"))[:count]
    rows = [str((data_dir / "valid" / plane / f"{case}.npy").resolve()) for case in cases for plane in PLANES]
    handle, name = tempfile.mkstemp(suffix=".csv")
    os.close(handle)
    Path(name).write_text("\n".join(rows) + "\n")
    return Path(name)


def predict_seconds(models_dir: Path, data_dir: Path, exams: int) -> float:
    """Marginal seconds per exam of `run_predict` (all tasks, three planes, the stackers) on the CPU."""

    def timed_run(count: int) -> float:
        csv = valid_cases(data_dir, count)
        try:
            with tempfile.TemporaryDirectory() as out:
                config = PredictConfig(models_dir=str(models_dir), input_csv=str(csv), out=out, device="cpu")
                started = time.perf_counter()
                run_predict(config, log=lambda line: None)
                return time.perf_counter() - started
        finally:
            csv.unlink()

    timed_run(1)  # warm-up: imports, allocator, thread pools
    fastest = {count: min(timed_run(count) for _ in range(REPEATS)) for count in (1, exams)}
    return (fastest[exams] - fastest[1]) / (exams - 1)


def ensemble_aucs(models_dir: Path) -> dict[str, Any]:
    """Per task the valid split's ensemble AUC and best plane, with what fitted the stacker."""
    table = pd.read_csv(models_dir / "auc_table.csv")
    rows = {}
    for row in table.itertuples():
        rows[row.task] = {
            "split": row.split,
            "ensemble": float(row.ensemble),
            "planes": {plane: float(getattr(row, plane)) for plane in PLANES},
            "fit_on": row.ensemble_fit_on,
        }
    return rows


def measure(sweep: Sweep, data_dir: Path, models_out: Path, settings: list[str], predict_exams: int) -> dict[str, Any]:
    models_dir = models_out / sweep.name
    load_before = os.getloadavg()[0]
    seconds, command = train_sweep(sweep, data_dir, models_dir, settings)
    load_after = os.getloadavg()[0]
    return {
        "sweep": asdict(sweep),
        "command": " ".join(command),
        "train_seconds": round(seconds, 1),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "threads": os.environ.get("OMP_NUM_THREADS", "torch default"),
        "networks": len(PLANES) * (1 if sweep.kind == "multi" else len(TASKS)),
        "parameters": network_parameters(models_dir, sweep),
        "predict_seconds_per_exam": round(predict_seconds(models_dir, data_dir, predict_exams), 4),
        "auc": ensemble_aucs(models_dir),
    }


def results_table(out: Path) -> pd.DataFrame:
    """One row per finished configuration, with the time relative to the first single-task AlexNet max row."""
    rows = []
    for path in sorted(out.glob("*.json")):
        result = json.loads(path.read_text())
        sweep, auc = result["sweep"], result["auc"]
        row = {
            "backbone": sweep["backbone"],
            "pool": sweep["pool"],
            "models": "9 single-task" if sweep["kind"] == "single" else "3 multi-task",
            "parameters": f"{result['parameters'] / 1e6:.2f} M",
        }
        row.update({task: auc[task]["ensemble"] for task in TASKS if task in auc})
        row["mean"] = sum(auc[t]["ensemble"] for t in TASKS) / len(TASKS)
        row["train s"] = result["train_seconds"]
        row["predict s/exam"] = result["predict_seconds_per_exam"]
        row["load avg"] = "-".join(f"{v:.1f}" for v in result["load_average"])
        rows.append(row)
    table = pd.DataFrame(rows)
    baseline = table[(table.backbone == "alexnet") & (table.pool == "max") & (table.models == "9 single-task")]
    if len(table) and len(baseline):
        table["time vs demo"] = (table["train s"] / baseline["train s"].iloc[0]).round(2)
    return table


def markdown(table: pd.DataFrame) -> str:
    """A GitHub table (AUCs to 4 places)."""
    shown = table.copy()
    for column in (*TASKS, "mean"):
        if column in shown:
            shown[column] = shown[column].map(lambda v: f"{v:.4f}")
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="*", help="configurations BACKBONE/POOL/single|multi")
    parser.add_argument("--data-dir", default="data/synthetic", help="MRNet-v1.0 layout folder (default %(default)s)")
    parser.add_argument("--out", default="bench/sweeps", help="results: a JSON per configuration (default %(default)s)")
    parser.add_argument("--models-out", default=None, help="models folders and training logs (default: --out)")
    parser.add_argument("--settings", default=DEMO_SETTINGS, help="train_all options shared by every configuration")
    parser.add_argument("--predict-exams", type=int, default=20, help="valid exams timed by predict (default 20)")
    parser.add_argument("--rerun", action="store_true", help="train configurations that already have results")
    parser.add_argument("--table", action="store_true", help="print the table of every finished configuration")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sweeps = [parse_sweep(text) for text in args.sweeps]
    if args.predict_exams < 2:
        raise MRNetError("--predict-exams must be at least 2 (a one-exam run is subtracted)")
    out, data_dir = Path(args.out), Path(args.data_dir)
    if sweeps and not (data_dir / "valid").is_dir():
        raise MRNetError(f"--data-dir {data_dir}: no valid/ folder (make one with scripts/make_synthetic.py)")
    for sweep in sweeps:
        result_file = out / f"{sweep.name}.json"
        if result_file.exists() and not args.rerun:
            print(f"{sweep.name}: already measured ({result_file}); --rerun to train again")
            continue
        print(f"{sweep.name}: training ({args.settings} {' '.join(sweep.train_args())})", flush=True)
        models_out = Path(args.models_out) if args.models_out else out
        result = measure(sweep, data_dir, models_out, args.settings.split(), args.predict_exams)
        write_json(result_file, result)
        print(json_text(result), flush=True)
    if args.table or not sweeps:
        print(markdown(results_table(out)))


def run(argv: list[str] | None = None) -> None:
    run_cli(main, argv)


if __name__ == "__main__":
    run()
