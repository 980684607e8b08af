"""Training's Adam (mrnet.training.setup.adam): fused where torch has it, and the recipe's update to rounding."""

from __future__ import annotations

import torch

from mrnet.training.setup import adam


def updated(fused_device: str | None, steps: int = 50) -> torch.Tensor:
    """A weight after `steps` Adam updates with fixed gradients, so only the update itself can differ."""
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(10_000) * 0.05)
    if fused_device is None:
        optimizer = torch.optim.Adam([weight], lr=1e-4, weight_decay=1e-4)  # torch's CPU default: a loop
    else:
        optimizer = adam([weight], 1e-4, 1e-4, torch.device(fused_device))
    gradients = torch.Generator().manual_seed(1)
    for _ in range(steps):
        weight.grad = torch.randn(10_000, generator=gradients) * torch.logspace(-8, 0, 10_000)
        optimizer.step()
    return weight.detach()


def test_training_asks_for_fused_adam_on_the_cpu_and_cuda_only():
    assert adam([torch.nn.Parameter(torch.zeros(1))], 1e-4, 0.0, torch.device("cpu")).defaults["fused"] is True
    assert not adam([torch.nn.Parameter(torch.zeros(1))], 1e-4, 0.0, torch.device("meta")).defaults["fused"]


def test_fused_adam_makes_the_loops_update_to_the_last_bits():
    loop, fused = updated(None), updated("cpu")
    start = updated(None, steps=0)
    assert (loop - start).abs().max() > 1e-3  # 50 steps of lr 1e-4 moved the weights
    assert torch.allclose(fused, loop, rtol=0, atol=1e-6)  # and the two updates agree to rounding
