"""Throughput of training and evaluation: this package's paths against a loop written like public MRNet code.

Both sides see the same exams, the same model initialisation and the same optimiser:

    reference  np.load per exam from disk, augmentation slice by slice with PIL, float64
               numpy preprocessing copied into 3 channels, one exam per step in fp32, a
               `.item()` per exam, ROC AUC recomputed after every exam, and evaluation one
               exam at a time without `torch.no_grad` (what the public loops do)
    project    `engine.train_one_epoch` with `transforms.SeriesAugment` and
               `engine.evaluate` (batched `predict_logits`), fed from an in-memory uint8
               cache read with `data.load_series`, the reader behind `data.check_and_load`

Each phase (reference/project x train/eval) runs in a fresh process, so one phase's memory
high-water mark, allocator state and thread pools do not leak into the next. Rates are
measured after `warmup` steps; the seconds per epoch are extrapolated from the slice rate
to MRNet's 1,130 training exams of 31.5 slices on average (synthetic exams average more
slices, so the exam rate alone would understate an epoch's speed).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

from . import PLANES, __version__
from .data import check_and_load, load_series, series_path
from .device import AMP_MODES, resolve_amp, resolve_device
from .engine import epoch_augment, evaluate, train_one_epoch
from .errors import MRNetError
from .metrics import auc_or_nan, positive_class_weight
from .model import MRNet, build_model
from .runinfo import write_json
from .transforms import MRNET_MEAN, MRNET_STD

EPOCH_EXAMS = 1130  # MRNet's training split
MEAN_SLICES = 31.5  # MRNet's mean slices per series
LR, WEIGHT_DECAY = 1e-5, 0.01  # the paper's Adam settings, used by both sides
MAX_ROTATION_DEG, MAX_SHIFT_PX_AT_256 = 25.0, 25.0
MODES = ("train", "eval", "both")
# (exams, size) when not given: CUDA as in the issue; CPU small enough for about 2-3 minutes on 2 cores.
DEFAULT_SCALE = {"cuda": (32, 256), "cpu": (8, 256)}
# Speed-ups the project paths should reach over the reference loop, per device type.
TARGETS = {"cpu": {"train": 1.5, "eval": 3.0}}
SYNTHETIC_VALID_EXAMS = 1  # make_dataset needs one; the benchmark does not read it


@dataclass
class BenchConfig:
    """One benchmark run; `exams` and `size` left as None take the device's defaults."""

    device: str = "auto"
    exams: int | None = None
    size: int | None = None
    min_slices: int = 17
    max_slices: int = 61
    plane: str = "sagittal"
    data_dir: str | None = None  # an existing MRNet-layout folder; None writes synthetic exams
    warmup: int = 1
    repeats: int = 1
    mode: str = "both"
    project_only: bool = False
    amp: str = "auto"
    channels_last: bool = True
    exams_per_step: int = 1
    eval_max_slices: int = 512
    compile: bool = False
    threads: int | None = None
    isolate: bool = True  # each phase in a fresh process (clean peak memory); False: all in this one
    seed: int = 0
    json: str | None = "bench/benchmark.json"


@dataclass(frozen=True)
class ExamSet:
    """The exams both sides read: file paths, labels, and slice counts (for the rates)."""

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    slice_counts: tuple[int, ...]
    size: int

    @property
    def slices(self) -> int:
        return sum(self.slice_counts)


# ----------------------------------------------------------------------------- config


def validate_config(cfg: BenchConfig) -> None:
    problems = []
    if cfg.exams is not None and cfg.exams < 2:
        problems.append(f"--exams {cfg.exams}: at least 2 (the loss weight needs both classes)")
    if cfg.size is not None and not 64 <= cfg.size <= 1024:
        problems.append(f"--size {cfg.size}: between 64 and 1024 pixels")
    if not 1 <= cfg.min_slices <= cfg.max_slices:
        problems.append(f"--slices {cfg.min_slices} {cfg.max_slices}: need 1 <= MIN <= MAX")
    if cfg.plane not in PLANES:
        problems.append(f"--plane {cfg.plane}: choose one of {', '.join(PLANES)}")
    if cfg.warmup < 0:
        problems.append(f"--warmup {cfg.warmup}: 0 or more")
    if cfg.repeats < 1:
        problems.append(f"--repeats {cfg.repeats}: at least 1")
    if cfg.mode not in MODES:
        problems.append(f"--mode {cfg.mode}: choose one of {', '.join(MODES)}")
    if cfg.amp not in AMP_MODES:
        problems.append(f"--amp {cfg.amp}: choose one of {', '.join(AMP_MODES)}")
    if cfg.exams_per_step < 1:
        problems.append(f"--exams-per-step {cfg.exams_per_step}: at least 1")
    if cfg.eval_max_slices < 1:
        problems.append(f"--eval-max-slices {cfg.eval_max_slices}: at least 1")
    if cfg.threads is not None and cfg.threads < 1:
        problems.append(f"--threads {cfg.threads}: at least 1")
    if problems:
        raise MRNetError("; ".join(problems))


def with_device_defaults(cfg: BenchConfig, device: torch.device) -> BenchConfig:
    exams, size = DEFAULT_SCALE["cuda" if device.type == "cuda" else "cpu"]
    return replace(cfg, exams=cfg.exams or exams, size=cfg.size or size)


def phases_of(cfg: BenchConfig) -> list[tuple[str, str]]:
    """(side, mode) pairs in the order they run; each side of a mode runs back to back."""
    modes = ("train", "eval") if cfg.mode == "both" else (cfg.mode,)
    sides = ("project",) if cfg.project_only else ("reference", "project")
    return [(side, mode) for mode in modes for side in sides]


# ----------------------------------------------------------------------------- data


def write_synthetic_exams(root: Path, cfg: BenchConfig) -> None:
    """Synthetic knees in the MRNet layout; their slice counts are drawn from [min, max] like MRNet's."""
    from .synthetic import make_dataset

    make_dataset(root, n_train=cfg.exams, n_valid=SYNTHETIC_VALID_EXAMS, size=cfg.size, seed=cfg.seed,
                 slices=(cfg.min_slices, cfg.max_slices))


def select_exams(data_dir: Path, plane: str, count: int) -> ExamSet:
    """The first `count` training exams of a plane, checked the way training checks them.

    Labels alternate 0/1 so that any subset holds both classes; speed does not depend on
    them, and the loss weight and the AUC need both.
    """
    split = check_and_load(data_dir, tasks=("acl",), planes=(plane,), splits=("train",), load=False)[("train", plane)]
    if len(split.cases) < count:
        raise MRNetError(f"--data-dir {data_dir}: {len(split.cases)} train exams, fewer than --exams {count}")
    cases = split.cases[:count]
    shapes = [split.series[c].shape for c in cases]
    sizes = {shape[-1] for shape in shapes}
    if len(sizes) != 1:
        raise MRNetError(f"--data-dir {data_dir}: exams of several sizes {sorted(sizes)}; the benchmark needs one")
    return ExamSet(
        paths=tuple(str(series_path(data_dir, "train", plane, c)) for c in cases),
        labels=tuple(i % 2 for i in range(count)),
        slice_counts=tuple(int(shape[0]) for shape in shapes),
        size=sizes.pop(),
    )


@contextmanager
def exam_folder(cfg: BenchConfig) -> Iterator[Path]:
    """The folder to read: --data-dir as given, or synthetic exams in a temporary folder removed afterwards."""
    if cfg.data_dir:
        yield Path(cfg.data_dir)
        return
    with tempfile.TemporaryDirectory(prefix="mrnet-bench-") as tmp:
        root = Path(tmp) / "MRNet-v1.0"
        print(f"writing {cfg.exams} synthetic exams of {cfg.size} px to a temporary folder ...", flush=True)
        started = time.perf_counter()
        write_synthetic_exams(root, cfg)
        print(f"  done in {time.perf_counter() - started:.1f} s (not part of any measurement)", flush=True)
        yield root


# ----------------------------------------------------------------------------- the reference loop


def reference_augment(volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation, shift and flip applied one slice at a time through PIL, as the public loaders do.

    One draw per series (the public code drew per slice, a defect that does not change the
    work done), so both sides apply the same kind of transform.
    """
    size = volume.shape[-1]
    angle = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
    shift_x, shift_y = rng.uniform(-MAX_SHIFT_PX_AT_256, MAX_SHIFT_PX_AT_256, size=2) * size / 256
    flip = rng.random() < 0.5
    out = np.empty_like(volume)
    for index, image in enumerate(volume):
        warped = Image.fromarray(image).rotate(angle, resample=Image.Resampling.BILINEAR,
                                               translate=(shift_x, shift_y))
        if flip:
            warped = warped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out[index] = np.asarray(warped)
    return out


def reference_read_exam(path: str, rng: np.random.Generator | None) -> np.ndarray:
    """Per step, as the public loaders do: read from disk, augment, scale in float64, copy to 3 channels.

    uint8 (s, H, W) on disk -> float32 (s, 3, H, W).
    """
    volume = np.load(path)
    if rng is not None:
        volume = reference_augment(volume, rng)
    low, high = volume.min(), volume.max()
    scaled = (volume - low) / max(float(high) - float(low), 1e-6) * 255.0  # float64
    normalised = (scaled - MRNET_MEAN) / MRNET_STD
    return np.stack([normalised] * 3, axis=1).astype(np.float32)


def auc_so_far(y_true: Sequence[int], y_prob: Sequence[float]) -> float:
    """ROC AUC over the exams seen so far, recomputed after every exam as the public loops do."""
    if len(set(y_true)) < 2:
        return math.nan
    return float(roc_auc_score(y_true, y_prob))


def reference_train(model: nn.Module, optimizer: torch.optim.Optimizer, exams: ExamSet, indices: Sequence[int],
                    pos_weight: float, device: torch.device, rng: np.random.Generator) -> None:
    """One exam per step in fp32, with the per-step host syncs and metrics of the public loops."""
    model.train()
    weight = torch.tensor([pos_weight], device=device)
    y_true: list[int] = []
    y_prob: list[float] = []
    for i in indices:
        slices = torch.from_numpy(reference_read_exam(exams.paths[i], rng)).to(device)
        target = torch.tensor([float(exams.labels[i])], device=device)
        logit = model(slices)
        loss = F.binary_cross_entropy_with_logits(logit, target, pos_weight=weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # logged per step: a host sync on CUDA
        y_true.append(exams.labels[i])
        y_prob.append(torch.sigmoid(logit).item())
        auc_so_far(y_true, y_prob)


def reference_evaluate(model: nn.Module, exams: ExamSet, indices: Sequence[int], pos_weight: float,
                       device: torch.device) -> None:
    """One exam per forward pass and, as in the public loops, no torch.no_grad: autograd records every pass."""
    model.eval()
    weight = torch.tensor([pos_weight], device=device)
    y_true: list[int] = []
    y_prob: list[float] = []
    for i in indices:
        slices = torch.from_numpy(reference_read_exam(exams.paths[i], None)).to(device)
        target = torch.tensor([float(exams.labels[i])], device=device)
        logit = model(slices)
        F.binary_cross_entropy_with_logits(logit, target, pos_weight=weight).item()
        y_true.append(exams.labels[i])
        y_prob.append(torch.sigmoid(logit).item())
        auc_so_far(y_true, y_prob)


# ----------------------------------------------------------------------------- model options


def build_bench_model(cfg: BenchConfig, side: str, device: torch.device) -> tuple[MRNet, dict[str, Any]]:
    """The same initialisation on both sides; the project side also gets the requested options."""
    torch.manual_seed(cfg.seed)
    model = build_model(pretrained=False).to(device)  # weights do not change the speed; no download
    notes: dict[str, Any] = {}
    if side == "project":
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.compile:
            # Only the convolutions: the per-exam max takes a Python list of slice counts, on
            # which a compiled forward would recompile. dynamic=True: slice counts vary.
            model.feature_maps = torch.compile(model.feature_maps, dynamic=True)
    return model, notes


# ----------------------------------------------------------------------------- measuring


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of `run`, with queued device work finished before each clock reading."""
    synchronize(device)
    started = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - started


def read_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (VmHWM) of this process; False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of one phase above what was in use when it started.

    CUDA: the caching allocator's peak. CPU: the peak resident set size, from VmHWM after a
    reset, or from ru_maxrss (the whole process's peak) where the counter cannot be reset.
    """

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.kind = "cuda max_memory_allocated"
            self.baseline_kb = torch.cuda.memory_allocated(device) / 1024
        else:
            resettable = reset_peak_rss()
            self.kind = "peak RSS (VmHWM)" if resettable else "process peak RSS (ru_maxrss)"
            self.baseline_kb = read_status_kb("VmRSS") or 0

    def delta_mb(self) -> float:
        if self.device.type == "cuda":
            peak_kb = torch.cuda.max_memory_allocated(self.device) / 1024
        elif self.kind.startswith("peak RSS"):
            peak_kb = read_status_kb("VmHWM") or 0
        else:
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        return max(peak_kb - self.baseline_kb, 0.0) / 1024


def warmup_indices(cfg: BenchConfig, exams: ExamSet) -> list[int]:
    """The exams of the warm-up steps: the first ones, repeated if there are fewer exams than steps."""
    count = cfg.warmup * cfg.exams_per_step
    return [i % len(exams.paths) for i in range(count)]


def phase_runners(cfg: BenchConfig, side: str, mode: str, model: MRNet, exams: ExamSet,
                  device: torch.device) -> tuple[Callable[[list[int]], object], dict[str, Any]]:
    """A function running the phase over given exam indices, and facts about its setup."""
    pos_weight = positive_class_weight(np.asarray(exams.labels), "benchmark labels")
    labels = np.asarray(exams.labels, dtype=np.int64)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    facts: dict[str, Any] = {}
    if side == "reference":
        rng = np.random.default_rng(cfg.seed)
        if mode == "train":
            return lambda idx: reference_train(model, optimizer, exams, idx, pos_weight, device, rng), facts
        return lambda idx: reference_evaluate(model, exams, idx, pos_weight, device), facts

    started = time.perf_counter()
    cache = [load_series(Path(path)) for path in exams.paths]  # uint8 (s, H, W) each, as check_and_load keeps them
    facts["cache_seconds"] = time.perf_counter() - started
    facts["cache_mb"] = sum(series.nbytes for series in cache) / 2**20
    amp_dtype = resolve_amp(cfg.amp, device)
    facts["amp_dtype"] = str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32"
    if mode == "train":
        augment = epoch_augment(cfg.seed, epoch=1)
        return lambda idx: train_one_epoch(
            model, optimizer, cache, labels, order=idx, augment=augment, pos_weight=pos_weight,
            device=device, amp_dtype=amp_dtype, exams_per_step=cfg.exams_per_step,
        ), facts

    def evaluate_with_auc(idx: list[int]) -> None:
        result = evaluate(model, [cache[i] for i in idx], labels[idx], pos_weight, device, amp_dtype,
                          cfg.eval_max_slices)
        auc_or_nan(labels[idx], result["probs"])  # once per evaluation, as training does

    return evaluate_with_auc, facts


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Use `count` intra-op threads inside the block, then restore the previous number (for in-process runs)."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_phase(cfg: BenchConfig, exams: ExamSet, side: str, mode: str) -> dict[str, Any]:
    """Set up one side and mode, warm it up, then time one pass over every exam."""
    with torch_threads(cfg.threads):
        return measure_phase(cfg, exams, side, mode)


def measure_phase(cfg: BenchConfig, exams: ExamSet, side: str, mode: str) -> dict[str, Any]:
    device = resolve_device(cfg.device)
    model, facts = build_bench_model(cfg, side, device)
    run, setup_facts = phase_runners(cfg, side, mode, model, exams, device)
    facts.update(setup_facts)
    memory = PeakMemory(device)
    warmup_seconds = timed(lambda: run(warmup_indices(cfg, exams)), device) if cfg.warmup else 0.0
    seconds = timed(lambda: run(list(range(len(exams.paths)))), device)
    return {
        "side": side,
        "mode": mode,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "peak_mem_mb": memory.delta_mb(),
        "peak_mem_kind": memory.kind,
        "threads": torch.get_num_threads(),
        **facts,
    }


def run_isolated(cfg: BenchConfig, exams: ExamSet, side: str, mode: str) -> dict[str, Any]:
    """run_phase in a fresh process ('spawn': safe with CUDA and with OpenMP thread pools)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(run_phase, cfg, exams, side, mode).result()


# ----------------------------------------------------------------------------- results


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


def summarise_phase(runs: list[dict[str, Any]], exams: ExamSet) -> dict[str, Any]:
    """Rates from the median of the repeated runs; the peak is the largest seen."""
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
        epoch_seconds=EPOCH_EXAMS * MEAN_SLICES / slices_per_s,
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


def build_results(cfg: BenchConfig, device: torch.device, exams: ExamSet,
                  runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    phases = {name: summarise_phase(phase_runs, exams) for name, phase_runs in runs.items()}
    threads = next(iter(phases.values()))["threads"]
    ratios = speedups(phases)
    targets = TARGETS.get(device.type, {})
    return {
        "benchmark": "mrnet throughput",
        "mrnet": __version__,
        "command": " ".join(sys.argv),
        "config": asdict(cfg),
        "device": describe_device(device, threads),
        "data": {
            "source": cfg.data_dir or "synthetic (mrnet.synthetic.make_dataset)",
            "plane": cfg.plane,
            "exams": len(exams.paths),
            "size": exams.size,
            "slices_total": exams.slices,
            "slices_min": min(exams.slice_counts),
            "slices_max": max(exams.slice_counts),
            "slices_mean": exams.slices / len(exams.paths),
            "epoch_basis": f"{EPOCH_EXAMS} exams x {MEAN_SLICES} slices",
        },
        "phases": phases,
        "speedup": ratios,
        "targets": {mode: {"target": t, "measured": ratios.get(mode), "met": ratios.get(mode, 0) >= t}
                    for mode, t in targets.items() if mode in ratios},
    }


def format_table(results: dict[str, Any]) -> str:
    device, data = results["device"], results["data"]
    where = device["name"] + (f", {device['threads']} threads, mkldnn {'on' if device['mkldnn'] else 'off'}"
                              if device["type"] == "cpu" else "")
    lines = [
        f"device  {device['type']} ({where}), torch {device['torch']}",
        f"data    {data['exams']} exams, {data['size']} px, {data['slices_min']}-{data['slices_max']} slices "
        f"(mean {data['slices_mean']:.1f}, {data['slices_total']} in all), {data['plane']}",
        "",
        f"{'phase':<17}{'exams/s':>9}{'slices/s':>10}{'s/epoch*':>10}{'peak MB':>9}{'warm-up s':>11}{'vs ref':>8}",
    ]
    ratios = results["speedup"]
    for name, phase in results["phases"].items():
        ratio = f"{ratios[phase['mode']]:.2f}x" if phase["side"] == "project" and phase["mode"] in ratios else ""
        lines.append(
            f"{phase['side'] + ' ' + phase['mode']:<17}{phase['exams_per_s']:>9.3f}{phase['slices_per_s']:>10.1f}"
            f"{phase['epoch_seconds']:>10.0f}{phase['peak_mem_mb']:>9.0f}{phase['warmup_seconds']:>11.1f}{ratio:>8}"
        )
    lines.append(f"* {data['epoch_basis']}, from the slice rate; peak MB = "
                 f"{next(iter(results['phases'].values()))['peak_mem_kind']} above the phase's start")
    project = next((p for p in results["phases"].values() if p["side"] == "project"), None)
    if project is not None:
        lines.append(f"project cache: {project['cache_mb']:.0f} MB uint8 for these exams "
                     f"(read in {project['cache_seconds']:.2f} s, once per run); amp {project['amp_dtype']}")
    for mode, target in results["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        lines.append(f"target {mode}: >= {target['target']:.1f}x, measured {target['measured']:.2f}x: {verdict}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def get_args_parser() -> argparse.ArgumentParser:
    d = BenchConfig()
    parser = argparse.ArgumentParser(
        description="Training and evaluation throughput: this package's paths against a reference loop "
                    "written like public MRNet code, on the same exams.")
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda (default auto)")
    parser.add_argument("--exams", type=int, default=None,
                        help=f"exams timed per phase (default {DEFAULT_SCALE['cuda'][0]} on CUDA, "
                             f"{DEFAULT_SCALE['cpu'][0]} on the CPU)")
    parser.add_argument("--size", type=int, default=None, help="slice size in pixels (default 256)")
    parser.add_argument("--slices", type=int, nargs=2, metavar=("MIN", "MAX"), default=(d.min_slices, d.max_slices),
                        help=f"slice-count range of the synthetic exams (default {d.min_slices} {d.max_slices}, as MRNet)")
    parser.add_argument("--plane", default=d.plane, choices=PLANES, help=f"plane to read (default {d.plane})")
    parser.add_argument("--data-dir", default=None,
                        help="read the first --exams train exams of this MRNet-layout folder instead of writing synthetic ones")
    parser.add_argument("--warmup", type=int, default=d.warmup, help=f"untimed steps before each phase (default {d.warmup})")
    parser.add_argument("--repeats", type=int, default=d.repeats,
                        help=f"times each phase runs; rates use the median (default {d.repeats})")
    parser.add_argument("--mode", default=d.mode, choices=MODES, help=f"what to measure (default {d.mode})")
    parser.add_argument("--project-only", action="store_true", help="skip the reference loop (for comparing options)")
    parser.add_argument("--amp", default=d.amp, choices=AMP_MODES, help="project side autocast (default auto)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                        help="project side in NCHW instead of the default channels_last")
    parser.add_argument("--exams-per-step", type=int, default=d.exams_per_step,
                        help=f"project side exams per optimiser step (default {d.exams_per_step})")
    parser.add_argument("--eval-max-slices", type=int, default=d.eval_max_slices,
                        help=f"project side slices per evaluation forward pass (default {d.eval_max_slices})")
    parser.add_argument("--compile", action="store_true", help="project side: torch.compile the convolutions")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--in-process", dest="isolate", action="store_false",
                        help="run every phase in this process: starts faster, but memory freed by one phase "
                             "can hide part of the next one's peak")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"model initialisation, data and augmentation (default {d.seed})")
    parser.add_argument("--json", default=d.json, help=f"results file (default {d.json}; '' writes none)")
    return parser


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    values = vars(args).copy()
    values["min_slices"], values["max_slices"] = values.pop("slices")
    return BenchConfig(**values)


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Resolve the device, prepare the exams, run every phase, return the results dict."""
    validate_config(cfg)
    device = resolve_device(cfg.device)
    resolve_amp(cfg.amp, device)  # refuse an impossible --amp before writing any data
    cfg = with_device_defaults(cfg, device)
    print("benchmark config: " + ", ".join(f"{k}={v}" for k, v in asdict(cfg).items()), flush=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    with exam_folder(cfg) as folder:
        exams = select_exams(folder, cfg.plane, cfg.exams)
        for repeat in range(cfg.repeats):
            for side, mode in phases_of(cfg):
                run = run_isolated if cfg.isolate else run_phase
                result = run(cfg, exams, side, mode)
                runs.setdefault(f"{side}_{mode}", []).append(result)
                print(f"  {side} {mode} (run {repeat + 1}/{cfg.repeats}): {result['seconds']:.1f} s for "
                      f"{len(exams.paths)} exams, warm-up {result['warmup_seconds']:.1f} s", flush=True)
    return build_results(cfg, device, exams, runs)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    cfg = config_from_args(get_args_parser().parse_args(argv))
    results = run_benchmark(cfg)
    print()
    print(format_table(results))
    if cfg.json:
        write_json(Path(cfg.json), results)
        print(f"results written to {cfg.json}")
    return results
