"""From timed runs to results: rates, speed-ups over the reference, the JSON results and the console table."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from typing import Any

import torch

from mrnet import __version__

from .exams import ExamSet

EPOCH_EXAMS = 1130  # MRNet's training split
MEAN_SLICES = 31.5  # MRNet's mean slices per series
# Speed-ups the project paths should reach over the reference loop, per device type.
TARGETS = {"cpu": {"train": 1.5, "eval": 3.0}}


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: torch.device, threads: int) -> dict[str, Any]:
    """What the rates depend on: the device and, on the CPU, the threads and the instruction sets torch uses."""
    info: dict[str, Any] = {"type": device.type, "torch": torch.__version__}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["bf16"] = torch.cuda.is_bf16_supported()
    else:
        info["name"] = cpu_model_name()
        info["threads"] = threads
        info["cores"] = os.cpu_count()
        info["capability"] = torch.backends.cpu.get_cpu_capability()
        info["mkldnn"] = bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
        info["mkldnn_bf16"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return info


def epoch_basis(device_type: str) -> str:
    """How an epoch's seconds are extrapolated: from the slice rate on the CPU, whose cost grows with the
    slices; from the exam rate on CUDA, where a step's cost is mostly per step (its ops, launched by the host)."""
    if device_type == "cuda":
        return f"{EPOCH_EXAMS} exams, from the exam rate"
    return f"{EPOCH_EXAMS} exams x {MEAN_SLICES} slices, from the slice rate"


def summarise_phase(runs: list[dict[str, Any]], exams: ExamSet, device_type: str = "cpu") -> dict[str, Any]:
    """Rates from the median of the repeated runs; the peak is the largest seen; the epoch as `epoch_basis` says."""
    seconds = statistics.median(run["seconds"] for run in runs)
    slices_per_s = exams.slices / seconds
    summary = {k: v for k, v in runs[0].items() if k not in ("seconds", "warmup_seconds", "peak_mem_mb")}
    summary.update(
        exams=len(exams.paths),
        slices=exams.slices,
        seconds=seconds,
        seconds_all=[run["seconds"] for run in runs],
        warmup_seconds=statistics.median(run["warmup_seconds"] for run in runs),
        exams_per_s=len(exams.paths) / seconds,
        slices_per_s=slices_per_s,
        epoch_seconds=(
            EPOCH_EXAMS / (len(exams.paths) / seconds)
            if device_type == "cuda"
            else EPOCH_EXAMS * MEAN_SLICES / slices_per_s
        ),
        peak_mem_mb=max(run["peak_mem_mb"] for run in runs),
    )
    return summary


def speedups(phases: dict[str, dict[str, Any]]) -> dict[str, float]:
    """project rate / reference rate for each mode measured on both sides."""
    ratios = {}
    for mode in ("train", "eval"):
        reference, project = phases.get(f"reference_{mode}"), phases.get(f"project_{mode}")
        if reference and project:
            ratios[mode] = project["slices_per_s"] / reference["slices_per_s"]
    return ratios


def build_results(
    config: dict[str, Any], device: torch.device, exams: ExamSet, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The results file's content; `config` is the run's settings as a dict, device defaults filled in."""
    phases = {name: summarise_phase(phase_runs, exams, device.type) for name, phase_runs in runs.items()}
    threads = next(iter(phases.values()))["threads"]
    ratios = speedups(phases)
    targets = TARGETS.get(device.type, {})
    return {
        "benchmark": "mrnet throughput",
        "mrnet": __version__,
        "command": " ".join(sys.argv),
        "config": config,
        "device": describe_device(device, threads),
        "data": {
            "source": config["data_dir"] or "synthetic (mrnet.synthetic.make_dataset)",
            "plane": config["plane"],
            "exams": len(exams.paths),
            "size": exams.size,
            "slices_total": exams.slices,
            "slices_min": min(exams.slice_counts),
            "slices_max": max(exams.slice_counts),
            "slices_mean": exams.slices / len(exams.paths),
            "epoch_basis": epoch_basis(device.type),
        },
        "phases": phases,
        "speedup": ratios,
        "targets": {
            mode: {"target": t, "measured": ratios.get(mode), "met": ratios.get(mode, 0) >= t}
            for mode, t in targets.items()
            if mode in ratios
        },
    }


def format_table(results: dict[str, Any]) -> str:
    """The console summary: one row per phase, the ratio to the reference, and the targets."""
    device, data = results["device"], results["data"]
    where = device["name"] + (
        f", {device['threads']} threads, mkldnn {'on' if device['mkldnn'] else 'off'}"
        if device["type"] == "cpu"
        else ""
    )
    lines = [
        f"device  {device['type']} ({where}), torch {device['torch']}",
        f"model   {results['config'].get('backbone', 'alexnet')}, pool {results['config'].get('pool', 'max')} "
        "(project side)",
        f"data    {data['exams']} exams, {data['size']} px, {data['slices_min']}-{data['slices_max']} slices "
        f"(mean {data['slices_mean']:.1f}, {data['slices_total']} in all), {data['plane']}",
        "",
        phase_table(results),
    ]
    project = next((p for p in results["phases"].values() if p["side"] == "project"), None)
    if project is not None:
        lines.append(
            f"project cache: {project['cache_mb']:.0f} MB uint8 for these exams "
            f"(read in {project['cache_seconds']:.2f} s, once per run); amp {project['amp_dtype']}"
        )
    for mode, target in results["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        lines.append(f"target {mode}: >= {target['target']:.1f}x, measured {target['measured']:.2f}x: {verdict}")
    return "\n".join(lines)


def phase_table(results: dict[str, Any]) -> str:
    """The table's core (the docs show it too): one row per phase with its rates and the ratio to the reference."""
    data = results["data"]
    lines = [
        f"{'phase':<17}{'exams/s':>9}{'slices/s':>10}{'s/epoch*':>10}{'peak MB':>9}{'warm-up s':>11}{'vs ref':>8}",
    ]
    ratios = results["speedup"]
    for phase in results["phases"].values():
        ratio = f"{ratios[phase['mode']]:.2f}x" if phase["side"] == "project" and phase["mode"] in ratios else ""
        lines.append(
            f"{phase['side'] + ' ' + phase['mode']:<17}{phase['exams_per_s']:>9.3f}{phase['slices_per_s']:>10.1f}"
            f"{phase['epoch_seconds']:>10.0f}{phase['peak_mem_mb']:>9.0f}{phase['warmup_seconds']:>11.1f}{ratio:>8}"
        )
    lines.append(
        f"* {data['epoch_basis']}; peak MB = "
        f"{next(iter(results['phases'].values()))['peak_mem_kind']} above the phase's start"
    )
    return "\n".join(lines)
