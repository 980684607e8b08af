"""Data-parallel training across processes (torchrun): each rank trains on a share of the exams.

With N ranks every optimiser step sees N exams (one per rank, gradients averaged), so the
recipe differs from the paper's one exam per step exactly as --exams-per-step N would.
Validation is split across ranks and the probabilities gathered, so every rank computes
the same AUC over all exams and takes the same early-stopping decisions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ..device import resolve_device
from ..errors import MRNetError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device_name: str) -> tuple[Ranks, torch.device]:
    """Join the process group when launched by torchrun; otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks(), resolve_device(device_name)
    ranks = Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if torch.cuda.device_count() <= ranks.local_rank:
            raise MRNetError(
                f"rank {ranks.rank} wants cuda:{ranks.local_rank}, but only "
                f"{torch.cuda.device_count()} GPU(s) are visible"
            )
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def wrap(model: torch.nn.Module, device: torch.device, ranks: Ranks) -> torch.nn.Module:
    """DistributedDataParallel under torchrun (gradients averaged over ranks), else the model itself."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def abandon(ranks: Ranks) -> None:
    """After an error: leave the group without waiting for ranks that may be gone."""
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def teardown(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(order: Sequence[int], ranks: Ranks) -> list[int]:
    """This rank's exams; the order is padded by wrapping so every rank takes the same number of steps."""
    order = list(order)
    if not ranks.distributed:
        return order
    per_rank = -(-len(order) // ranks.world_size)
    padded = (order * (per_rank * ranks.world_size // max(len(order), 1) + 1))[: per_rank * ranks.world_size]
    return padded[ranks.rank :: ranks.world_size]


def mean_over_ranks(total: float, count: int, ranks: Ranks, device: torch.device) -> float:
    """The mean of every rank's (total, count), through a buffer on the rank's device (NCCL takes CUDA tensors only)."""
    if not ranks.distributed:
        return total / max(count, 1)
    buffer = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(buffer)
    return float(buffer[0] / buffer[1].clamp(min=1.0))


@contextmanager
def stop_together(ranks: Ranks) -> Iterator[None]:
    """Checks that only some ranks make (rank 0's lock and folder checks): if one raises, every rank stops.

    Without this a rank that raises leaves the others waiting in their next collective until
    the backend's timeout (10 minutes for NCCL). After the block every rank learns what each
    found (all_gather_object, which NCCL serves on the current device); the one that raised
    re-raises its error, the others raise one that quotes it.
    """
    problem: BaseException | None = None
    try:
        yield
    except Exception as err:
        if not ranks.distributed:
            raise
        problem = err
    if not ranks.distributed:
        return
    found: list = [None] * ranks.world_size
    dist.all_gather_object(found, None if problem is None else str(problem))
    if problem is not None:
        raise problem
    failed = [(rank, message) for rank, message in enumerate(found) if message is not None]
    if failed:
        rank, message = failed[0]
        raise MRNetError(f"rank {rank} stopped the run: {message}")


def gather_by_index(indices: Sequence[int], values: np.ndarray, n: int, ranks: Ranks) -> np.ndarray:
    """Assemble per-rank predictions into one array in the original exam order."""
    if not ranks.distributed:
        return values
    parts: list = [None] * ranks.world_size
    dist.all_gather_object(parts, (list(indices), values.tolist()))
    full = np.full((n, *values.shape[1:]), np.nan)  # (n,) or (n, tasks)
    for part_indices, part_values in parts:
        full[part_indices] = part_values
    return full
