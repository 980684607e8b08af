"""How one phase is measured: wall time with the device's queue drained, peak memory, the torch thread count."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so the clock reads time spent, not time queued; nothing to do on the CPU."""
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
    """A kB field of /proc/self/status (VmRSS, VmHWM); None where there is no /proc."""
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
