"""Device and autocast choice."""

from __future__ import annotations

import os

import pytest
import torch

from mrnet.device import cpu_has_native_bf16, parse_gpu_listing, resolve_amp, resolve_device
from mrnet.errors import MRNetError


def write_cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 {flags}\n")
    return str(path)


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    assert cpu_has_native_bf16(write_cpuinfo(tmp_path, "avx2 avx512f avx512_bf16"))
    assert cpu_has_native_bf16(write_cpuinfo(tmp_path, "avx2 amx_tile amx_bf16"))
    assert not cpu_has_native_bf16(write_cpuinfo(tmp_path, "avx2 avx512f avx512bw"))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))


def test_auto_amp_on_the_cpu_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr("mrnet.device.cpu_has_native_bf16", lambda: True)
    assert resolve_amp("auto", cpu) is torch.bfloat16
    monkeypatch.setattr("mrnet.device.cpu_has_native_bf16", lambda: False)
    assert resolve_amp("auto", cpu) is None
    assert resolve_amp("off", cpu) is None
    assert resolve_amp("bf16", cpu) is torch.bfloat16


def test_impossible_choices_are_named(monkeypatch):
    with pytest.raises(MRNetError, match="--amp fp16 needs a CUDA device"):
        resolve_amp("fp16", torch.device("cpu"))
    with pytest.raises(MRNetError, match="--amp fast"):
        resolve_amp("fast", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU, wherever this runs
    with pytest.raises(MRNetError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(MRNetError, match="no CUDA device"):
        resolve_device("cuda:1")


def test_the_gpu_listing_is_read_name_and_driver():
    listing = "NVIDIA H100 80GB HBM3, 535.104.05\nNVIDIA H100 80GB HBM3, 535.104.05\n\n"
    assert parse_gpu_listing(listing) == [("NVIDIA H100 80GB HBM3", "535.104.05")] * 2
    assert parse_gpu_listing("") == []


def fake_nvidia_smi(folder, listing: str) -> None:
    tool = folder / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\nprintf '{listing}'\n")
    tool.chmod(0o755)


@pytest.mark.slow  # runs the faked nvidia-smi
def test_auto_says_loudly_why_a_gpu_the_driver_sees_is_not_used(tmp_path, monkeypatch, capsys):
    fake_nvidia_smi(tmp_path, "NVIDIA A100-SXM4-80GB, 470.57.02\\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # what an old driver leaves torch with
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    assert resolve_device("auto") == torch.device("cpu")
    warning = capsys.readouterr().err
    assert "WARNING: --device auto trains on the CPU" in warning
    assert "NVIDIA A100-SXM4-80GB" in warning and "driver 470.57.02" in warning and "CUDA 13.0" in warning
    monkeypatch.setattr(torch.version, "cuda", None)
    resolve_device("auto")
    assert "CPU-only build" in capsys.readouterr().err


@pytest.mark.slow  # runs the faked nvidia-smi
def test_auto_is_quiet_without_a_gpu(tmp_path, monkeypatch, capsys):
    fake_nvidia_smi(tmp_path, "")  # the tool installed, no GPU listed
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert capsys.readouterr().err == ""
