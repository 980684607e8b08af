"""One training epoch and the validation pass: seeded order, loss scaling for fp16, batched validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import train_config

from benchmarks.dispatch import step_ops
from mrnet.data.transforms import train_view
from mrnet.device import grad_scaler
from mrnet.models import build_model
from mrnet.training import trainer
from mrnet.training.engine import epoch_augment, shuffled_order, train_one_epoch, validate


def tiny_exams(n: int = 4, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    series = [rng.integers(0, 255, size=(3, 64, 64), dtype=np.uint8) for _ in range(n)]
    return series, np.array([i % 2 for i in range(n)])


def one_epoch(scaler: torch.amp.GradScaler | None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(pretrained=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    series, labels = tiny_exams()
    train_one_epoch(
        model,
        optimizer,
        series,
        labels,
        order=[0, 1, 2, 3],
        augment=None,
        pos_weight=1.0,
        device=torch.device("cpu"),
        scaler=scaler,
    )
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("dtype", "enabled"), [(torch.float16, True), (torch.bfloat16, False), (None, False)])
def test_loss_scaling_only_for_fp16(dtype, enabled):
    assert grad_scaler(torch.device("cpu"), dtype).is_enabled() is enabled


@pytest.mark.slow
def test_an_enabled_scaler_scales_every_step_and_unscales_before_the_update(monkeypatch):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, enabled=True)
    scaled = []
    original = scaler.scale
    monkeypatch.setattr(scaler, "scale", lambda loss: scaled.append(float(loss.detach())) or original(loss))
    with_scaler = one_epoch(scaler)
    plain = one_epoch(None)
    assert len(scaled) == 4  # one scaled loss per optimiser step
    assert scaler.get_scale() == 2.0**12  # finite gradients: the scale holds (no step was skipped)
    for name, tensor in plain.items():
        # Unscaled before Adam's step: the same update as without scaling, up to rounding.
        torch.testing.assert_close(with_scaler[name], tensor, rtol=1e-4, atol=1e-6, msg=name)


def test_overflowing_gradients_skip_the_step_and_lower_the_scale():
    torch.manual_seed(0)
    model = build_model(pretrained=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127, enabled=True)
    series, _ = tiny_exams(1)
    # A positive exam weighted 100x: loss ~ 69, scaled past float32's range, so its gradients are not finite.
    train_one_epoch(
        model,
        optimizer,
        series,
        np.array([1]),
        order=[0],
        augment=None,
        pos_weight=100.0,
        device=torch.device("cpu"),
        scaler=scaler,
    )
    assert scaler.get_scale() == 2.0**126  # backed off by half
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_the_trainer_hands_its_scaler_to_every_epoch(tiny_data, tmp_path, monkeypatch):
    seen = []
    real = trainer.train_one_epoch

    def spy(*args, **kwargs):
        seen.append(kwargs["scaler"])
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", spy)
    trainer.train(train_config(tiny_data, tmp_path / "m", plane="axial", epochs=2, amp="off"))
    assert len(seen) == 2 and all(isinstance(s, torch.amp.GradScaler) for s in seen)
    assert not seen[0].is_enabled()  # fp32: no scaling


def test_epoch_order_is_a_seeded_permutation():
    order = shuffled_order(10, seed=3, epoch=2)
    assert sorted(order) == list(range(10))
    assert order == shuffled_order(10, seed=3, epoch=2)
    assert order != shuffled_order(10, seed=3, epoch=3)


def test_validation_scores_every_exam_however_it_is_batched():
    torch.manual_seed(0)
    model = build_model(pretrained=False)
    series, labels = tiny_exams(5)
    small = validate(model, series, labels, 1.0, torch.device("cpu"), max_slices=3)
    large = validate(model, series, labels, 1.0, torch.device("cpu"), max_slices=512)
    assert small.probs.shape == (5,)
    np.testing.assert_allclose(small.probs, large.probs, rtol=1e-5)
    assert small.loss == pytest.approx(large.loss, rel=1e-5)


@pytest.mark.parametrize("outputs", [1, 3])
def test_a_training_step_makes_no_tensor_of_host_data(outputs):
    """Nothing in a step waits for the device: labels, loss weights and augmentation draws go there once per epoch.

    Counted from the aten ops of the real train_one_epoch (a two-exam epoch less a one-exam
    one): no tensor built from host data by this package's code (a torch.tensor(...,
    device=...) per step would be a blocking copy on CUDA), for one task and for three.
    """
    step = step_ops("alexnet", size=64, slices=3, augment=True, outputs=outputs)
    assert step["mrnet_host_data_sites_per_step"] == []
    assert step["ops_per_step"] > 100  # the count did see the step: forward, backward and Adam


def test_epoch_draws_are_the_draws_one_series_at_a_time_would_get():
    """Uploading an epoch's augmentation draws at once changes no number: resumed runs replay exactly."""
    series = torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
    one_at_a_time = epoch_augment(0, 1)  # each call draws the next row from the generator
    epoch = epoch_augment(0, 1)
    draws = epoch.uniforms(4)  # (4, 4): what training sends to the device once per epoch
    for draw in draws:
        assert torch.equal(train_view(series, one_at_a_time), train_view(series, epoch, draw))
