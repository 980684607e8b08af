"""Adam's three implementations in a real training step: `python -m benchmarks.optimizer`.

torch's Adam runs as a loop over parameters (its CPU default), as `foreach` (one op per kind
of update, its CUDA default) or `fused` (one kernel). Training uses `fused` where torch has
it (mrnet.training.setup.adam). This times one training epoch of synthetic exams with each,
through the training's own epoch (train_one_epoch, bf16 autocast and channels_last as the
defaults), the variants alternating round by round, and reports how far each one's weights
end from the loop's: the three are the same update, not the same rounding.

    python -m benchmarks.optimizer --size 64 --slices 8 14 --exams 120 --rounds 5 --json docs/measured/adam-cpu.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrnet.cli.common import run_cli
from mrnet.data.series import load_series
from mrnet.device import resolve_amp, stage_series
from mrnet.files import write_json
from mrnet.models import ModelArgs, build_model, memory_format
from mrnet.training.engine import train_one_epoch

from .busy import command_line, machine
from .exams import select_exams, write_synthetic_exams

VARIANTS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def new_run(variant: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The same initial weights for every variant (seed 0), and its Adam."""
    torch.manual_seed(0)
    model = build_model(pretrained=False, args=ModelArgs())
    model = model.to(memory_format=memory_format(model))
    return model, torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4, **VARIANTS[variant])


def epoch(model, optimizer, series, labels, amp_dtype) -> float:
    """Seconds for one pass over every exam, one exam per step."""
    started = time.perf_counter()
    train_one_epoch(
        model, optimizer, series, labels, list(range(len(series))), None, 1.5, torch.device("cpu"), amp_dtype
    )
    return time.perf_counter() - started


def largest_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(
        float((p - q).abs().max()) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def as_record(results: dict[str, Any]) -> dict[str, Any]:
    """The keys that make the results file a docs record (benchmarks.tables, a one-off experiment)."""
    cfg = results["config"]
    rows = [
        [
            name,
            f"{v['ms_per_step']:.1f}",
            f"{results['variants']['loop']['ms_per_step'] / v['ms_per_step']:.2f}x",
            f"{v['largest_weight_difference_from_loop']:.1e}",
        ]
        for name, v in results["variants"].items()
    ]
    loads = results["load_at_rounds"]
    return {
        "title": f"Adam's implementations in a training step ({cfg['size']} px, {cfg['exams']} exams, "
        f"{cfg['threads']} thread, {cfg['amp']})",
        "command": results["command"],
        "machine": machine(),
        "load": f"load average {min(loads):.1f}-{max(loads):.1f} at the rounds' starts",
        "split": "synthetic training exams; no split is scored",
        "columns": ["Adam", "ms per step (median of rounds)", "speed-up over the loop", "largest weight difference"],
        "rows": rows,
        "provenance": f"written by `{results['command']}` on {time.strftime('%Y-%m-%d')}",
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="slice size in pixels (default 64, the demo's)")
    parser.add_argument("--slices", type=int, nargs=2, default=(8, 14), help="slices per series, min max")
    parser.add_argument("--exams", type=int, default=40, help="exams per epoch (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, a sweep worker's)")
    parser.add_argument("--amp", default="auto", help="as --amp of training (default auto: bf16 on the CPU)")
    parser.add_argument("--json", default="bench/adam.json", help="results file ('' writes none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    amp_dtype = resolve_amp(args.amp, torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="mrnet-adam-") as folder:
        write_synthetic_exams(Path(folder), args.exams, args.size, tuple(args.slices), seed=0)
        exams = select_exams(Path(folder), "sagittal", args.exams)
        series = stage_series([load_series(Path(p)) for p in exams.paths], torch.device("cpu"))
    labels = np.asarray(exams.labels)
    runs = {name: new_run(name) for name in VARIANTS}
    for model, optimizer in runs.values():  # a warm-up epoch each: Adam's state, oneDNN's first-time setup
        epoch(model, optimizer, series, labels, amp_dtype)
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    loads = []
    for round_ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            seconds[name].append(epoch(*runs[name], series, labels, amp_dtype))
            print(f"round {round_ + 1} {name:8s} {seconds[name][-1] / len(series) * 1e3:.1f} ms/step")
    results = {
        "benchmark": "mrnet adam",
        "command": command_line(),
        "config": {"size": args.size, "exams": args.exams, "threads": args.threads, "amp": str(amp_dtype or "fp32")},
        "load_at_rounds": loads,
        "variants": {
            name: {
                "ms_per_step": statistics.median(seconds[name]) / len(series) * 1e3,
                "ms_per_step_all": [s / len(series) * 1e3 for s in seconds[name]],
                "largest_weight_difference_from_loop": largest_difference(runs[name][0], runs["loop"][0]),
            }
            for name in VARIANTS
        },
    }
    results["config"]["amp"] = results["config"]["amp"].replace("torch.", "")
    results.update(as_record(results))
    if args.json:
        write_json(Path(args.json), results)
    return results


if __name__ == "__main__":
    run_cli(main)
