"""One command that checks a GPU machine end to end and measures it: `make gpu-check` (about 5-10 minutes on one GPU).

    environment   nvidia-smi, torch / CUDA / cuDNN / NCCL versions, each GPU, bf16 support
    cuda_tests    tests/test_cuda.py (CPU/CUDA parity of a step, fp16 with a CUDA GradScaler, ...)
    train_plane   a 2-epoch `train-plane --device cuda` on synthetic knees (256 px)
    profile       50 AlexNet training steps: ms per step, GPU busy %, host syncs and aten ops per step
    benchmark     `--exams 256 --warmup 64 --repeats 3` for alexnet, resnet18 and r3d_18, with peak memory
    nccl          a one-rank NCCL group averaging over ranks
    multi_gpu     with 2 GPUs or more: torchrun for 2 epochs, and a sweep with two workers

It writes one JSON record and a short table (gpu-check.json, gpu-check.txt in --out). A
step that fails is recorded with its error and the others still run; the exit status is
1 if any failed. Without a usable CUDA device it says so (and why, when nvidia-smi sees a
GPU that torch cannot use) and exits 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrnet.device import nvidia_smi_gpus, unusable_gpu_reason
from mrnet.files import write_json

ROOT = Path(__file__).resolve().parents[1]
EPOCH_EXAMS = 1130  # MRNet's training split
BENCH_BACKBONES = ("alexnet", "resnet18", "r3d_18")


def environment() -> dict[str, Any]:
    """What the figures depend on: the driver, torch's CUDA build, cuDNN, NCCL and each GPU."""
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            {
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_gb": round(props.total_memory / 2**30, 1),
                "multiprocessors": props.multi_processor_count,
            }
        )
    nccl = torch.cuda.nccl.version() if torch.distributed.is_nccl_available() else None
    return {
        "nvidia_smi": [{"name": name, "driver": driver} for name, driver in nvidia_smi_gpus()],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "nccl": ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl,
        "bf16": torch.cuda.is_bf16_supported(),
        "gpus": devices,
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
    }


def run_command(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A command's exit status, wall seconds and last lines; a failure raises with them."""
    started = time.perf_counter()
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})}
    )
    result = {
        "command": " ".join(argv[1:] if argv[0] == sys.executable else argv),
        "exit_code": done.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "tail": (done.stdout + done.stderr).strip().splitlines()[-6:],
    }
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: " + " | ".join(result["tail"]))
    return result


def cuda_tests() -> dict[str, Any]:
    if not (ROOT / "tests" / "test_cuda.py").exists():
        return {"skipped": "tests/ is not here (an installed copy)"}
    return run_command([sys.executable, "-m", "pytest", "-q", "-rs", "tests/test_cuda.py"], timeout=300)


def synthetic_knees(folder: Path) -> Path:
    from mrnet.synthetic import make_dataset

    data = folder / "knees"
    if not data.exists():
        make_dataset(data, n_train=40, n_valid=20, size=256, seed=0, slices=(17, 32))
    return data


def train_plane(work: Path) -> dict[str, Any]:
    data = synthetic_knees(work)
    argv = [sys.executable, "-m", "mrnet.cli.train_plane", "--data-dir", str(data), "--models-dir", str(work / "m1")]
    argv += ["--task", "acl", "--plane", "sagittal", "--epochs", "2", "--no-pretrained", "--device", "cuda"]
    argv += ["--select-on", "valid", "--overwrite"]
    return run_command(argv, timeout=300)


def profile(steps: int = 50, slices: int = 32, size: int = 256, device_name: str = "cuda") -> dict[str, Any]:
    """`steps` AlexNet training steps on synthetic series resident on the GPU, as training runs them.

    ms per step from the wall clock (queue drained); GPU busy % = kernel time over that wall
    time (torch.profiler); host syncs from torch's sync debug mode (the epoch's final read of
    its loss is one); aten ops per step from benchmarks.dispatch. `device_name` "cpu" runs
    the same steps without the CUDA figures (the tests do).
    """
    from mrnet.device import resolve_amp, stage_series
    from mrnet.models import build_model, memory_format
    from mrnet.training.engine import epoch_augment, train_one_epoch

    from .dispatch import step_ops
    from .measure import timed

    device = torch.device(device_name)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build_model(pretrained=False).to(device)
    model = model.to(memory_format=memory_format(model))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    amp = resolve_amp("auto", device)
    rng = np.random.default_rng(0)
    series = stage_series([rng.integers(0, 255, (slices, size, size), dtype=np.uint8) for _ in range(steps)], device)
    labels = np.arange(steps) % 2

    def epoch() -> None:
        train_one_epoch(model, optimizer, series, labels, list(range(steps)), epoch_augment(0, 1), 1.0, device, amp)

    epoch()  # warm-up: cuDNN plans, the allocator, Adam's state
    wall = timed(epoch, device)
    result: dict[str, Any] = {
        "model": f"alexnet, {slices} slices of {size} px, amp {str(amp).replace('torch.', '') if amp else 'fp32'}",
        "steps": steps,
        "ms_per_step": round(1000 * wall / steps, 2),
        "epoch_seconds_1130_exams": round(EPOCH_EXAMS * wall / steps, 1),
    }
    if cuda:
        activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        with torch.profiler.profile(activities=activities) as prof:
            timed(epoch, device)
        kernel_us = sum(e.self_device_time_total for e in prof.key_averages())
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                epoch()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        syncs = sum("synchroniz" in str(w.message) for w in caught)
        result.update(
            gpu_busy_pct=round(100 * kernel_us / 1e6 / wall, 1),
            host_syncs_per_epoch=syncs,
            host_syncs_per_step=round(max(syncs - 1, 0) / steps, 3),  # less the epoch's final read
        )
    ops = step_ops("alexnet", device_name, size=size, slices=slices)
    result.update(
        aten_ops_per_step=ops["ops_per_step"], mrnet_host_data_sites_per_step=ops["mrnet_host_data_sites_per_step"]
    )
    return result


def noise_exams(root: Path, count: int, size: int, slices: tuple[int, int], seed: int = 0) -> Path:
    """MRNet-layout train exams of random pixels (the speed does not depend on what the pixels show), quick to write."""
    rng = np.random.default_rng(seed)
    folder = root / "train" / "sagittal"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        depth = int(rng.integers(slices[0], slices[1] + 1))
        np.save(folder / f"{index:04d}.npy", rng.integers(0, 255, (depth, size, size), dtype=np.uint8))
    (root / "train-acl.csv").write_text("".join(f"{i:04d},{i % 2}\n" for i in range(count)))
    return root


def benchmark(
    work: Path, exams: int, warmup: int, repeats: int, backbones: Sequence[str], device: str = "cuda", size: int = 256
) -> dict[str, Any]:
    from .throughput import BenchConfig, run_benchmark

    data = work / "bench" / "MRNet-v1.0"
    if not data.exists():
        noise_exams(data, exams, size, (17, 61))
    results = {}
    for name in backbones:
        cfg = BenchConfig(
            device=device,
            exams=exams,
            size=size,
            data_dir=str(data),
            warmup=warmup,
            repeats=repeats,
            project_only=True,
            backbone=name,
            isolate=False,  # one process: the CUDA allocator's peak is reset per phase
            json=None,
        )
        phases = run_benchmark(cfg)["phases"]
        results[name] = {
            mode: {
                "exams_per_s": round(phases[f"project_{mode}"]["exams_per_s"], 1),
                "epoch_seconds_1130_exams": round(phases[f"project_{mode}"]["epoch_seconds"], 1),
                "peak_mem_mb": round(phases[f"project_{mode}"]["peak_mem_mb"]),
                "warmup_seconds": round(phases[f"project_{mode}"]["warmup_seconds"], 1),
                "seconds_spread": [round(s, 2) for s in phases[f"project_{mode}"]["seconds_all"]],
            }
            for mode in ("train", "eval")
        }
    return results


def nccl_group(work: Path) -> dict[str, Any]:
    """A one-rank NCCL group: the collective that data-parallel training runs after every epoch."""
    import torch.distributed as dist

    from mrnet.training.distributed import Ranks, mean_over_ranks

    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"file://{work / 'nccl-rendezvous'}", rank=0, world_size=1)
    try:
        mean = mean_over_ranks(3.0, 2, Ranks(rank=0, world_size=2), torch.device("cuda", 0))  # forces the collective
    finally:
        dist.destroy_process_group()
    if mean != 1.5:
        raise RuntimeError(f"mean_over_ranks gave {mean}, not 1.5")
    return {"mean_over_ranks": mean}


def multi_gpu(work: Path) -> dict[str, Any]:
    if torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU"}
    data = synthetic_knees(work)
    common = ["--data-dir", str(data), "--no-pretrained", "--select-on", "valid", "--overwrite"]
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp += ["-m", "mrnet.cli.train_plane", *common, "--models-dir", str(work / "ddp"), "--task", "acl"]
    ddp += ["--plane", "sagittal", "--epochs", "2", "--device", "cuda"]
    sweep = [sys.executable, "-m", "mrnet.cli.train_all", *common, "--models-dir", str(work / "sweep")]
    sweep += ["--tasks", "acl", "meniscus", "--planes", "sagittal", "--epochs", "1", "--skip-meta"]
    sweep += ["--device", "cuda", "--devices", "cuda:0", "cuda:1"]
    return {"torchrun_2_ranks": run_command(ddp, timeout=300), "sweep_2_workers": run_command(sweep, timeout=300)}


def run_step(name: str, step: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    print(f"gpu-check: {name} ...", flush=True)
    started = time.perf_counter()
    try:
        result = {"ok": True, **step()}
    except Exception as err:
        result = {"ok": False, "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
    result["step_seconds"] = round(time.perf_counter() - started, 1)
    print(f"gpu-check: {name} {'ok' if result['ok'] else 'FAILED: ' + result['error']}", flush=True)
    return result


def table(report: dict[str, Any]) -> str:
    """The short summary printed at the end and written next to the JSON."""
    env = report["environment"]
    gpus = ", ".join(dict.fromkeys(g["name"] for g in env["gpus"]))
    driver = env["nvidia_smi"][0]["driver"] if env["nvidia_smi"] else "?"
    lines = [
        f"GPU     {len(env['gpus'])} x {gpus} (driver {driver}), torch {env['torch']}, CUDA {env['cuda']}, "
        f"cuDNN {env['cudnn']}, NCCL {env['nccl']}, bf16 {'yes' if env['bf16'] else 'no'}",
    ]
    for name, step in report["steps"].items():
        status = "ok" if step["ok"] else "FAILED"
        lines.append(
            f"{name:<12}{status:<8}{step['step_seconds']:>7.1f} s" + (f"  {step['error']}" if not step["ok"] else "")
        )
    prof = report["steps"].get("profile", {})
    if prof.get("ok"):
        lines.append(
            f"profile     {prof['ms_per_step']} ms/step, GPU busy {prof['gpu_busy_pct']} %, "
            f"{prof['host_syncs_per_step']} host syncs/step, {prof['aten_ops_per_step']} ops/step, "
            f"epoch of {EPOCH_EXAMS} exams {prof['epoch_seconds_1130_exams']} s ({prof['model']})"
        )
    bench = report["steps"].get("benchmark", {})
    if bench.get("ok"):
        lines.append(f"{'backbone':<12}{'train ex/s':>11}{'s/epoch':>9}{'peak MB':>9}{'eval ex/s':>11}{'peak MB':>9}")
        for name in BENCH_BACKBONES:
            if name in bench:
                train, evaluate = bench[name]["train"], bench[name]["eval"]
                lines.append(
                    f"{name:<12}{train['exams_per_s']:>11}{train['epoch_seconds_1130_exams']:>9}"
                    f"{train['peak_mem_mb']:>9}{evaluate['exams_per_s']:>11}{evaluate['peak_mem_mb']:>9}"
                )
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Check and measure a GPU machine (writes gpu-check.json and a table)")
    parser.add_argument("--out", default="bench/gpu-check", help="folder for the results (default bench/gpu-check)")
    parser.add_argument("--exams", type=int, default=256, help="benchmark exams (default 256)")
    parser.add_argument("--warmup", type=int, default=64, help="benchmark warm-up steps (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="benchmark repeats (default 3)")
    parser.add_argument("--backbones", nargs="+", default=list(BENCH_BACKBONES), help="benchmarked backbones")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not torch.cuda.is_available():
        reason = unusable_gpu_reason()
        print(f"gpu-check: no CUDA device{': ' + reason if reason else ' here'}; nothing to check", flush=True)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"check": "mrnet gpu-check", "environment": environment(), "steps": {}}
    with tempfile.TemporaryDirectory(prefix="mrnet-gpu-check-") as tmp:
        work = Path(tmp)
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            "cuda_tests": cuda_tests,
            "train_plane": lambda: train_plane(work),
            "profile": profile,
            "benchmark": lambda: benchmark(work, args.exams, args.warmup, args.repeats, args.backbones),
            "nccl": lambda: nccl_group(work),
            "multi_gpu": lambda: multi_gpu(work),
        }
        for name, step in steps.items():
            report["steps"][name] = run_step(name, step)
    summary = table(report)
    write_json(out / "gpu-check.json", report)
    (out / "gpu-check.txt").write_text(summary + "\n")
    print("\n" + summary + f"\n\nwritten: {out / 'gpu-check.json'}, {out / 'gpu-check.txt'}")
    return 0 if all(step["ok"] for step in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
