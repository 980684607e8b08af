"""The thread policy on a quiet and on a busy machine: `python scripts/benchmark.py --background K`.

A shared machine is the usual case: other jobs keep some cores busy. This starts K
CPU-bound processes of its own (stopped on every way out, Ctrl-C included; each also ends
by itself when the benchmark's process is gone), and times the project's training phase
with `--threads auto` (what every command uses by default) and with each fixed count from
1 to the usable CPUs, alternating the options within each round so a change in the
machine's other load hits every option alike. It reports the default's rate against the
best fixed count's, quiet and busy, as ratios.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from mrnet.device import resolve_device
from mrnet.threads import usable_cpus

from .exams import exam_folder, select_exams
from .results import cpu_model_name

# Busy work that stops when its parent does, even if the parent is killed without cleaning up.
SPIN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    sum(range(100000))\n"


@contextmanager
def background_load(count: int) -> Iterator[list[subprocess.Popen]]:
    """`count` CPU-bound processes for the duration of the block; always stopped and reaped."""
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen([sys.executable, "-c", SPIN]))
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def load_average() -> float:
    return os.getloadavg()[0]


def compare_policies(cfg) -> dict[str, Any]:
    """Training rate of each thread option, quiet then busy, `repeats` alternating rounds each."""
    from .throughput import run_isolated, run_phase, validate_config, with_device_defaults

    validate_config(cfg)
    device = resolve_device(cfg.device)
    cfg = with_device_defaults(replace(cfg, mode="train", project_only=True), device)
    options = ["auto", *(str(n) for n in range(1, usable_cpus() + 1))]
    print("thread policy benchmark: " + ", ".join(f"{k}={v}" for k, v in asdict(cfg).items()), flush=True)
    conditions: dict[str, dict[str, Any]] = {}
    with exam_folder(cfg.data_dir, cfg.exams, cfg.size, (cfg.min_slices, cfg.max_slices), cfg.seed) as folder:
        exams = select_exams(folder, cfg.plane, cfg.exams)
        for condition, busy in (("quiet", 0), ("busy", cfg.background)):
            rates: dict[str, list[float]] = {option: [] for option in options}
            plans: dict[str, list[str]] = {option: [] for option in options}
            loads = []
            with background_load(busy):
                for round_ in range(cfg.repeats):
                    for option in options if round_ % 2 == 0 else reversed(options):
                        loads.append(load_average())
                        run = run_isolated if cfg.isolate else run_phase
                        result = run(replace(cfg, threads=option), exams, "project", "train")
                        rates[option].append(len(exams.paths) / result["seconds"])
                        plans[option].append(result["thread_plan"])
                        print(
                            f"  {condition} ({busy} busy processes, load {loads[-1]:.1f}), threads {option}: "
                            f"{rates[option][-1]:.3f} exams/s ({result['thread_plan']})",
                            flush=True,
                        )
            conditions[condition] = summarise(rates, plans, busy, loads)
    results = {
        "benchmark": "mrnet thread policy",
        "command": command_line(),
        "config": asdict(cfg),
        "cpus": usable_cpus(),
        "conditions": conditions,
    }
    return {**results, **as_record(results, options)}


def command_line() -> str:
    """This run's command as a user types it: `python -m benchmarks.NAME …` or `python scripts/benchmark.py …`."""
    program = Path(sys.argv[0])
    if program.parent.name == "benchmarks":
        head = f"python -m benchmarks.{program.stem}"
    else:
        head = f"python {'scripts/' if program.parent.name == 'scripts' else ''}{program.name}"
    return " ".join([head, *sys.argv[1:]])


def machine() -> str:
    """The CPU, the CPUs this process may use and torch's version, for a record's 'machine'."""
    return f"{cpu_model_name()}, {usable_cpus()} usable CPUs, torch {torch.__version__}"


def as_record(results: dict[str, Any], options: list[str]) -> dict[str, Any]:
    """The keys that make the results file a docs record (benchmarks.tables, a one-off experiment)."""
    cfg = results["config"]
    loads = "; ".join(
        f"{name}: {c['background_processes']} busy processes of the benchmark's own, load average "
        f"{c['load_average']['min']:.1f}-{c['load_average']['max']:.1f} at the phases' starts"
        for name, c in results["conditions"].items()
    )
    rows = [
        [
            f"{name} (+{c['background_processes']} processes of its own)",
            *(f"{c['exams_per_s'][o]:.2f}" for o in options),
            "; ".join(c["auto_chose"]),
            f"{c['best_over_auto']:.2f}x",
        ]
        for name, c in results["conditions"].items()
    ]
    return {
        "title": "training exams/s with --threads auto and with each fixed count, quiet and busy",
        "machine": machine(),
        "load": loads,
        "split": f"no AUC: training rates on {cfg['exams']} synthetic exams at {cfg['size']} px, medians of "
        f"{cfg['repeats']} alternating rounds",
        "columns": ["machine", *(f"threads {o}" for o in options), "auto chose", "best fixed / auto"],
        "rows": rows,
        "provenance": f"written by `{results['command']}` on {time.strftime('%Y-%m-%d')}",
    }


def summarise(rates: dict[str, list[float]], plans: dict[str, list[str]], busy: int, loads: list[float]) -> dict:
    """Median rate per option; the default (auto) against the best fixed count."""
    medians = {option: statistics.median(values) for option, values in rates.items()}
    fixed = {option: rate for option, rate in medians.items() if option != "auto"}
    best = max(fixed, key=fixed.__getitem__)
    return {
        "background_processes": busy,
        "load_average": {"min": min(loads), "max": max(loads)},
        "exams_per_s": medians,
        "exams_per_s_all": rates,
        "auto_chose": sorted(set(plans["auto"])),
        "best_fixed": best,
        "best_over_auto": fixed[best] / medians["auto"],
    }


def format_policies(results: dict[str, Any]) -> str:
    """One row per condition: each option's rate and how far the default is from the best fixed count."""
    options = list(next(iter(results["conditions"].values()))["exams_per_s"])
    lines = [
        f"training exams/s, project side ({results['cpus']} usable CPUs)",
        f"{'machine':<26}" + "".join(f"{'threads ' + o:>12}" for o in options) + f"{'best / auto':>13}",
    ]
    for name, c in results["conditions"].items():
        label = f"{name} (load {c['load_average']['min']:.1f}-{c['load_average']['max']:.1f})"
        cells = "".join(f"{c['exams_per_s'][o]:>12.3f}" for o in options)
        lines.append(f"{label:<26}{cells}{c['best_over_auto']:>12.2f}x")
    for name, c in results["conditions"].items():
        lines.append(f"auto chose, {name}: {'; '.join(c['auto_chose'])}")
    return "\n".join(lines)
