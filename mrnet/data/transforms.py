"""Preprocessing and augmentation, written once for training, evaluation and prediction.

Everything runs on the exam's device with torch ops: the uint8 series travels to the
device as is (4x less to copy than float32) and is scaled, augmented and normalised there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The MRNet baseline's intensity statistics after per-series min-max scaling to [0, 255].
MRNET_MEAN = 58.09
MRNET_STD = 49.73
MAX_PIXEL = 255.0


def scale_series(series: torch.Tensor) -> torch.Tensor:
    """uint8 (s, H, W) -> float32 (s, H, W) min-max scaled to [0, 255] over the whole series.

    Scaling per series (not per slice) keeps the relative brightness of slices, as the
    baseline does.
    """
    x = series.float()
    low, high = x.amin(), x.amax()
    # A constant series has no contrast to stretch; dividing by zero would give NaN.
    span = torch.clamp(high - low, min=1e-6)
    return (x - low) * (MAX_PIXEL / span)


def normalise(scaled: torch.Tensor) -> torch.Tensor:
    """float (s, H, W) in [0, 255] -> (s, 1, H, W) standardised with the MRNet baseline's statistics.

    One grey channel: the model treats it as the baseline's three identical channels by
    summing its first convolution's kernels over them (see MRNet.feature_maps), which gives
    the same numbers without copying every slice three times.
    """
    return ((scaled - MRNET_MEAN) / MRNET_STD).unsqueeze(-3)


def preprocess(series: torch.Tensor) -> torch.Tensor:
    """Deterministic path (evaluation, prediction): uint8 (s, H, W) -> float (s, 1, H, W)."""
    return normalise(scale_series(series))


@dataclass(frozen=True)
class AugmentParams:
    """One draw for a whole series: every slice gets the same transform."""

    angle_deg: float
    shift_x_px: float
    shift_y_px: float
    flip: bool


class SeriesAugment:
    """Random rotation, shift and horizontal flip, one draw per series (MRNet's recipe).

    Owns its torch.Generator so a seed fixes every draw, independent of the device the
    images live on and of any other randomness in the process.
    """

    def __init__(
        self,
        max_rotation_deg: float = 25.0,
        max_shift_px_at_256: float = 25.0,
        flip_probability: float = 0.5,
        seed: int = 0,
    ):
        self.max_rotation_deg = max_rotation_deg
        self.max_shift_px_at_256 = max_shift_px_at_256
        self.flip_probability = flip_probability
        self.generator = torch.Generator().manual_seed(seed)

    def uniforms(self, count: int = 1) -> torch.Tensor:
        """(count, 4) U(0,1) numbers, one row per series: angle, shift x, shift y, flip.

        Drawn in one call, they are the numbers `count` draws of one row would give, so an
        epoch can draw every series' row up front and send them to the device in one copy.
        """
        return torch.rand(count, 4, generator=self.generator, dtype=torch.float64)

    def draw(self, size: int) -> AugmentParams:
        """Draw parameters for a series of `size` x `size` slices (shift scales with size)."""
        u = self.uniforms()[0].tolist()
        max_shift = self.max_shift_px_at_256 * size / 256.0
        return AugmentParams(
            angle_deg=(2 * u[0] - 1) * self.max_rotation_deg,
            shift_x_px=(2 * u[1] - 1) * max_shift,
            shift_y_px=(2 * u[2] - 1) * max_shift,
            flip=u[3] < self.flip_probability,
        )

    def apply(self, scaled: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """float (s, H, W) -> float (s, H, W) warped by the draw `u` (4,), on scaled's device.

        The matrix is built there from the draw, so a training step never waits for the device.
        """
        matrix = matrix_from_uniforms(
            u, scaled.shape[-1], self.max_rotation_deg, self.max_shift_px_at_256, self.flip_probability
        )
        return warp(scaled, matrix)

    def __call__(self, scaled: torch.Tensor) -> torch.Tensor:
        """The next draw applied to one series (training draws a whole epoch's at once instead)."""
        return self.apply(scaled, self.uniforms()[0].to(scaled.device))


def matrix_from_uniforms(
    u: torch.Tensor, size: int, max_rotation_deg: float, max_shift_px_at_256: float, flip_probability: float
) -> torch.Tensor:
    """The sampling matrix of affine_matrix(), computed with tensor ops on u's device."""
    max_shift = max_shift_px_at_256 * size / 256.0
    theta = torch.deg2rad((2 * u[0] - 1) * max_rotation_deg)
    shift = (2 * u[1:3] - 1) * max_shift * (2.0 / size)  # (tx, ty) in normalised units
    flip = torch.where(u[3] < flip_probability, -1.0, 1.0).to(u.dtype)
    cos, sin = torch.cos(theta), torch.sin(theta)
    linear = torch.stack([torch.stack([flip * cos, flip * sin]), torch.stack([-sin, cos])])  # F @ R^T
    offset = -(linear @ shift)
    return torch.cat([linear, offset[:, None]], dim=1).float()


def affine_matrix(params: AugmentParams, size: int) -> torch.Tensor:
    """The (2, 3) sampling matrix for F.affine_grid: output pixel -> input pixel.

    In normalised coordinates ([-1, 1] across the image) a shift of t pixels is 2t/size.
    The matrix maps each output location back to where it samples the input, so it holds
    the inverse of the forward transform (flip, then rotate, then shift). Positive angles
    turn the image clockwise as displayed; positive shifts move it right and down.
    """
    theta = math.radians(params.angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    flip = -1.0 if params.flip else 1.0
    tx = 2.0 * params.shift_x_px / size
    ty = 2.0 * params.shift_y_px / size
    # Forward: p_out = R @ (F @ p_in) + t  ->  p_in = F @ R^T @ (p_out - t)
    inv_rot = torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64)
    flip_m = torch.tensor([[flip, 0.0], [0.0, 1.0]], dtype=torch.float64)
    linear = flip_m @ inv_rot
    offset = -(linear @ torch.tensor([tx, ty], dtype=torch.float64))
    return torch.cat([linear, offset[:, None]], dim=1).float()


def apply_affine(scaled: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Warp every slice of a series with one explicitly given transform."""
    return warp(scaled, affine_matrix(params, scaled.shape[-1]).to(scaled.device))


def warp(scaled: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """float (s, H, W) warped by one (2, 3) sampling matrix; outside the image is 0."""
    slices, height, width = scaled.shape
    grid = F.affine_grid(matrix[None], [1, 1, height, width], align_corners=False)  # (1, H, W, 2)
    warped = F.grid_sample(
        scaled[:, None],  # (s, 1, H, W)
        grid.expand(slices, -1, -1, -1),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return warped[:, 0]


def train_view(series: torch.Tensor, augment: SeriesAugment | None, draw: torch.Tensor | None = None) -> torch.Tensor:
    """Training path: uint8 (s, H, W) -> float (s, 1, H, W), augmented when `augment` is set.

    `draw` (4,) is this series' row of `augment.uniforms`, already on the device; None takes the next one.
    """
    scaled = scale_series(series)
    if augment is not None:
        scaled = augment(scaled) if draw is None else augment.apply(scaled, draw)
    return normalise(scaled)
