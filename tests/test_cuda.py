"""The CUDA branches, run where there is a GPU (`make gpu-check` runs this file): skipped with the reason elsewhere.

One training step on the CPU and on CUDA gives the same weights; a one-rank NCCL group
averages over ranks; series reach the GPU from a resident or a pinned cache; fp16 trains
with a CUDA GradScaler; bf16 logits come out of the fp32 head; conv1 runs channels_last.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrnet.device import grad_scaler, resolve_amp, stage_series, to_device
from mrnet.models import build_model, memory_format
from mrnet.training.engine import epoch_augment, train_one_epoch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def exams(n: int = 4, slices: int = 5, size: int = 64) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, size=(slices, size, size), dtype=np.uint8) for _ in range(n)], np.array(
        [0, 1] * (n // 2)
    )


def one_step(device: torch.device, amp: str = "off", steps: int = 1) -> tuple[dict[str, torch.Tensor], float, object]:
    torch.manual_seed(0)
    model = build_model(pretrained=False).to(device)
    model = model.to(memory_format=memory_format(model))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    amp_dtype = resolve_amp(amp, device)
    scaler = grad_scaler(device, amp_dtype)
    series, labels = exams()
    stats = train_one_epoch(
        model,
        optimizer,
        stage_series(series, device),
        labels,
        order=list(range(steps)),
        augment=epoch_augment(0, 1),
        pos_weight=1.0,
        device=device,
        amp_dtype=amp_dtype,
        scaler=scaler,
    )
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, stats.train_loss, scaler


@pytest.mark.slow
def test_one_step_on_cuda_matches_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # fp32 on both sides, not TF32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    cpu_weights, cpu_loss, _ = one_step(CPU)
    cuda_weights, cuda_loss, _ = one_step(CUDA)
    assert cuda_loss == pytest.approx(cpu_loss, rel=1e-4)
    for name, value in cpu_weights.items():
        torch.testing.assert_close(cuda_weights[name], value, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.slow
def test_fp16_trains_with_a_cuda_grad_scaler():
    weights, loss, scaler = one_step(CUDA, amp="fp16", steps=4)
    assert scaler.is_enabled() and scaler.get_scale() > 0
    assert np.isfinite(loss)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_bf16_autocast_keeps_the_head_in_fp32():
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model = build_model(pretrained=False).to(CUDA).eval()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(torch.randn(5, 1, 64, 64, device=CUDA))
    assert logits.dtype == torch.float32


def test_conv1_runs_channels_last_on_cuda():
    model = build_model(pretrained=False).to(CUDA)
    model = model.to(memory_format=memory_format(model))
    out = model.features[0](torch.randn(3, 1, 64, 64, device=CUDA))
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


def test_series_reach_the_gpu_resident_or_through_pinned_memory(monkeypatch):
    series, _ = exams(3)
    resident = stage_series(series, CUDA)
    assert all(t.is_cuda for t in resident)
    assert all(to_device(t, CUDA) is t for t in resident)  # nothing copied per step
    monkeypatch.setattr("mrnet.device.RESIDENT_SHARE", 0.0)  # as if they did not fit
    pinned = stage_series(series, CUDA)
    assert all(t.is_pinned() and not t.is_cuda for t in pinned)
    for host, staged in zip(series, pinned, strict=True):
        copied = to_device(staged, CUDA)
        assert copied.is_cuda and torch.equal(copied.cpu(), torch.from_numpy(host))


def test_a_one_rank_nccl_group_averages_on_the_gpu(tmp_path):
    import torch.distributed as dist

    from mrnet.training.distributed import Ranks, mean_over_ranks

    if not dist.is_nccl_available():
        pytest.skip("this torch has no NCCL")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        # Ranks says two so the collective runs; the group itself has one rank, so the mean is this rank's.
        assert mean_over_ranks(3.0, 2, Ranks(rank=0, world_size=2), CUDA) == pytest.approx(1.5)
    finally:
        dist.destroy_process_group()
