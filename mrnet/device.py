"""Choosing the device and numeric mode once, at the top of a command."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import AMP_MODES
from .errors import MRNetError
from .threads import current_plan


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        reason = unusable_gpu_reason()
        if reason:
            print(f"WARNING: --device auto trains on the CPU: {reason}", file=sys.stderr, flush=True)
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MRNetError(f"--device {name}: no CUDA device is available here (use --device cpu or auto)")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MRNetError(f"--device {name}: not a device name (use auto, cpu or cuda)") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise MRNetError(
            f"--device {name}: there are {torch.cuda.device_count()} CUDA device(s) here, "
            f"numbered 0 to {torch.cuda.device_count() - 1}"
        )
    if device.type not in ("cpu", "cuda"):
        raise MRNetError(f"--device {name}: not supported (use auto, cpu, cuda or cuda:N)")
    return device


def nvidia_smi_gpus(timeout: float = 10.0) -> list[tuple[str, str]]:
    """(name, driver version) of each GPU that `nvidia-smi` lists; empty without the tool or any GPU."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        listing = subprocess.run(
            [tool, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if listing.returncode != 0:
        return []
    return parse_gpu_listing(listing.stdout)


def parse_gpu_listing(text: str) -> list[tuple[str, str]]:
    """`nvidia-smi --query-gpu=name,driver_version --format=csv,noheader` output -> [(name, driver)]."""
    gpus = []
    for line in text.splitlines():
        name, _, driver = line.rpartition(",")
        if name.strip():
            gpus.append((name.strip(), driver.strip()))
    return gpus


def unusable_gpu_reason() -> str | None:
    """Why a GPU that the driver sees is not usable by torch, or None when there is no such GPU.

    The usual cause is a driver older than the CUDA build of torch needs (each CUDA release
    has a minimum driver); a CPU-only torch build is the other.
    """
    gpus = nvidia_smi_gpus()
    if not gpus:
        return None
    names = ", ".join(dict.fromkeys(name for name, _ in gpus))
    driver = gpus[0][1] or "unknown"
    if torch.version.cuda is None:
        return f"nvidia-smi lists {len(gpus)} GPU(s) ({names}) but this torch {torch.__version__} is a CPU-only build"
    return (
        f"nvidia-smi lists {len(gpus)} GPU(s) ({names}, driver {driver}) but torch {torch.__version__} "
        f"(built for CUDA {torch.version.cuda}) cannot use them; the driver is probably older than CUDA "
        f"{torch.version.cuda} needs: update it, or install a torch built for an older CUDA"
    )


def check_devices(names: list[str]) -> None:
    """Every --devices entry, before any worker starts: one message naming each bad one."""
    problems = []
    for name in names:
        try:
            resolve_device(name)
        except MRNetError as err:
            problems.append(str(err).replace("--device ", "--devices ", 1))
    if problems:
        raise MRNetError("; ".join(problems))


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    plan = current_plan()
    return f"cpu ({plan.describe() if plan else f'{torch.get_num_threads()} threads'})"


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes in bf16 natively (AVX512-BF16 or AMX), where oneDNN's bf16 kernels are fast.

    Without those instructions bf16 is emulated and slower than fp32, so 'auto' keeps fp32.
    """
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32.

    'auto' uses bf16 on CUDA devices that support it, and on CPUs with native bf16
    instructions, where it was measured 1.7-1.9x faster than fp32 for training and
    evaluation (see docs/speed.md); elsewhere fp32.
    """
    if mode not in AMP_MODES:
        raise MRNetError(f"--amp {mode}: choose one of {', '.join(AMP_MODES)}")
    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if mode == "fp16" and device.type != "cuda":
        raise MRNetError("--amp fp16 needs a CUDA device; use --amp bf16 or off on the CPU")
    return torch.bfloat16 if mode == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A uint8 series onto the device; pinned and asynchronous on CUDA; nothing to do if it is there."""
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    if tensor.device.type == device.type and device.index in (None, tensor.device.index):
        return tensor  # on the CPU, or already resident on this GPU (stage_series)
    if device.type == "cuda" and tensor.device.type == "cpu":
        pinned = tensor if tensor.is_pinned() else tensor.pin_memory()
        return pinned.to(device, non_blocking=True)
    return tensor.to(device)


# Share of the GPU's free memory that a plane's uint8 series may take when kept there for a whole run.
RESIDENT_SHARE = 0.25


def stage_series(series: Sequence[np.ndarray | torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """A run's uint8 series, made once, where the training steps read them.

    On CUDA the series go to the GPU once (MRNet's largest plane is about 2.5 GB of uint8),
    so no step copies anything from the host; if they would take more than RESIDENT_SHARE
    of the free memory they stay on the host, pinned once, and each step copies its own
    without blocking. On the CPU they are the arrays themselves (no copy).
    """
    tensors = [s if isinstance(s, torch.Tensor) else torch.from_numpy(s) for s in series]
    if device.type != "cuda":
        return tensors
    total = sum(t.numel() * t.element_size() for t in tensors)
    free, _ = torch.cuda.mem_get_info(device)
    if total <= RESIDENT_SHARE * free:
        return [t.to(device) for t in tensors]
    return [t if t.device.type == "cuda" or t.is_pinned() else t.pin_memory() for t in tensors]


# Slices per forward pass when evaluating. On the CPU, batches of about 64 slices keep the
# activations in cache and measured faster than larger ones (docs/speed.md); on CUDA, larger
# batches keep the GPU busy.
EVAL_MAX_SLICES = {"cpu": 64, "cuda": 512}


def eval_max_slices(requested: int | None, device: torch.device) -> int:
    """The --eval-max-slices value in force: the user's, else the device's default."""
    if requested is not None:
        return requested
    return EVAL_MAX_SLICES.get(device.type, EVAL_MAX_SLICES["cuda"])


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """Loss scaling for fp16 only: fp16 gradients underflow without it; bf16 and fp32 do not need it."""
    return torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)


@dataclass(frozen=True)
class Scoring:
    """Where and how a command scores exams: the device, the autocast dtype and the slices per pass."""

    device: torch.device
    amp_dtype: torch.dtype | None
    max_slices: int

    @classmethod
    def resolve(cls, device: str, amp: str, max_slices: int | None) -> Scoring:
        """From the command's options (a device name, an --amp mode, an optional slice budget)."""
        chosen = resolve_device(device)
        return cls(chosen, resolve_amp(amp, chosen), eval_max_slices(max_slices, chosen))

    def args(self) -> tuple[torch.device, torch.dtype | None, int]:
        """(device, amp_dtype, max_slices): the order predict_logits takes them in."""
        return self.device, self.amp_dtype, self.max_slices
