"""How many CPU threads a command uses: decided once, at its start, from the CPUs it may actually use.

PyTorch's default is one thread per core of the machine. On a machine whose cores are busy
with other work (a shared workstation, a CI runner, a second run of this project) that is
a large loss, not a small one: every parallel region waits for the thread the scheduler
gave to someone else. Measured on 2 cores with two other CPU-bound processes, training ran
10-14x slower with 2 threads than with 1 (docs/speed.md, 'Threads'). So `auto` counts the
CPUs this process may run on (affinity, cgroup quota), takes away those other work keeps
busy right now, and shares the rest among the worker processes the command starts.
OMP_NUM_THREADS or MKL_NUM_THREADS, when set, is the user's own count and wins over `auto`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import MRNetError

AUTO = "auto"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Runnable tasks are sampled this many times over SAMPLE_SECONDS: one reading catches a
# moment, not the machine's state; a tenth of a second is short next to any command's work.
SAMPLES, SAMPLE_SECONDS = 10, 0.1


@dataclass(frozen=True)
class ThreadPlan:
    """The threads one process uses and why: the CPUs it may use and how busy they were."""

    threads: int
    reason: str

    def describe(self) -> str:
        """'1 thread: 2 CPUs, load 1.8', as the command's first line and config.json show it."""
        return f"{self.threads} thread{'s' if self.threads != 1 else ''}: {self.reason}"


def parse_threads(value: str | int) -> int | None:
    """None for 'auto', else a positive count; anything else is an error naming the option."""
    if str(value).strip().lower() == AUTO:
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise MRNetError(f"--threads {value}: auto or a positive number of threads")
    return count


def check_threads(name: str, value: str | int) -> tuple[bool, str]:
    """An option-table rule (mrnet.options): auto or a positive count."""
    try:
        parse_threads(value)
    except MRNetError as err:
        return False, str(err).replace("--threads", name, 1)
    return True, ""


def quota_cpus(text: str) -> float | None:
    """CPUs a cgroup v2 `cpu.max` line ('50000 100000', 'max 100000') allows; None without a limit."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    period = int(fields[1]) if len(fields) > 1 else 100000
    quota = int(fields[0])
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpus(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup (v2 `cpu.max`, else v1 `cfs_quota_us`/`cfs_period_us`)."""
    try:
        return quota_cpus((root / "cpu.max").read_text())
    except (OSError, ValueError, IndexError):
        pass
    for folder in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota / period if quota > 0 and period > 0 else None
    return None


def usable_cpus(affinity: set[int] | None = None, quota: float | None = None) -> int:
    """CPUs this process may run on: its affinity mask, cut to the cgroup quota (rounded down, at least 1)."""
    if affinity is None:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cpus = len(affinity)
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def env_threads(environ: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """(variable, count) of the first of OMP_NUM_THREADS / MKL_NUM_THREADS set to a positive number."""
    variables = os.environ if environ is None else environ
    for name in THREAD_ENV:
        try:
            count = int(variables.get(name, "").split(",")[0])
        except ValueError:
            continue
        if count >= 1:
            return name, count
    return None


def runnable_now(stat: Path = Path("/proc/stat")) -> int | None:
    """Tasks running or ready to run on the whole machine at this instant (this process included)."""
    try:
        for line in stat.read_text().splitlines():
            if line.startswith("procs_running"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def busy_cpus(cpus: int, samples: int = SAMPLES, seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many of this process's CPUs other work keeps busy now: runnable tasks besides this one, averaged.

    The 1-minute load average lags: it still counts a run that just ended and not one that
    just began. Other work is shared out over the machine's CPUs, so a process allowed on
    part of them sees its part.
    """
    readings = []
    for i in range(samples):
        count = runnable_now()
        if count is None:
            return None
        readings.append(max(count - 1, 0))
        if i + 1 < samples:
            time.sleep(seconds / samples)
    online = os.cpu_count() or cpus
    return sum(readings) / len(readings) * min(cpus / online, 1.0)


def plan_threads(
    requested: str | int = AUTO,
    workers: int = 1,
    *,
    environ: Mapping[str, str] | None = None,
    cpus: int | None = None,
    busy: float | None = -1.0,
) -> ThreadPlan:
    """Threads per process for `workers` processes started by one command.

    An explicit count wins, then OMP_NUM_THREADS / MKL_NUM_THREADS, then auto: the usable
    CPUs less those other work keeps busy (at least 1), shared among the workers.
    `cpus` and `busy` (None: unknown) stand in for the machine in tests.
    """
    count = parse_threads(requested)
    share = f", shared by {workers} workers" if workers > 1 else ""
    if count is not None:
        return ThreadPlan(max(1, count // workers), f"--threads {count}{share}")
    from_env = env_threads(environ)
    if from_env is not None:
        name, value = from_env
        return ThreadPlan(max(1, value // workers), f"{name}={value}{share}")
    cpus = usable_cpus() if cpus is None else cpus
    if busy is not None and busy < 0:
        busy = busy_cpus(cpus)
    free = max(1, cpus - round(busy)) if busy is not None else cpus
    load = f", load {busy:.1f}" if busy is not None else ""
    return ThreadPlan(max(1, free // workers), f"{cpus} CPU{'s' if cpus != 1 else ''}{load}{share}")


_applied: ThreadPlan | None = None


def apply_threads(plan: ThreadPlan) -> ThreadPlan:
    """Set torch's intra-op pool, and its inter-op pool where it has not started yet (it can be set once)."""
    global _applied
    import torch

    torch.set_num_threads(plan.threads)
    # It can be set once per process, before any inter-op work: later calls keep the first value.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(plan.threads)
    _applied = plan
    return plan


def current_plan() -> ThreadPlan | None:
    """The plan this process applied, if any (so device descriptions can say why)."""
    return _applied
