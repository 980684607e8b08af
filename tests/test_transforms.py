"""Preprocessing and augmentation: one transform per series, known images move as expected."""

from __future__ import annotations

import pytest
import torch

from mrnet.data.transforms import (
    MRNET_MEAN,
    MRNET_STD,
    AugmentParams,
    SeriesAugment,
    apply_affine,
    preprocess,
    scale_series,
    train_view,
)


def test_preprocess_scales_per_series_to_one_grey_channel():
    series = torch.tensor([[[10, 20], [30, 40]], [[50, 60], [70, 110]]], dtype=torch.uint8)
    out = preprocess(series)
    assert out.shape == (2, 1, 2, 2) and out.dtype == torch.float32
    # min 10 -> 0, max 110 -> 255 over the whole series, then the MRNet normalisation
    assert torch.isclose(out[0, 0, 0, 0], torch.tensor((0 - MRNET_MEAN) / MRNET_STD))
    assert torch.isclose(out[1, 0, 1, 1], torch.tensor((255 - MRNET_MEAN) / MRNET_STD))


def test_constant_series_gives_no_nan():
    out = preprocess(torch.full((3, 8, 8), 7, dtype=torch.uint8))
    assert torch.isfinite(out).all()


def test_rotation_by_90_degrees_matches_rot90():
    image = torch.zeros(1, 8, 8)
    image[0, 1, 5] = 1.0
    rotated = apply_affine(image, AugmentParams(angle_deg=90, shift_x_px=0, shift_y_px=0, flip=False))
    # positive angles turn the image clockwise as displayed (rows grow downwards)
    assert torch.allclose(rotated, torch.rot90(image, k=-1, dims=(1, 2)), atol=1e-5)


def test_horizontal_flip_matches_torch_flip():
    image = torch.arange(64, dtype=torch.float32).reshape(1, 8, 8)
    flipped = apply_affine(image, AugmentParams(0, 0, 0, flip=True))
    assert torch.allclose(flipped, torch.flip(image, dims=(2,)), atol=1e-4)


def test_integer_shift_moves_pixels_and_fills_zeros():
    image = torch.zeros(1, 8, 8)
    image[0, 1, 5] = 1.0
    shifted = apply_affine(image, AugmentParams(0, shift_x_px=2, shift_y_px=3, flip=False))
    assert shifted[0].nonzero().tolist() == [[4, 7]]
    out_of_view = apply_affine(image, AugmentParams(0, shift_x_px=4, shift_y_px=0, flip=False))
    assert out_of_view.abs().max() == 0


def test_one_draw_is_applied_to_every_slice():
    torch.manual_seed(0)
    slice_ = torch.rand(64, 64) * 255
    series = slice_.expand(6, 64, 64).clone()
    out = SeriesAugment(seed=3)(series)
    for i in range(1, 6):
        assert torch.equal(out[0], out[i])
    assert not torch.allclose(out[0], series[0])


def test_draws_are_seeded_and_in_range():
    a, b = SeriesAugment(seed=5), SeriesAugment(seed=5)
    draws_a = [a.draw(256) for _ in range(200)]
    assert draws_a == [b.draw(256) for _ in range(200)]
    assert draws_a != [SeriesAugment(seed=6).draw(256) for _ in range(200)]
    assert all(abs(d.angle_deg) <= 25 and abs(d.shift_x_px) <= 25 and abs(d.shift_y_px) <= 25 for d in draws_a)
    flips = sum(d.flip for d in draws_a) / len(draws_a)
    assert 0.35 < flips < 0.65


def test_shift_scales_with_image_size():
    augment = SeriesAugment(seed=2)
    draws = [augment.draw(64) for _ in range(200)]
    largest = max(max(abs(d.shift_x_px), abs(d.shift_y_px)) for d in draws)
    assert 0.9 * 25 * 64 / 256 < largest <= 25 * 64 / 256  # the whole range, a quarter of the 256 px one
    for seed in range(5):  # the same draw at two sizes: only the shift changes, in proportion
        small, large = SeriesAugment(seed=seed).draw(64), SeriesAugment(seed=seed).draw(256)
        assert small.shift_x_px == pytest.approx(large.shift_x_px / 4)
        assert small.shift_y_px == pytest.approx(large.shift_y_px / 4)
        assert (small.angle_deg, small.flip) == (large.angle_deg, large.flip)


def test_train_view_without_augment_equals_preprocess():
    series = torch.randint(0, 255, (4, 64, 64), dtype=torch.uint8)
    assert torch.equal(train_view(series, None), preprocess(series))
    scaled = scale_series(series)
    assert scaled.min() == 0 and scaled.max() == pytest.approx(255.0)


def test_drawn_transform_equals_the_explicit_one():
    series = torch.rand(3, 64, 64) * 255
    for seed in range(5):
        params = SeriesAugment(seed=seed).draw(64)
        expected = apply_affine(series, params)
        assert torch.allclose(SeriesAugment(seed=seed)(series), expected, atol=1e-4)
