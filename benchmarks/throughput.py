"""Throughput of training and evaluation: this project's paths against a loop written like public MRNet code.

Both sides see the same exams, the same model initialisation and the same optimiser:

    reference  np.load per exam from disk, augmentation slice by slice with PIL, float64
               numpy preprocessing copied into 3 channels, one exam per step in fp32, a
               `.item()` per exam, ROC AUC recomputed after every exam, and evaluation one
               exam at a time without `torch.no_grad` (what the public loops do; see
               `benchmarks.reference`)
    project    `mrnet.training.engine.train_one_epoch` with `mrnet.data.transforms.SeriesAugment`
               and `mrnet.training.engine.validate` (the validation pass of training: batched
               `predict_logits`, then the AUC once), fed from an in-memory uint8 cache read with
               `mrnet.data.series.load_series`, the reader behind `mrnet.data.dataset.check_and_load`

Each phase (reference/project x train/eval) runs in a fresh process, so one phase's memory
high-water mark, allocator state and thread pools do not leak into the next. Rates are
measured after the warm-up, which runs at least one exam of every slice count the timed
pass will see (on CUDA cuDNN plans each new input shape on first sight, which would
otherwise be timed). On the CPU the seconds per epoch are extrapolated from the slice rate
to MRNet's 1,130 training exams of 31.5 slices on average (synthetic exams average more
slices, so the exam rate alone would understate an epoch's speed); on CUDA, where a step
costs about the same whatever its slices, from the exam rate.

    python scripts/benchmark.py --device cpu      (from a clone, nothing installed)
    python -m benchmarks --device cpu             (the same, from the repository root)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrnet import AMP_MODES, PLANES
from mrnet.cli.common import run_cli
from mrnet.data.series import load_series
from mrnet.device import EVAL_MAX_SLICES, eval_max_slices, grad_scaler, resolve_amp, resolve_device, stage_series
from mrnet.errors import at_least, check_options, one_of
from mrnet.files import write_json
from mrnet.models import ModelArgs, PlaneModel, build_model, memory_format
from mrnet.names import BACKBONE_NAMES, POOL_NAMES
from mrnet.stats.auc import auc_or_nan
from mrnet.threads import check_threads, plan_threads
from mrnet.training.engine import epoch_augment, train_one_epoch, validate
from mrnet.training.loss import positive_class_weight

from .exams import ExamSet, exam_folder, select_exams
from .measure import PeakMemory, timed, torch_threads
from .reference import reference_evaluate, reference_train
from .results import build_results, format_table

LR, WEIGHT_DECAY = 1e-5, 0.01  # the paper's Adam settings, used by both sides
MODES = ("train", "eval", "both")
# (exams, size) when not given: CUDA enough to keep a GPU busy; CPU small enough for about 2-3 minutes on 2 cores.
DEFAULT_SCALE = {"cuda": (32, 256), "cpu": (8, 256)}


@dataclass
class BenchConfig:
    """One benchmark run; `exams`, `size` and `eval_max_slices` left as None take the device's defaults."""

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
    eval_max_slices: int | None = None  # None: mrnet.device.eval_max_slices' default (64 on the CPU, 512 on CUDA)
    compile: bool = False
    backbone: str = "alexnet"  # project side; the reference loop is AlexNet's
    pool: str = "max"
    depth: int = 32  # r3d_18's resampled depth
    threads: str = "auto"  # mrnet.threads' policy, as every command uses it, or a number
    background: int = 0  # > 0: compare the thread policy with fixed counts, quiet and with this many busy processes
    isolate: bool = True  # each phase in a fresh process (clean peak memory); False: all in this one
    seed: int = 0
    json: str | None = "bench/benchmark.json"


# ----------------------------------------------------------------------------- config


def validate_config(cfg: BenchConfig) -> None:
    """Every bad option at once, before any data is written."""
    check_options(
        [
            (
                cfg.exams is None or cfg.exams >= 2,
                f"--exams {cfg.exams}: at least 2 (the loss weight needs both classes)",
            ),
            (cfg.size is None or 64 <= cfg.size <= 1024, f"--size {cfg.size}: between 64 and 1024 pixels"),
            (
                1 <= cfg.min_slices <= cfg.max_slices,
                f"--slices {cfg.min_slices} {cfg.max_slices}: need 1 <= MIN <= MAX",
            ),
            one_of("--plane", cfg.plane, PLANES),
            at_least("--warmup", cfg.warmup, 0),
            at_least("--repeats", cfg.repeats, 1),
            one_of("--mode", cfg.mode, MODES),
            one_of("--amp", cfg.amp, AMP_MODES),
            at_least("--exams-per-step", cfg.exams_per_step, 1),
            at_least("--eval-max-slices", cfg.eval_max_slices, 1),
            check_threads("--threads", cfg.threads),
            at_least("--background", cfg.background, 0),
            one_of("--backbone", cfg.backbone, BACKBONE_NAMES),
            one_of("--pool", cfg.pool, POOL_NAMES),
            at_least("--depth", cfg.depth, 1),
            (
                cfg.project_only or (cfg.backbone, cfg.pool) == ("alexnet", "max"),
                f"--backbone {cfg.backbone} --pool {cfg.pool}: the reference loop is the paper's AlexNet with max "
                "pooling; measure other models with --project-only",
            ),
        ]
    )


def with_device_defaults(cfg: BenchConfig, device: torch.device) -> BenchConfig:
    """The settings in force on this device, so the printed config and the results file show them."""
    exams, size = DEFAULT_SCALE["cuda" if device.type == "cuda" else "cpu"]
    return replace(
        cfg,
        exams=cfg.exams or exams,
        size=cfg.size or size,
        eval_max_slices=eval_max_slices(cfg.eval_max_slices, device),
    )


def phases_of(cfg: BenchConfig) -> list[tuple[str, str]]:
    """(side, mode) pairs in the order they run; each side of a mode runs back to back."""
    modes = ("train", "eval") if cfg.mode == "both" else (cfg.mode,)
    sides = ("project",) if cfg.project_only else ("reference", "project")
    return [(side, mode) for mode in modes for side in sides]


# ----------------------------------------------------------------------------- one phase


def build_bench_model(cfg: BenchConfig, side: str, device: torch.device) -> PlaneModel:
    """The same initialisation on both sides; the project side also gets the requested options."""
    torch.manual_seed(cfg.seed)
    args = ModelArgs(backbone=cfg.backbone, pool=cfg.pool, depth=cfg.depth) if side == "project" else ModelArgs()
    model = build_model(pretrained=False, args=args).to(device)  # weights do not change the speed; no download
    if side == "project":
        if cfg.channels_last:
            model = model.to(memory_format=memory_format(model))
        if cfg.compile:
            # Only the convolutions: the per-exam max takes a Python list of slice counts, on
            # which a compiled forward would recompile. dynamic=True: slice counts vary.
            model.feature_maps = torch.compile(model.feature_maps, dynamic=True)
    return model


def warmup_indices(cfg: BenchConfig, exams: ExamSet) -> list[int]:
    """The exams of the warm-up steps: one of each slice count first, then the first ones, `warmup` steps at least.

    Covering every slice count keeps first-sight costs (cuDNN's plan for a new shape) out of the
    timed pass; nothing when `warmup` is 0.
    """
    if not cfg.warmup:
        return []
    first_of_count: dict[int, int] = {}
    for index, count in enumerate(exams.slice_counts):
        first_of_count.setdefault(count, index)
    covering = list(first_of_count.values())
    more = max(cfg.warmup * cfg.exams_per_step - len(covering), 0)
    return covering + [i % len(exams.paths) for i in range(more)]


def phase_runners(
    cfg: BenchConfig, side: str, mode: str, model: PlaneModel, exams: ExamSet, device: torch.device
) -> tuple[Callable[[list[int]], object], dict[str, Any]]:
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
    arrays = [load_series(Path(path)) for path in exams.paths]  # uint8 (s, H, W) each, as check_and_load keeps them
    cache = stage_series(arrays, device)  # once per run, as training does: on a GPU, resident there when it fits
    facts["cache_seconds"] = time.perf_counter() - started
    facts["cache_mb"] = sum(series.nbytes for series in arrays) / 2**20
    amp_dtype = resolve_amp(cfg.amp, device)
    facts["amp_dtype"] = str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32"
    if mode == "train":
        augment = epoch_augment(cfg.seed, epoch=1)
        scaler = grad_scaler(device, amp_dtype)  # one per run, as training keeps it
        return lambda idx: train_one_epoch(
            model,
            optimizer,
            cache,
            labels,
            order=idx,
            augment=augment,
            pos_weight=pos_weight,
            device=device,
            amp_dtype=amp_dtype,
            scaler=scaler,
            exams_per_step=cfg.exams_per_step,
        ), facts

    max_slices = eval_max_slices(cfg.eval_max_slices, device)

    def validate_with_auc(idx: list[int]) -> None:
        result = validate(model, [cache[i] for i in idx], labels[idx], pos_weight, device, amp_dtype, max_slices)
        auc_or_nan(labels[idx], result.probs)  # once per evaluation, as training does

    return validate_with_auc, facts


def run_phase(cfg: BenchConfig, exams: ExamSet, side: str, mode: str) -> dict[str, Any]:
    """Set up one side and mode, warm it up, then time one pass over every exam.

    The threads are chosen as a command chooses them at its start (mrnet.threads), here at
    the phase's start, in the phase's own process.
    """
    plan = plan_threads(cfg.threads)
    with torch_threads(plan.threads):
        return {**measure_phase(cfg, exams, side, mode), "thread_plan": plan.describe()}


def measure_phase(cfg: BenchConfig, exams: ExamSet, side: str, mode: str) -> dict[str, Any]:
    device = resolve_device(cfg.device)
    model = build_bench_model(cfg, side, device)
    run, facts = phase_runners(cfg, side, mode, model, exams, device)
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
    """run_phase in a fresh process.

    'spawn' is safe with CUDA and with OpenMP thread pools. The child imports this module
    by its name, benchmarks.throughput, from the parent's sys.path: the repository root
    under `python -m benchmarks`, scripts/ (whose benchmarks link points here) under
    `python scripts/benchmark.py`.
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(run_phase, cfg, exams, side, mode).result()


# ----------------------------------------------------------------------------- command line


def get_args_parser() -> argparse.ArgumentParser:
    d = BenchConfig()
    parser = argparse.ArgumentParser(
        description="Training and evaluation throughput: this project's paths against a reference loop "
        "written like public MRNet code, on the same exams."
    )
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda (default auto)")
    parser.add_argument(
        "--exams",
        type=int,
        default=None,
        help=f"exams timed per phase (default {DEFAULT_SCALE['cuda'][0]} on CUDA, "
        f"{DEFAULT_SCALE['cpu'][0]} on the CPU)",
    )
    parser.add_argument("--size", type=int, default=None, help="slice size in pixels (default 256)")
    parser.add_argument(
        "--slices",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(d.min_slices, d.max_slices),
        help=f"slice-count range of the synthetic exams (default {d.min_slices} {d.max_slices}, as MRNet)",
    )
    parser.add_argument("--plane", default=d.plane, choices=PLANES, help=f"plane to read (default {d.plane})")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="read the first --exams train exams of this MRNet-layout folder instead of writing synthetic ones",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=d.warmup,
        help=f"untimed steps before each phase, at least one per slice count timed (default {d.warmup}; 0: none)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=d.repeats,
        help=f"times each phase runs; rates use the median (default {d.repeats})",
    )
    parser.add_argument("--mode", default=d.mode, choices=MODES, help=f"what to measure (default {d.mode})")
    parser.add_argument("--project-only", action="store_true", help="skip the reference loop (for comparing options)")
    parser.add_argument("--amp", default=d.amp, choices=AMP_MODES, help="project side autocast (default auto)")
    parser.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="project side in NCHW instead of the default channels_last",
    )
    parser.add_argument(
        "--exams-per-step",
        type=int,
        default=d.exams_per_step,
        help=f"project side exams per optimiser step (default {d.exams_per_step})",
    )
    parser.add_argument(
        "--eval-max-slices",
        type=int,
        default=None,
        help="project side slices per evaluation forward pass (default: the device's, "
        f"{EVAL_MAX_SLICES['cpu']} on the CPU, {EVAL_MAX_SLICES['cuda']} on CUDA, "
        "as training and evaluation use)",
    )
    parser.add_argument("--compile", action="store_true", help="project side: torch.compile the convolutions")
    parser.add_argument(
        "--backbone",
        default=d.backbone,
        choices=BACKBONE_NAMES,
        help=f"project side backbone (default {d.backbone}; others need --project-only)",
    )
    parser.add_argument(
        "--pool", default=d.pool, choices=POOL_NAMES, help=f"project side pooling over slices (default {d.pool})"
    )
    parser.add_argument("--depth", type=int, default=d.depth, help=f"r3d_18: resampled depth (default {d.depth})")
    parser.add_argument(
        "--threads",
        default=d.threads,
        help="auto (the thread policy every command uses, mrnet.threads) or a number (default auto)",
    )
    parser.add_argument(
        "--background",
        type=int,
        default=d.background,
        help="compare --threads auto with every fixed count, on the quiet machine and with this many "
        "CPU-bound processes of the benchmark's own running (training, project side; default 0: off)",
    )
    parser.add_argument(
        "--in-process",
        dest="isolate",
        action="store_false",
        help="run every phase in this process: starts faster, but memory freed by one phase "
        "can hide part of the next one's peak",
    )
    parser.add_argument(
        "--seed", type=int, default=d.seed, help=f"model initialisation, data and augmentation (default {d.seed})"
    )
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
    slices = (cfg.min_slices, cfg.max_slices)
    with exam_folder(cfg.data_dir, cfg.exams, cfg.size, slices, cfg.seed) as folder:
        exams = select_exams(folder, cfg.plane, cfg.exams)
        for repeat in range(cfg.repeats):
            for side, mode in phases_of(cfg):
                run = run_isolated if cfg.isolate else run_phase
                result = run(cfg, exams, side, mode)
                runs.setdefault(f"{side}_{mode}", []).append(result)
                print(
                    f"  {side} {mode} (run {repeat + 1}/{cfg.repeats}): {result['seconds']:.1f} s for "
                    f"{len(exams.paths)} exams, warm-up {result['warmup_seconds']:.1f} s",
                    flush=True,
                )
    return build_results(asdict(cfg), device, exams, runs)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the results file; return the results."""
    cfg = config_from_args(get_args_parser().parse_args(argv))
    if cfg.background:
        from .busy import compare_policies, format_policies

        results = compare_policies(cfg)
        print()
        print(format_policies(results))
    else:
        results = run_benchmark(cfg)
        print()
        print(format_table(results))
    if cfg.json:
        write_json(Path(cfg.json), results)
        print(f"results written to {cfg.json}")
    return results


def run() -> None:
    """The console entry: bad options and errors become a message and an exit status."""
    run_cli(main)
