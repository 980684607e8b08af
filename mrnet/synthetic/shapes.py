"""Analytic solids in the knee frame and the layers that paint them.

Every structure and lesion is a bounding box plus a vectorised membership test, so one
phantom can be sampled on any slice grid at any resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .tissues import Tissue

Box = tuple[np.ndarray, np.ndarray]  # (lo (3,), hi (3,)) axis-aligned, knee frame


class Shape(Protocol):
    """A solid in the knee frame: a bounding box (to skip grid points far away) and a membership test."""

    def bbox(self) -> Box: ...

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray: ...


def _box(lo: Sequence[float], hi: Sequence[float]) -> Box:
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


@dataclass(frozen=True)
class Ellipsoid:
    center: tuple[float, float, float]
    radii: tuple[float, float, float]

    def bbox(self) -> Box:
        c, r = np.asarray(self.center), np.asarray(self.radii)
        return _box(c - r, c + r)

    def inside(self, x, y, z):
        (cx, cy, cz), (rx, ry, rz) = self.center, self.radii
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1.0

    def grown(self, by: float) -> Ellipsoid:
        rx, ry, rz = self.radii
        return Ellipsoid(self.center, (rx + by, ry + by, rz + by))


@dataclass(frozen=True)
class OrientedEllipsoid:
    """An ellipsoid whose axes are the rows of `axes` (orthonormal), for blobs along oblique bands."""

    center: tuple[float, float, float]
    axes: tuple[tuple[float, float, float], ...]
    radii: tuple[float, float, float]

    def bbox(self) -> Box:
        c = np.asarray(self.center)
        half = np.abs(np.asarray(self.axes)).T @ np.asarray(self.radii)  # (3,) extent per knee axis
        return _box(c - half, c + half)

    def inside(self, x, y, z):
        dx, dy, dz = x - self.center[0], y - self.center[1], z - self.center[2]
        total = 0.0
        for (ax, ay, az), r in zip(self.axes, self.radii, strict=True):
            total = total + ((ax * dx + ay * dy + az * dz) / r) ** 2
        return total <= 1.0


@dataclass(frozen=True)
class Column:
    """Elliptic cross-section in x-y whose radii vary piecewise-linearly with z (bone shafts that flare)."""

    center_xy: tuple[float, float]
    z_knots: tuple[float, ...]
    rx_knots: tuple[float, ...]
    ry_knots: tuple[float, ...]

    def bbox(self) -> Box:
        cx, cy = self.center_xy
        rx, ry = max(self.rx_knots), max(self.ry_knots)
        return _box((cx - rx, cy - ry, self.z_knots[0]), (cx + rx, cy + ry, self.z_knots[-1]))

    def inside(self, x, y, z):
        cx, cy = self.center_xy
        in_z = (z >= self.z_knots[0]) & (z <= self.z_knots[-1])
        if len(set(self.rx_knots)) == 1 and len(set(self.ry_knots)) == 1:  # a straight cylinder
            rx, ry = self.rx_knots[0], self.ry_knots[0]
        else:
            rx = np.interp(z, self.z_knots, self.rx_knots).astype(np.float32)
            ry = np.interp(z, self.z_knots, self.ry_knots).astype(np.float32)
        return in_z & (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0)

    def shrunk(self, by: float) -> Column:
        return Column(
            self.center_xy,
            (self.z_knots[0] + by, *self.z_knots[1:-1], self.z_knots[-1]),
            tuple(r - by for r in self.rx_knots),
            tuple(r - by for r in self.ry_knots),
        )

    def grown(self, by: float) -> Column:
        return Column(
            self.center_xy,
            (self.z_knots[0] - by, *self.z_knots[1:-1], self.z_knots[-1]),
            tuple(r + by for r in self.rx_knots),
            tuple(r + by for r in self.ry_knots),
        )


@dataclass(frozen=True)
class Slab:
    """lo <= coordinate[axis] <= hi, for cutting other shapes."""

    axis: int
    lo: float
    hi: float

    def bbox(self) -> Box:
        lo, hi = np.full(3, -10.0), np.full(3, 10.0)
        lo[self.axis], hi[self.axis] = self.lo, self.hi
        return lo, hi

    def inside(self, x, y, z):
        v = (x, y, z)[self.axis]
        return (v >= self.lo) & (v <= self.hi)


@dataclass(frozen=True)
class Notch:
    """The intercondylar notch: a half-elliptic arch in x-z extruded along y, whose roof rises
    from front to back (Blumensaat's line is oblique on a sagittal image)."""

    half_width: float
    height_front: float
    height_back: float
    y_front: float
    y_back: float
    z_floor: float

    def bbox(self) -> Box:
        return _box(
            (-self.half_width, self.y_back, self.z_floor),
            (self.half_width, self.y_front, max(self.height_front, self.height_back)),
        )

    def inside(self, x, y, z):
        frac = np.clip((y - self.y_back) / (self.y_front - self.y_back), 0.0, 1.0)
        height = self.height_back + (self.height_front - self.height_back) * frac
        arch = (x / self.half_width) ** 2 + (z / height) ** 2 <= 1.0
        return arch & (y >= self.y_back) & (y <= self.y_front) & (z >= self.z_floor)

    def grown(self, by: float) -> Notch:
        return Notch(
            self.half_width + by,
            self.height_front + by,
            self.height_back + by,
            self.y_front + by,
            self.y_back - by,
            self.z_floor,
        )


@dataclass(frozen=True)
class Band:
    """A capsule from a to b (ligaments, tendons), optionally flattened, wavy, or with a gap.

    `scale` stretches the offset from the axis per knee axis before comparing with `radius`,
    so a ribbon is a capsule squeezed along one axis. A wave displaces the axis along
    `wave_normal` by amp*sin(2*pi*cycles*t + phase) (a lax, torn ligament); `gap` removes the
    part with axial parameter t in (gap[0], gap[1]).
    """

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radius: float
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    wave_amp: float = 0.0
    wave_cycles: float = 0.0
    wave_phase: float = 0.0
    wave_normal: tuple[float, float, float] = (0.0, 0.0, 1.0)
    gap: tuple[float, float] | None = None

    def bbox(self) -> Box:
        a, b = np.asarray(self.a), np.asarray(self.b)
        reach = (self.radius + self.wave_amp) / np.minimum(np.asarray(self.scale), 1.0) * np.ones(3)
        return _box(np.minimum(a, b) - reach, np.maximum(a, b) + reach)

    def inside(self, x, y, z):
        a, d = np.asarray(self.a), np.asarray(self.b) - np.asarray(self.a)
        length2 = float(d @ d)
        px, py, pz = x - a[0], y - a[1], z - a[2]
        t = np.clip((px * d[0] + py * d[1] + pz * d[2]) / length2, 0.0, 1.0)
        offset = 0.0
        if self.wave_amp:
            offset = self.wave_amp * np.sin((2 * math.pi * self.wave_cycles) * t + self.wave_phase)
        dist2 = 0.0
        for k, p in enumerate((px, py, pz)):
            diff = p - t * d[k] - offset * self.wave_normal[k]
            dist2 = dist2 + (diff * self.scale[k]) ** 2
        hit = dist2 <= self.radius**2
        if self.gap is not None:
            hit &= (t <= self.gap[0]) | (t >= self.gap[1])
        return hit

    def point(self, t: float) -> np.ndarray:
        return np.asarray(self.a) + t * (np.asarray(self.b) - np.asarray(self.a))

    def length(self) -> float:
        return float(np.linalg.norm(np.asarray(self.b) - np.asarray(self.a)))


@dataclass(frozen=True)
class MeniscusFrame:
    """Elliptic-polar frame of one tibial compartment: rho = 1 at the meniscus periphery."""

    center_xy: tuple[float, float]
    ax: float
    ay: float

    def polar(self, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = (x - self.center_xy[0]) / self.ax
        v = (y - self.center_xy[1]) / self.ay
        return u, v, np.sqrt(u * u + v * v)

    def bbox_xy(self) -> tuple[tuple[float, float], tuple[float, float]]:
        cx, cy = self.center_xy
        return (cx - self.ax, cy - self.ay), (cx + self.ax, cy + self.ay)


def _within_arc(u, v, rho, angle: float, half_angle: float) -> np.ndarray:
    """Points whose polar angle lies within half_angle of angle (no atan2: a dot product)."""
    return u * math.cos(angle) + v * math.sin(angle) >= rho * math.cos(half_angle)


@dataclass(frozen=True)
class Meniscus:
    """A C-shaped fibrocartilage wedge: thin at the inner free edge, tall at the periphery."""

    frame: MeniscusFrame
    rho_in: float
    z_base: float
    height: float
    opening_angle: float  # direction (in the frame's u-v plane) of the C's gap, towards the notch
    opening_half_angle: float

    def bbox(self) -> Box:
        (x0, y0), (x1, y1) = self.frame.bbox_xy()
        return _box((x0, y0, self.z_base), (x1, y1, self.z_base + self.height))

    def local_height(self, rho):
        return self.height * (rho - self.rho_in) / (1.0 - self.rho_in)

    def inside(self, x, y, z):
        u, v, rho = self.frame.polar(x, y)
        ring = (rho >= self.rho_in) & (rho <= 1.0)
        wedge = (z >= self.z_base) & (z <= self.z_base + self.local_height(rho))
        gap = _within_arc(u, v, rho, self.opening_angle, self.opening_half_angle)
        return ring & wedge & ~gap


@dataclass(frozen=True)
class MeniscalCleft:
    """A tear through a meniscus over an arc: vertical-longitudinal (constant rho) or horizontal."""

    meniscus: Meniscus
    kind: str  # "vertical" | "horizontal"
    arc_angle: float
    arc_half_angle: float
    position: float  # vertical: rho of the cleft; horizontal: fraction of the local height
    thickness: float  # knee units
    rho_end: float = 1.0  # horizontal clefts stop short of the periphery

    def bbox(self) -> Box:
        return self.meniscus.bbox()

    def inside(self, x, y, z):
        m = self.meniscus
        u, v, rho = m.frame.polar(x, y)
        arc = _within_arc(u, v, rho, self.arc_angle, self.arc_half_angle)
        if self.kind == "vertical":
            # rho is in units of the compartment radii; ax is the radius along which coronal slices cut
            cleft = np.abs(rho - self.position) * m.frame.ax <= self.thickness / 2
        else:
            mid = m.z_base + self.position * m.local_height(rho)
            cleft = (np.abs(z - mid) <= self.thickness / 2) & (rho <= self.rho_end)
        return arc & cleft


@dataclass(frozen=True)
class MeniscalSegment:
    """The arc of a meniscus around a tear, where the torn fibrocartilage carries signal."""

    meniscus: Meniscus
    arc_angle: float
    arc_half_angle: float

    def bbox(self) -> Box:
        return self.meniscus.bbox()

    def inside(self, x, y, z):
        u, v, rho = self.meniscus.frame.polar(x, y)
        return _within_arc(u, v, rho, self.arc_angle, self.arc_half_angle) & self.meniscus.inside(x, y, z)


@dataclass(frozen=True)
class Intersection:
    parts: tuple[Shape, ...]

    def bbox(self) -> Box:
        boxes = [p.bbox() for p in self.parts]
        return np.max([b[0] for b in boxes], axis=0), np.min([b[1] for b in boxes], axis=0)

    def inside(self, x, y, z):
        hit = self.parts[0].inside(x, y, z)
        for part in self.parts[1:]:
            hit &= part.inside(x, y, z)
        return hit


@dataclass(frozen=True)
class Difference:
    keep: Shape
    remove: Shape

    def bbox(self) -> Box:
        return self.keep.bbox()

    def inside(self, x, y, z):
        return self.keep.inside(x, y, z) & ~self.remove.inside(x, y, z)


@dataclass(frozen=True)
class Union:
    parts: tuple[Shape, ...]

    def bbox(self) -> Box:
        boxes = [p.bbox() for p in self.parts]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)

    def inside(self, x, y, z):
        hit = self.parts[0].inside(x, y, z)
        for part in self.parts[1:]:
            hit |= part.inside(x, y, z)
        return hit


@dataclass(frozen=True)
class Layer:
    """Paint `tissue` where `shape` is, but only over the tissues in `over` (None: over anything).

    The phantom is a list of layers painted in order, so later structures (bone) cut earlier
    ones (fluid) and lesions replace only the tissue they belong in (a bruise only marrow).
    """

    tissue: Tissue
    shape: Shape
    over: tuple[Tissue, ...] | None = None
    box: Box = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", self.shape.bbox())  # once per exam, not once per series
