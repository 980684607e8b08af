"""Training the whole grid: nine per-plane models, then the ensembles, with one set of options.

Plane-major order: the series of a plane are loaded once and shared by its three tasks.
A finished model is skipped and a half-finished one resumed, so rerunning the same
command continues an interrupted sweep.
"""

from __future__ import annotations

import argparse
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

import torch

from . import PLANES, TASKS
from .checkpoint import load_checkpoint
from .data import check_and_load
from .ensemble import MetaConfig, add_meta_args, run_meta
from .errors import MRNetError
from .train import TrainConfig, add_common_training_args, config_from_args, train

TRAIN_PLANE = Path(__file__).resolve().parents[1] / "scripts" / "train_plane.py"


def model_status(cfg: TrainConfig) -> str:
    """'finished', 'partial' (resume it) or 'new'."""
    last = cfg.run_dir() / "last.pt"
    if not last.exists():
        return "new"
    ckpt = load_checkpoint(last, cfg.task, cfg.plane)
    return "finished" if ckpt.get("finished") else "partial"


def pending_models(base: TrainConfig, tasks: Sequence[str], planes: Sequence[str]) -> list[TrainConfig]:
    """The models still to train, plane-major, each marked to resume if it was interrupted."""
    todo = []
    for plane in planes:
        for task in tasks:
            cfg = TrainConfig(**{**base.__dict__, "task": task, "plane": plane})
            status = "new" if base.overwrite else model_status(cfg)
            if status == "finished":
                print(f"{cfg.name}: finished checkpoint exists, skipped (use --overwrite to retrain)")
                continue
            cfg.resume = status == "partial"
            todo.append(cfg)
    return todo


def run_sweep(base: TrainConfig, explicit: set[str], tasks: Sequence[str], planes: Sequence[str],
              meta: MetaConfig | None, devices: Sequence[str] = ()) -> list[dict[str, Any]]:
    check_and_load(base.data_dir, tasks, planes, load=False)  # report every data problem before hours of work
    todo = pending_models(base, tasks, planes)
    if len(devices) > 1:
        summaries = train_on_devices(todo, explicit, devices)
    else:
        summaries = train_in_process(todo, explicit)
    if meta is not None:
        run_meta(meta)
    return summaries


def train_in_process(todo: list[TrainConfig], explicit: set[str]) -> list[dict[str, Any]]:
    """One model after another; a plane's series are loaded once for all its tasks."""
    summaries = []
    for plane in dict.fromkeys(cfg.plane for cfg in todo):
        group = [cfg for cfg in todo if cfg.plane == plane]
        data = check_and_load(group[0].data_dir, [c.task for c in group], (plane,))
        for cfg in group:
            summaries.append(train(cfg, data=data, explicit=explicit))
        del data
    return summaries


# ----------------------------------------------------------------------------- several devices

FLAG_OF = {"pretrained": "--no-pretrained", "augment": "--no-augment", "channels_last": "--no-channels-last",
           "overwrite": "--overwrite", "resume": "--resume"}


def train_plane_argv(cfg: TrainConfig, explicit: set[str], device: str) -> list[str]:
    """The train_plane command line that reproduces `cfg` on one device."""
    argv = [sys.executable, str(TRAIN_PLANE), "--task", cfg.task, "--plane", cfg.plane, "--device", device,
            "--data-dir", cfg.data_dir, "--output-dir", cfg.output_dir]
    for name in sorted(explicit - {"task", "plane", "device", "data_dir", "output_dir", "resume", "overwrite"}):
        value = getattr(cfg, name)
        if name in FLAG_OF:
            argv += [FLAG_OF[name]] if value != TrainConfig.__dataclass_fields__[name].default else []
        else:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    argv += ["--resume"] if cfg.resume else (["--overwrite"] if cfg.overwrite else [])
    return argv


def train_on_devices(todo: list[TrainConfig], explicit: set[str], devices: Sequence[str]) -> list[dict[str, Any]]:
    """A queue of models served by one worker process per device; each model logs to its own file."""
    jobs: queue.Queue[TrainConfig] = queue.Queue()
    for cfg in todo:
        jobs.put(cfg)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker(device: str) -> None:
        while True:
            try:
                cfg = jobs.get_nowait()
            except queue.Empty:
                return
            log = cfg.run_dir() / "train.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with lock:
                print(f"{cfg.name}: training on {device} (log: {log})", flush=True)
            with open(log, "a") as handle:
                code = subprocess.run(train_plane_argv(cfg, explicit, device), stdout=handle,
                                      stderr=subprocess.STDOUT).returncode
            with lock:
                print(f"{cfg.name}: {'done' if code == 0 else f'FAILED (exit {code})'} on {device}", flush=True)
                results.append({"model": cfg.name, "device": device, "exit_code": code, "log": str(log)})

    threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [r for r in results if r["exit_code"] != 0]
    if failed:
        raise MRNetError("these models failed: " + ", ".join(f"{r['model']} (see {r['log']})" for r in failed))
    return results


def default_devices(requested: Sequence[str] | None, device: str) -> list[str]:
    """All visible GPUs when the device is auto and there are several; otherwise one process."""
    if requested:
        return list(requested)
    if device == "auto" and torch.cuda.device_count() > 1:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train all per-plane models and the stacked ensembles.")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--planes", nargs="+", default=list(PLANES), choices=PLANES)
    parser.add_argument("--skip-meta", action="store_true", help="train the plane models only")
    parser.add_argument("--devices", nargs="+", default=None,
                        help="train several models at once, one process per listed device "
                             "(default: every visible GPU when there are several)")
    add_common_training_args(parser)
    add_meta_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    args = get_args_parser().parse_args(argv)
    base, explicit = config_from_args(args, task=args.tasks[0], plane=args.planes[0])
    explicit -= {"task", "plane", "resume"}
    meta = None
    if not args.skip_meta:
        meta = MetaConfig(data_dir=base.data_dir, output_dir=base.output_dir, tasks=list(args.tasks),
                          fit_on=args.fit_on, folds=args.folds, seed=base.seed, device=base.device,
                          amp=base.amp, eval_max_slices=base.eval_max_slices)
    return run_sweep(base, explicit, args.tasks, args.planes, meta, default_devices(args.devices, base.device))
