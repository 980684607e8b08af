"""Smoke test of the throughput benchmark: it runs end to end and writes a complete results file.

Timings are not checked: they depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mrnet.benchmark import main

PHASES = {"reference_train", "project_train", "reference_eval", "project_eval"}
RATE_KEYS = ("exams_per_s", "slices_per_s", "epoch_seconds", "seconds")


def test_benchmark_writes_rates_for_every_phase(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    threads_before = torch.get_num_threads()
    # In-process keeps the test short (a fresh process per phase costs a torch import each);
    main(["--device", "cpu", "--exams", "4", "--size", "64", "--slices", "4", "8", "--warmup", "1",
          "--threads", "1", "--in-process", "--json", str(out)])

    results = json.loads(out.read_text())
    assert set(results["phases"]) == PHASES
    for name, phase in results["phases"].items():
        for key in RATE_KEYS:
            assert phase[key] > 0, f"{name}: {key} = {phase[key]}"
        assert phase["peak_mem_mb"] >= 0
        assert phase["exams"] == 4
    assert set(results["speedup"]) == {"train", "eval"}
    assert all(ratio > 0 for ratio in results["speedup"].values())
    assert set(results["targets"]) == {"train", "eval"}
    assert results["device"]["type"] == "cpu" and results["device"]["name"]
    assert results["data"]["size"] == 64 and 4 <= results["data"]["slices_min"] <= results["data"]["slices_max"] <= 8
    assert torch.get_num_threads() == threads_before  # --threads must not leak out of an in-process run
