"""A sweep's worker process: it trains the models it is handed, one after another, in one process.

Starting Python and importing torch and the library costs about 5 s on 2 cores, as much as
a demo epoch; a worker pays it once, not once a model, and keeps a plane's series loaded for
the next model of the same plane. `python -m mrnet.training.worker` reads one job per line
on stdin and answers one line per job on stdout:

    job:    {"config": {TrainConfig fields}, "argv": [...], "explicit": [...], "tasks": [...], "log": "path"}
    answer: {"model": "acl-sagittal", "exit_code": 0}

Everything a job prints (its epochs, progress bars, errors) goes to its own log file. After
a job that failed or was interrupted the worker exits, so the next model starts in a fresh
process and nothing of a broken run carries over. Stdin closing ends the worker.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import INTERRUPTED, MRNetError
from ..threads import apply_threads, plan_threads
from .config import TrainConfig


@contextlib.contextmanager
def output_to(log: Path) -> Iterator[None]:
    """Send everything printed to `log`: Python's sys.stdout and sys.stderr, and file descriptors 1 and 2 (C code)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(log, "a", buffering=1) as handle:  # line-buffered: the log can be followed as it grows
            os.dup2(handle.fileno(), 1)
            os.dup2(handle.fileno(), 2)
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield
    finally:
        for fd, target in zip(saved, (1, 2), strict=True):
            os.dup2(fd, target)
            os.close(fd)


class PlaneCache:
    """The series of the plane the last job trained on, kept for the next job of the same plane."""

    def __init__(self) -> None:
        self.key: tuple[str, str, tuple[str, ...]] | None = None
        self.data: Any = None

    def get(self, cfg: TrainConfig, tasks: tuple[str, ...]) -> Any:
        key = (cfg.data_dir, cfg.plane, tasks)
        if key != self.key:
            from ..data.dataset import check_and_load

            self.key, self.data = None, None  # the old plane goes before the new one is read: one plane in memory
            gc.collect()
            self.data, self.key = check_and_load(cfg.data_dir, list(tasks), (cfg.plane,)), key
        return self.data


def run_job(job: dict[str, Any], cache: PlaneCache) -> int:
    """Train one model as `mrnet-train-plane` would; the exit status that command would give."""
    from .trainer import train

    cfg = TrainConfig(**job["config"])
    sys.argv = list(job.get("argv") or sys.argv)  # the sweep's command line, which environment.json records
    try:
        plan = apply_threads(plan_threads(cfg.threads, 1))
        print(f"cpu ({plan.describe()})", flush=True)
        train(cfg, data=cache.get(cfg, tuple(job["tasks"])), explicit=set(job["explicit"]))
        return 0
    except MRNetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = err.args[0] if err.args and isinstance(err.args[0], int) else signal.SIGINT
        print(INTERRUPTED, file=sys.stderr)
        return 128 + signum
    except Exception:  # a bug: its traceback goes to the model's log, and the sweep names the model
        traceback.print_exc()
        return 1


def release_device_memory() -> None:
    """Hand the finished model's GPU memory back to the driver: another worker may share this GPU."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def serve(jobs: Iterable[str], answers: IO[str]) -> int:
    """Run jobs until stdin closes or one fails; the exit status of the last one."""
    cache = PlaneCache()
    for line in jobs:
        job = json.loads(line)
        log = Path(job["log"])
        with output_to(log):
            code = run_job(job, cache)
        release_device_memory()
        answers.write(json.dumps({"model": TrainConfig(**job["config"]).name, "exit_code": code}) + "\n")
        answers.flush()
        if code != 0:
            return code
    return 0


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a stop takes Ctrl-C's path: completed epochs stay saved
    answers = os.fdopen(os.dup(1), "w")  # the answers keep the pipe; fd 1 is each job's log from now on
    os.dup2(2, 1)
    try:
        return serve(sys.stdin, answers)
    except KeyboardInterrupt:  # stopped between two jobs
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
