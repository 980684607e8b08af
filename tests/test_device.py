"""Device and autocast choice."""

from __future__ import annotations

import pytest
import torch

from mrnet.device import cpu_has_native_bf16, resolve_amp, resolve_device
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
