"""Training a grid of per-plane models with one set of options: in this process, or one worker process per
device (each GPU, or each share of the CPU's threads).

Plane-major order: the series of a plane are loaded once and shared by its tasks. A
finished model is skipped and a half-finished one resumed, so rerunning the same sweep
continues an interrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import mrnet

from .. import layout
from ..checkpoint import load_checkpoint
from ..data.dataset import SplitData, check_and_load
from ..data.fingerprint import describe_changes, fingerprint_of
from ..errors import MRNetError
from .config import RECIPE_FIELDS, TrainConfig
from .multitask import check_not_mixed
from .state import TrainResult
from .trainer import train


def model_status(cfg: TrainConfig) -> tuple[str, dict[str, Any] | None]:
    """'finished', 'partial' (resume it) or 'new', and the last checkpoint when there is one."""
    last = cfg.run_dir() / layout.LAST
    if not last.exists():
        return "new", None
    ckpt = load_checkpoint(last, cfg.task, cfg.plane)
    return ("finished" if ckpt.get("finished") else "partial"), ckpt


def differences(
    cfg: TrainConfig, ckpt: dict[str, Any], explicit: set[str], data: dict[tuple[str, str], SplitData] | None
) -> list[str]:
    """What a finished model was made with that this sweep asks to change: recipe options, then the data."""
    saved = ckpt.get("config", {})
    changes = [
        f"{name}={getattr(cfg, name)!r} (it used {saved[name]!r})"
        for name in RECIPE_FIELDS
        if name in explicit and name in saved and getattr(cfg, name) != saved[name]
    ]
    if data is not None:
        current = fingerprint_of({s: data[(s, cfg.plane)] for s in ("train", "valid")}, cfg.task)
        changes += describe_changes(ckpt.get("data"), current)
    return changes


def pending_models(
    base: TrainConfig,
    tasks: Sequence[str],
    planes: Sequence[str],
    log: Callable[[str], None] = print,
    explicit: set[str] | None = None,
    data: dict[tuple[str, str], SplitData] | None = None,
) -> list[TrainConfig]:
    """The models still to train, plane-major, each marked to resume if it was interrupted.

    A finished model is skipped only when it was made with the options the user set
    (`explicit`) and on the same data (`data`, headers are enough); otherwise the sweep is
    refused with what changed, since skipping it would mix recipes or datasets silently.
    """
    todo, conflicts = [], []
    for plane in planes:
        for task in tasks:
            cfg = dataclasses.replace(base, task=task, plane=plane)
            check_not_mixed(cfg)
            status, ckpt = ("new", None) if base.overwrite else model_status(cfg)
            if status == "finished" and ckpt is not None:
                changes = differences(cfg, ckpt, explicit or set(), data)
                if changes:
                    conflicts.append(f"{cfg.name}: {'; '.join(changes)}")
                    continue
                log(f"{cfg.name}: finished checkpoint exists, skipped (use --overwrite to retrain)")
                continue
            cfg.resume = status == "partial"
            todo.append(cfg)
    if conflicts:
        raise MRNetError(
            f"finished models in {base.models_dir} were made with other options or data than asked for now:\n  "
            + "\n  ".join(conflicts)
            + "\nretrain them with --overwrite, or rerun with the options and data they were made with"
        )
    return todo


def train_in_process(todo: list[TrainConfig], explicit: set[str]) -> list[TrainResult]:
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


@dataclasses.dataclass(frozen=True)
class WorkerResult:
    """One model trained by a worker process: its exit status and the log file it wrote."""

    model: str
    device: str
    exit_code: int
    log: str


def default_devices(requested: Sequence[str] | None, device: str) -> list[str]:
    """All visible GPUs when the device is auto and there are several; otherwise one process."""
    if requested:
        return list(requested)
    if device == "auto" and torch.cuda.device_count() > 1:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


def cpu_workers(requested: str, device: str, threads: int, models: int) -> tuple[list[str], int | None]:
    """CPU worker processes for a sweep and the threads of each: ([], None) trains in this process.

    `auto`: one worker per thread of the command's share, so each model trains on one core
    with no thread waiting on another; measured faster than one model at a time with every
    thread (docs/speed.md, 'Threads'). Only on the CPU: a single GPU trains one model at a time.
    """
    if str(requested).strip().lower() == "auto":
        count = threads if threads >= 2 else 1
    else:
        try:
            count = int(requested)
        except ValueError:
            count = 0
        if count < 1:
            raise MRNetError(f"--workers {requested}: auto or a positive number of processes")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    count = min(count, models)
    if count < 2 or device != "cpu":
        return [], None
    return ["cpu"] * count, max(1, threads // count)


def worker_environment() -> dict[str, str]:
    """The environment for `python -m mrnet...` workers: they import this very copy of the package."""
    package_parent = str(Path(mrnet.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return env


def device_worker(device: str, env: dict[str, str], workers: int) -> tuple[str, dict[str, str]]:
    """The device a worker is told to use, and its environment: its GPU alone, and its share of the CPU threads.

    A worker for cuda:N sees only GPU N (CUDA_VISIBLE_DEVICES, read through the parent's own
    list when it has one) and trains on cuda:0, its only device, so nothing it starts lands on
    another worker's GPU. Each worker gets cpu_count // workers threads (OMP_NUM_THREADS),
    unless the user set a number for all of them.
    """
    env = dict(env)
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(workers, 1)))
    if not device.startswith("cuda"):
        return device, env
    index = int(device.partition(":")[2] or 0)
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    env["CUDA_VISIBLE_DEVICES"] = visible[index] if index < len(visible) else str(index)
    return "cuda:0", env


WORKER_COMMAND = (sys.executable, "-m", "mrnet.training.worker")


def worker_job(cfg: TrainConfig, explicit: set[str], tasks: Sequence[str]) -> dict[str, Any]:
    """What a worker process (mrnet.training.worker) is told to train: one line of JSON.

    `argv` is this command's own: the model's environment.json records the command the user
    ran, as a model trained in this process does.
    """
    return {
        "config": dataclasses.asdict(cfg),
        "argv": list(sys.argv),
        "explicit": sorted(explicit),
        "tasks": list(tasks),
        "log": str(cfg.run_dir() / layout.TRAIN_LOG),
    }


class Worker:
    """One worker process on one device, started at its first model and kept for the next ones."""

    def __init__(self, command: Sequence[str], env: dict[str, str]) -> None:
        # A session of its own: a terminal's Ctrl-C reaches only the sweep, which passes it on once.
        self.process = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, start_new_session=True
        )

    def train(self, job: dict[str, Any]) -> int:
        """Hand the worker one model and wait for its exit status; a worker that died gives its own."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            answer = ""
        if not answer:
            code = self.process.wait()
            return code if code != 0 else 1
        try:
            return int(json.loads(answer)["exit_code"])
        except (ValueError, KeyError, TypeError):  # not the worker's answer: count the model as failed
            return 1

    def close(self) -> None:
        """No more models: closing stdin ends the worker."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        self.process.wait()


def train_on_devices(
    todo: list[TrainConfig],
    devices: Sequence[str],
    explicit: set[str],
    threads: int | None = None,
    worker_command: Sequence[str] = WORKER_COMMAND,
) -> list[WorkerResult]:
    """A queue of models served by one worker process per device; each model logs to its own file.

    A device listed twice gets two workers: two models then share that GPU, or the CPU.
    Each worker trains model after model in one process (mrnet.training.worker), with
    `threads` threads on the CPU, so Python and torch start once per worker; one that failed
    is replaced for the next model. SIGINT and SIGTERM are passed on to the workers (which
    save their completed epochs and exit), no new model is started, and this returns only
    once every worker has ended.
    """
    jobs: queue.Queue[TrainConfig] = queue.Queue()
    for cfg in todo:
        jobs.put(cfg)
    tasks = list(dict.fromkeys(task for cfg in todo for task in cfg.tasks))  # what a worker loads for a plane
    results: list[WorkerResult] = []
    lock = threading.Lock()
    env = worker_environment()
    alive: set[subprocess.Popen] = set()
    stopping: list[int] = []

    def serve(device: str) -> None:
        name, worker_env = device_worker(device, env, len(devices))
        worker: Worker | None = None
        try:
            while not stopping:
                try:
                    cfg = jobs.get_nowait()
                except queue.Empty:
                    return
                log = cfg.run_dir() / layout.TRAIN_LOG
                log.parent.mkdir(parents=True, exist_ok=True)
                with lock:
                    if stopping:
                        return
                    print(f"{cfg.name}: training on {device} (log: {log})", flush=True)
                    if worker is None:
                        worker = Worker(worker_command, worker_env)
                        alive.add(worker.process)
                job = dataclasses.replace(cfg, device=name, threads=str(threads) if threads else cfg.threads)
                code = worker.train(worker_job(job, explicit, tasks))
                with lock:
                    print(f"{cfg.name}: {'done' if code == 0 else f'FAILED (exit {code})'} on {device}", flush=True)
                    results.append(WorkerResult(model=cfg.name, device=device, exit_code=code, log=str(log)))
                if code != 0:  # a fresh process for the next model: nothing of a failed run carries over
                    worker.close()
                    worker = None
        finally:
            if worker is not None:
                worker.close()

    def forward(signum: int, frame: Any) -> None:
        with lock:
            stopping.append(signum)
            for process in alive:
                if process.poll() is None:
                    process.send_signal(signum)

    servers = [threading.Thread(target=serve, args=(d,), daemon=True) for d in devices]
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for thread in servers:
            thread.start()
        while any(thread.is_alive() for thread in servers):
            time.sleep(0.1)  # a short sleep, not join(): the signal handler runs in this thread
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping:
        raise KeyboardInterrupt(stopping[0])
    failed = [r for r in results if r.exit_code != 0]
    if failed:
        raise MRNetError("these models failed: " + ", ".join(f"{r.model} (see {r.log})" for r in failed))
    return results
