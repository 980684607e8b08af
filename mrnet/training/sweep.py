"""Training a grid of per-plane models with one set of options, in this process or one process per device.

Plane-major order: the series of a plane are loaded once and shared by its tasks. A
finished model is skipped and a half-finished one resumed, so rerunning the same sweep
continues an interrupted one.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import mrnet

from .. import layout
from ..checkpoint import load_checkpoint
from ..data.dataset import check_and_load
from ..errors import MRNetError
from .config import TrainConfig
from .multitask import check_not_mixed
from .trainer import train


def model_status(cfg: TrainConfig) -> str:
    """'finished', 'partial' (resume it) or 'new'."""
    last = cfg.run_dir() / layout.LAST
    if not last.exists():
        return "new"
    ckpt = load_checkpoint(last, cfg.task, cfg.plane)
    return "finished" if ckpt.get("finished") else "partial"


def pending_models(
    base: TrainConfig, tasks: Sequence[str], planes: Sequence[str], log: Callable[[str], None] = print
) -> list[TrainConfig]:
    """The models still to train, plane-major, each marked to resume if it was interrupted."""
    todo = []
    for plane in planes:
        for task in tasks:
            cfg = dataclasses.replace(base, task=task, plane=plane)
            check_not_mixed(cfg)
            status = "new" if base.overwrite else model_status(cfg)
            if status == "finished":
                log(f"{cfg.name}: finished checkpoint exists, skipped (use --overwrite to retrain)")
                continue
            cfg.resume = status == "partial"
            todo.append(cfg)
    return todo


def train_in_process(todo: list[TrainConfig], explicit: set[str]) -> list[dict[str, Any]]:
    """One model after another; a plane's series are loaded once for all its tasks."""
    summaries = []
    for plane in dict.fromkeys(cfg.plane for cfg in todo):
        group = [cfg for cfg in todo if cfg.plane == plane]
        tasks = list(dict.fromkeys(t for cfg in group for t in cfg.tasks))
        data = check_and_load(group[0].data_dir, tasks, (plane,))
        for cfg in group:
            summaries.append(train(cfg, data=data, explicit=explicit))
        del data
    return summaries


def default_devices(requested: Sequence[str] | None, device: str) -> list[str]:
    """All visible GPUs when the device is auto and there are several; otherwise one process."""
    if requested:
        return list(requested)
    if device == "auto" and torch.cuda.device_count() > 1:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


def worker_environment() -> dict[str, str]:
    """The environment for `python -m mrnet...` workers: they import this very copy of the package."""
    package_parent = str(Path(mrnet.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return env


def train_on_devices(
    todo: list[TrainConfig], devices: Sequence[str], command: Callable[[TrainConfig, str], list[str]]
) -> list[dict[str, Any]]:
    """A queue of models served by one worker process per device; each model logs to its own file.

    `command(cfg, device)` is the command line that trains one model on one device.
    """
    jobs: queue.Queue[TrainConfig] = queue.Queue()
    for cfg in todo:
        jobs.put(cfg)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    env = worker_environment()

    def worker(device: str) -> None:
        while True:
            try:
                cfg = jobs.get_nowait()
            except queue.Empty:
                return
            log = cfg.run_dir() / layout.TRAIN_LOG
            log.parent.mkdir(parents=True, exist_ok=True)
            with lock:
                print(f"{cfg.name}: training on {device} (log: {log})", flush=True)
            with open(log, "a") as handle:
                code = subprocess.run(command(cfg, device), stdout=handle, stderr=subprocess.STDOUT, env=env).returncode
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
