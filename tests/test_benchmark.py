"""Smoke tests of the throughput benchmark: it runs end to end and writes a complete results file.

Timings are not checked: they depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import ROOT, run_python, run_script

from benchmarks.throughput import main

pytestmark = pytest.mark.slow

PHASES = {"reference_train", "project_train", "reference_eval", "project_eval"}
RATE_KEYS = ("exams_per_s", "slices_per_s", "epoch_seconds", "seconds")
TINY = ["--device", "cpu", "--exams", "4", "--size", "64", "--slices", "4", "8", "--warmup", "1", "--threads", "1"]


def test_benchmark_writes_rates_for_every_phase(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    threads_before = torch.get_num_threads()
    # In-process keeps the test short (a fresh process per phase costs a torch import each);
    # the per-phase processes are tested below, through the two commands.
    main([*TINY, "--in-process", "--json", str(out)])

    results = json.loads(out.read_text())
    assert set(results["phases"]) == PHASES
    for name, phase in results["phases"].items():
        for key in RATE_KEYS:
            assert phase[key] > 0, f"{name}: {key} = {phase[key]}"
        # on the CPU, memory is the resident set's peak
        assert phase["peak_mem_kind"] in {"peak RSS (VmHWM)", "process peak RSS (ru_maxrss)"}, name
        assert math.isfinite(phase["peak_mem_mb"]), name
        assert phase["exams"] == 4
    assert set(results["speedup"]) == {"train", "eval"}
    assert all(ratio > 0 for ratio in results["speedup"].values())
    assert set(results["targets"]) == {"train", "eval"}
    assert results["device"]["type"] == "cpu" and results["device"]["name"]
    assert results["data"]["size"] == 64 and 4 <= results["data"]["slices_min"] <= results["data"]["slices_max"] <= 8
    assert results["config"]["eval_max_slices"] == 64  # the CPU's default, as training and evaluation use
    assert torch.get_num_threads() == threads_before  # --threads must not leak out of an in-process run


@pytest.mark.parametrize("entry", ["script", "module"])
def test_phase_processes_import_the_benchmark_from_either_command(entry: str, tmp_path: Path) -> None:
    """The spawned phase process re-imports benchmarks.throughput: from scripts/ via its link, or from the root."""
    out = tmp_path / "bench.json"
    args = [*TINY, "--mode", "eval", "--project-only", "--json", str(out)]
    if entry == "script":  # run from elsewhere: only the scripts/benchmarks link can provide the package
        result = run_script("benchmark.py", *args, cwd=tmp_path, timeout=300)
    else:
        result = run_python("-m", "benchmarks", *args, cwd=ROOT, timeout=300)

    assert result.returncode == 0, result.stderr
    assert "project eval" in result.stdout
    assert set(json.loads(out.read_text())["phases"]) == {"project_eval"}


def test_background_load_is_stopped_when_the_block_fails() -> None:
    from benchmarks.busy import background_load

    with pytest.raises(RuntimeError), background_load(2) as processes:
        assert all(p.poll() is None for p in processes)
        raise RuntimeError("a failing phase")
    assert all(p.poll() is not None for p in processes)


def test_thread_policy_quiet_and_busy_makes_a_docs_record(tmp_path: Path) -> None:
    from benchmarks.tables import check_experiment

    out = tmp_path / "policy.json"
    tiny = TINY[: TINY.index("--threads")]  # the policy is what is measured
    results = main([*tiny, "--background", "1", "--in-process", "--json", str(out)])

    assert set(results["conditions"]) == {"quiet", "busy"}
    busy = results["conditions"]["busy"]
    assert busy["background_processes"] == 1
    assert set(busy["exams_per_s"]) == {"auto", *(str(n) for n in range(1, results["cpus"] + 1))}
    assert all(rate > 0 for rate in busy["exams_per_s"].values())
    assert busy["best_over_auto"] > 0 and busy["auto_chose"]
    check_experiment(json.loads(out.read_text()), out)  # the docs can show it as it is
