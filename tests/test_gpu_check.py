"""`make gpu-check` without CUDA says so and succeeds; its profile and benchmark steps also run on the CPU."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import gpu_check


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "unusable_gpu_reason", lambda: None)
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 0
    assert "no CUDA device" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()  # nothing measured, nothing written


def test_without_cuda_it_names_why_a_gpu_is_not_used(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "unusable_gpu_reason", lambda: "the driver is probably older than CUDA 13.0 needs")
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 0
    assert "no CUDA device: the driver is probably older" in capsys.readouterr().out


@pytest.mark.slow  # trains a few steps
def test_the_profile_and_benchmark_steps_run_on_the_cpu(tmp_path):
    profiled = gpu_check.profile(steps=2, slices=3, size=64, device_name="cpu")
    assert profiled["ms_per_step"] > 0 and profiled["mrnet_host_data_sites_per_step"] == []
    measured = gpu_check.benchmark(tmp_path, exams=3, warmup=1, repeats=1, backbones=["alexnet"], device="cpu", size=64)
    assert set(measured["alexnet"]) == {"train", "eval"} and measured["alexnet"]["train"]["exams_per_s"] > 0
    json.dumps(measured)


def test_a_failed_step_is_recorded_and_the_table_says_so():
    def broken() -> dict:
        raise RuntimeError("no NCCL here")

    report = {
        "environment": {
            "gpus": [{"name": "GPU X"}],
            "nvidia_smi": [],
            "torch": "2",
            "cuda": "13.0",
            "cudnn": 1,
            "nccl": None,
            "bf16": True,
        },
        "steps": {"nccl": gpu_check.run_step("nccl", broken)},
    }
    assert report["steps"]["nccl"]["ok"] is False
    assert "nccl        FAILED" in gpu_check.table(report) and "no NCCL here" in gpu_check.table(report)
