"""Where a series samples the knee: the exam's pose in the scanner and each plane's slice grid.

The grids are regular, so each shape is evaluated only on the block of points its box can reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .shapes import Box


@dataclass(frozen=True)
class Pose:
    """Knee frame -> scanner frame: p = forward @ q + shift, with
    forward = scale * R @ diag(mirror, 1, 1) (mirror = -1 for the other knee side)."""

    forward: np.ndarray  # (3, 3)
    shift: np.ndarray  # (3,)

    @staticmethod
    def of(rotation: np.ndarray, scale: float, shift: np.ndarray, mirror: float) -> Pose:
        return Pose(scale * rotation @ np.diag([mirror, 1.0, 1.0]), np.asarray(shift, dtype=np.float64))

    def inverse(self) -> tuple[np.ndarray, np.ndarray]:
        """(M, c) with q = M @ p + c."""
        m = np.linalg.inv(self.forward)
        return m, -m @ self.shift


def rotation_matrix(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx = math.cos(ax), math.sin(ax)
    cy, sy = math.cos(ay), math.sin(ay)
    cz, sz = math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def draw_pose(rng: np.random.Generator) -> Pose:
    angles = np.radians(rng.uniform(-5.0, 5.0, size=3))
    scale = float(rng.uniform(0.9, 1.1))
    shift = rng.uniform(-0.06, 0.06, size=3)
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    return Pose.of(rotation_matrix(*angles), scale, shift, mirror)


@dataclass(frozen=True)
class PlaneGeometry:
    """How one series samples the scanner frame: which axis the slices step along, which axes
    the rows and columns run along (with display direction), and the slab covered."""

    slice_axis: int
    row_axis: int
    col_axis: int
    slice_sign: float
    row_sign: float
    col_sign: float
    coverage: float  # half-extent of the slice stack along slice_axis


PLANE_GEOMETRY: dict[str, PlaneGeometry] = {
    # rows run superior -> inferior, columns anterior -> posterior
    "sagittal": PlaneGeometry(0, 2, 1, 1.0, -1.0, -1.0, 0.72),
    # rows superior -> inferior, columns one side -> the other
    "coronal": PlaneGeometry(1, 2, 0, 1.0, -1.0, 1.0, 0.62),
    # rows anterior -> posterior, slices superior -> inferior
    "axial": PlaneGeometry(2, 1, 0, -1.0, -1.0, 1.0, 0.70),
}


@dataclass(frozen=True)
class Axis:
    """Evenly spaced sample positions along one scanner axis: sign * (start + step * i), i < count."""

    start: float
    step: float
    count: int
    sign: float

    def positions(self) -> np.ndarray:
        return (self.sign * (self.start + self.step * np.arange(self.count))).astype(np.float64)  # (count,)

    def index_range(self, lo: float, hi: float) -> slice | None:
        """Indices whose positions fall in [lo, hi] (computed, not searched: this runs per shape)."""
        u_lo, u_hi = sorted((lo * self.sign, hi * self.sign))
        first = max(0, math.ceil((u_lo - self.start) / self.step))
        last = min(self.count - 1, math.floor((u_hi - self.start) / self.step))
        return slice(first, last + 1) if first <= last else None


@dataclass(frozen=True)
class SamplingGrid:
    """Where one series samples the scanner frame; its label volume is (s * n_sub, n, n), n = size * ss."""

    geometry: PlaneGeometry
    slices: Axis  # s * n_sub positions, slice-major (the n_sub sub-samples of a slab are adjacent)
    rows: Axis
    cols: Axis
    n_slices: int
    n_sub: int
    supersample: int


def inplane_supersampling(size: int) -> int:
    """Small images get 2x2 samples per pixel so thin structures (cartilage, clefts) do not alias away."""
    return 2 if size <= 128 else 1


def slab_subsamples(slab_thickness: float, pixel: float) -> int:
    """At least two samples per slab (partial volume); more when slabs are much thicker than pixels."""
    return int(min(3, max(2, math.ceil(slab_thickness / (2.0 * pixel)))))


def sampling_grid(plane: str, size: int, n_slices: int, coverage_scale: float) -> SamplingGrid:
    geo = PLANE_GEOMETRY[plane]
    ss = inplane_supersampling(size)
    n = size * ss
    half = geo.coverage * coverage_scale
    thickness = 2.0 * half / n_slices
    n_sub = slab_subsamples(thickness, 2.0 / size)
    sub_step = thickness / n_sub  # sub-sample k of slice i sits at -half + (i*n_sub + k + 0.5) * sub_step
    return SamplingGrid(
        geo,
        Axis(-half + 0.5 * sub_step, sub_step, n_slices * n_sub, geo.slice_sign),
        Axis(-1.0 + 1.0 / n, 2.0 / n, n, geo.row_sign),
        Axis(-1.0 + 1.0 / n, 2.0 / n, n, geo.col_sign),
        n_slices,
        n_sub,
        ss,
    )


def block_for_box(box: Box, pose: Pose, grid: SamplingGrid) -> tuple[slice, slice, slice] | None:
    """The part of the grid that can touch a knee-frame box, so each shape is evaluated only near itself."""
    lo, hi = np.clip(box[0], -10, 10), np.clip(box[1], -10, 10)
    if np.any(hi < lo):  # e.g. an intersection of parts that do not overlap
        return None
    center = pose.forward @ ((lo + hi) / 2) + pose.shift  # scanner frame
    half = np.abs(pose.forward) @ ((hi - lo) / 2) + 1e-6  # scanner half-extent of the rotated box
    geo = grid.geometry
    block = []
    axes = ((geo.slice_axis, grid.slices), (geo.row_axis, grid.rows), (geo.col_axis, grid.cols))
    for axis, sampling in axes:
        span = sampling.index_range(center[axis] - half[axis], center[axis] + half[axis])
        if span is None:
            return None
        block.append(span)
    return block[0], block[1], block[2]


def knee_coordinates(pose: Pose, grid: SamplingGrid) -> list[np.ndarray]:
    """Knee-frame x, y, z of every sample point, each (s * n_sub, size*ss, size*ss) float32.

    Computed once per series; each shape then reads a view of its block, which is much
    cheaper than recomputing coordinates per shape.
    """
    m, c = pose.inverse()
    geo = grid.geometry
    coords = []
    for k in range(3):
        along_slices = (m[k, geo.slice_axis] * grid.slices.positions() + c[k]).astype(np.float32)
        along_slices = along_slices[:, None, None]
        along_rows = (m[k, geo.row_axis] * grid.rows.positions()).astype(np.float32)[None, :, None]
        along_cols = (m[k, geo.col_axis] * grid.cols.positions()).astype(np.float32)[None, None, :]
        coords.append(along_slices + along_rows + along_cols)
    return coords
