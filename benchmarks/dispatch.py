"""What one training step asks of the host: the aten ops it dispatches, and those that copy host data in or wait.

On a GPU each dispatched op costs the host about 10 µs whatever its size, so a step of a
small model is paced by this count rather than by its FLOPs; a host-to-device construction
(`torch.tensor(..., device=...)`) or a read of a device number (`.item()`) makes the host
wait for the device. Counted on any device, the CPU included, with a TorchDispatchMode
around the real `train_one_epoch`: the ops of a two-exam epoch less those of a one-exam
epoch are one step's, without the epoch's own set-up and final read.

    python -m benchmarks.dispatch --backbone alexnet
"""

from __future__ import annotations

import argparse
import traceback
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mrnet.device import stage_series
from mrnet.models import ModelArgs, build_model, memory_format
from mrnet.names import BACKBONE_NAMES
from mrnet.training.engine import epoch_augment, train_one_epoch

# Ops that bring host data to a tensor (torch.tensor / as_tensor of Python numbers) or read a number back.
HOST_DATA_OPS = ("aten.lift_fresh", "aten.lift_fresh_copy")
HOST_READ_OPS = ("aten._local_scalar_dense", "aten.is_nonzero", "aten.equal")


def internal(filename: str) -> bool:
    """Frames of this module and of torch's dispatch machinery, which sit between a caller and its op."""
    return filename == __file__ or "/torch/utils/" in filename or "/torch/_" in filename


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched inside the block, and where this package's code made a tensor of host data.

    torch.optim makes CPU scalars of its own (Adam's step count), which never wait for a GPU;
    `host_data_sites` lists only the places in mrnet/ that did (file:line).
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.host_data_sites: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.replace("::", ".")
        self.ops[name] += 1
        if name in HOST_DATA_OPS:
            # The innermost caller outside torch's dispatch machinery and this module made the tensor.
            callers = [f for f in traceback.extract_stack() if not internal(f.filename)]
            if callers and "/mrnet/" in callers[-1].filename:
                self.host_data_sites.append(f"{callers[-1].filename.rsplit('/mrnet/', 1)[-1]}:{callers[-1].lineno}")
        return func(*args, **(kwargs or {}))


def exams(count: int, size: int, slices: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    series = [rng.integers(0, 255, size=(slices, size, size), dtype=np.uint8) for _ in range(count)]
    return series, np.array([i % 2 for i in range(count)])


def epoch_ops(model, optimizer, series, labels, order: list[int], device: torch.device, augment: bool) -> OpCounter:
    """The ops of one `train_one_epoch` over `order`; a multi-task model (labels (n, 3)) gets one weight per task."""
    multitask = labels.ndim == 2
    counter = OpCounter()
    with counter:
        train_one_epoch(
            model,
            optimizer,
            series,
            labels,
            order=order,
            augment=epoch_augment(0, 1) if augment else None,
            pos_weight=np.array([1.5, 0.5, 2.0]) if multitask else 1.5,
            device=device,
            task_weights=np.array([1.0, 0.8, 1.2]) if multitask else None,
        )
    return counter


def step_ops(
    backbone: str = "alexnet",
    device: str = "cpu",
    size: int = 64,
    slices: int = 4,
    augment: bool = True,
    foreach: bool = True,
    outputs: int = 1,
) -> dict[str, Any]:
    """One training step's ops: total, the host-data and host-read ones, and the most frequent.

    `foreach=True` is Adam as it runs on CUDA (its default there); the CPU defaults to a loop
    over parameters, which dispatches more ops.
    """
    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_model(pretrained=False, args=ModelArgs(backbone=backbone, outputs=outputs)).to(dev)
    model = model.to(memory_format=memory_format(model))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, foreach=foreach)
    series, labels = exams(2, size, slices)
    series = stage_series(series, dev)  # as training does, once per run
    if outputs > 1:
        labels = np.stack([labels, 1 - labels, labels], axis=1)  # (n, tasks)
    epoch_ops(model, optimizer, series, labels, [0], dev, augment)  # Adam's state is made on its first step
    one = epoch_ops(model, optimizer, series, labels, [0], dev, augment)
    two = epoch_ops(model, optimizer, series, labels, [0, 1], dev, augment)
    step = two.ops - one.ops
    sites = Counter(two.host_data_sites) - Counter(one.host_data_sites)
    return {
        "backbone": backbone,
        "device": device,
        "adam_foreach": foreach,
        "augment": augment,
        "outputs": outputs,
        "ops_per_step": sum(step.values()),
        "host_data_ops_per_step": sum(step[name] for name in HOST_DATA_OPS),
        "host_read_ops_per_step": sum(step[name] for name in HOST_READ_OPS),
        "mrnet_host_data_sites_per_step": sorted(sites.elements()),
        "top": dict(step.most_common(12)),
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description="aten ops dispatched by one training step")
    parser.add_argument("--backbone", nargs="+", default=["alexnet"], choices=BACKBONE_NAMES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    args = parser.parse_args(argv)
    results = []
    for name in args.backbone:
        result = step_ops(name, args.device, augment=args.augment)
        results.append(result)
        print(
            f"{name}: {result['ops_per_step']} ops per step, {result['host_data_ops_per_step']} host-data, "
            f"{result['host_read_ops_per_step']} host-read (torch.optim's CPU step counts included); "
            f"made of host data by mrnet: {result['mrnet_host_data_sites_per_step'] or 'none'}"
        )
    return results


if __name__ == "__main__":
    main()
