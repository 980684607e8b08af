"""Evaluation settings on the CPU, side by side: `python -m benchmarks.inference --threads 1`.

Times the reference evaluation loop and the project's scoring pass (`predict_logits`) over
the same synthetic exams in one process, each variant in turn within every round (the
order alternating), so the machine's other load hits every variant alike. Variants: the
defaults, fp32 instead of bf16 autocast, NCHW instead of channels_last, other slices per
pass, oneDNN-prepacked weights (`torch.utils.mkldnn`, fp32) and `torch.compile` of the
convolutions. Reports each variant's exams/s and its ratio to the reference.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.mkldnn

from mrnet.cli.common import run_cli
from mrnet.data.series import load_series
from mrnet.device import resolve_amp
from mrnet.files import write_json
from mrnet.inference import predict_logits
from mrnet.models import ModelArgs, build_model, memory_format
from mrnet.threads import apply_threads, plan_threads

from .busy import command_line, machine
from .exams import exam_folder, select_exams
from .reference import reference_evaluate

VARIANTS = ("default", "fp32", "nchw", "slices-32", "slices-128", "mkldnn-fp32", "compile")


def project_variant(name: str, base: torch.nn.Module, cache: list[np.ndarray]) -> Callable[[], object]:
    """A function scoring every exam with the variant's model and settings."""
    cpu = torch.device("cpu")
    model: Any = copy.deepcopy(base)  # its methods are swapped below for some variants
    amp, max_slices = resolve_amp("auto", cpu), 64
    if name != "nchw":
        model = model.to(memory_format=memory_format(model))
    if name in ("fp32", "mkldnn-fp32"):
        amp = None
    if name.startswith("slices-"):
        max_slices = int(name.split("-")[1])
    if name == "mkldnn-fp32":
        first: Any = model.features[0]  # the folded grey-channel convolution as a plain one, which oneDNN prepacks
        grey: Any = torch.nn.Conv2d(1, first.out_channels, first.kernel_size, first.stride, first.padding)
        with torch.no_grad():
            grey.weight.copy_(first.weight.sum(dim=1, keepdim=True))
            grey.bias.copy_(first.bias)
        model.features[0] = grey
        model.features = torch.utils.mkldnn.to_mkldnn(model.features.to(memory_format=torch.contiguous_format))
        features = model.features

        def feature_maps(slices: torch.Tensor) -> torch.Tensor:  # oneDNN tensors in, dense tensors out
            x = slices.contiguous().to_mkldnn()
            for layer in list(features)[:-1]:
                x = layer(x)
            return x.to_dense()

        model.feature_maps = feature_maps
    if name == "compile":
        model.feature_maps = torch.compile(model.feature_maps, dynamic=True)
    return lambda: predict_logits(model, cache, cpu, amp, max_slices)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--slices", type=int, nargs=2, default=(17, 61))
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--threads", default="auto", help="auto (mrnet.threads) or a number (default auto)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--json", default="bench/inference.json", help="results file ('' writes none)")
    args = parser.parse_args(argv)
    plan = apply_threads(plan_threads(args.threads))
    load_start = os.getloadavg()[0]
    print(f"cpu ({plan.describe()}), load average {load_start:.1f}", flush=True)
    cpu = torch.device("cpu")
    rates: dict[str, list[float]] = {name: [] for name in ["reference", *args.variants]}
    with exam_folder(None, args.exams, args.size, tuple(args.slices), 0) as folder:
        exams = select_exams(folder, "sagittal", args.exams)
        cache = [load_series(Path(path)) for path in exams.paths]
        torch.manual_seed(0)
        base = build_model(pretrained=False, args=ModelArgs())
        indices = list(range(len(exams.paths)))
        runners = {"reference": lambda: reference_evaluate(base, exams, indices, 1.0, cpu)}
        runners.update({name: project_variant(name, base, cache) for name in args.variants})
        names = list(runners)
        for name in names:  # warm-up: first-call costs (allocations, oneDNN primitives, compilation)
            runners[name]()
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                started = time.perf_counter()
                runners[name]()
                rates[name].append(len(indices) / (time.perf_counter() - started))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    results = {
        "benchmark": "mrnet evaluation settings (CPU)",
        "command": command_line(),
        "threads": plan.describe(),
        "load_average_end": os.getloadavg()[0],
        "exams": args.exams,
        "size": args.size,
        "exams_per_s": medians,
        "exams_per_s_all": rates,
        "vs_reference": {name: rate / medians["reference"] for name, rate in medians.items()},
    }
    results.update(
        {
            "title": "evaluation exams/s on the CPU: the reference loop and the project's scoring pass, by setting",
            "machine": machine(),
            "load": f"{plan.describe()}; load average {load_start:.1f} at the start, "
            f"{results['load_average_end']:.1f} at the end (other jobs on the machine)",
            "split": f"no AUC: rates on {args.exams} synthetic exams at {args.size} px, medians of {args.rounds} "
            "alternating rounds",
            "columns": ["setting", "exams/s", "vs the reference"],
            "rows": [[name, f"{rate:.3f}", f"{results['vs_reference'][name]:.2f}x"] for name, rate in medians.items()],
            "provenance": f"written by `{results['command']}` on {time.strftime('%Y-%m-%d')}",
        }
    )
    for name, rate in medians.items():
        print(f"{name:<14}{rate:8.3f} exams/s  {results['vs_reference'][name]:5.2f}x the reference")
    if args.json:
        write_json(Path(args.json), results)
    return results


if __name__ == "__main__":
    run_cli(main)
