"""Synthetic knee MRI exams in the MRNet-v1.0 layout, with real, plane-dependent findings.

The real dataset needs a registration, so tests, demos and smoke runs need stand-in data
that exercises the same code paths and still has something to learn. Each exam here is one
analytic 3-D knee phantom (bones, cartilage, menisci, cruciate ligaments, tendons, fat,
muscle, joint fluid) that is sampled three times, once per series, each on its own slice
grid and with its own contrast:

    sagittal  T2 fat-saturated  slices along x (left-right),      images (z, y)
    coronal   T1                slices along y (anterior-post.),  images (z, x)
    axial     PD fat-saturated  slices along z (superior-inf.),   images (y, x)

Because all three series sample one phantom, they agree with each other, and a finding
looks different in each of them for the same reasons it does in real scans: its shape
relative to the slice direction (partial volume over thick slices) and its contrast in that
sequence. An ACL tear (a gap in an oblique band that lies in the sagittal plane, with
edema that is bright on T2-FS) is best seen on sagittal series; a meniscal tear (a cleft
through the dark meniscus body that runs along the slice direction of coronal series, in a
torn segment whose fibrocartilage lights up on the short-TE coronal T1 and stays dark on
the long-TE fat-saturated series) is best seen on coronal series. Every abnormal
exam also carries an effusion, a bone bruise and/or a cartilage defect, visible in all
planes, so that `abnormal` is more than "ACL or meniscus".

Knee frame: x = left-right (+x lateral), y = anterior(+)-posterior, z = superior(+)-
inferior, in units where the in-plane field of view spans [-1, 1]. The joint line is near
z = 0. The pose of each exam maps this frame into the scanner frame in which the three
slice grids are fixed.

Determinism: an exam depends only on (seed, case index, labels), through
`np.random.default_rng([seed, case_index])`, so it is the same however many others are
made alongside it, and its anatomy, noise and lesion parameters come from separate
streams: the same exam with and without a tear differs only by the tear.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from . import PLANES, SPLITS, TASKS

MIN_SIZE = 64  # AlexNet's feature maps vanish below this
MAX_SIZE = 1024
MAX_SLICES = 256

# MRNet's real slice counts per series: the range of each plane, and a mean/sd shared by all.
REAL_SLICE_RANGES: dict[str, tuple[int, int]] = {"axial": (19, 61), "coronal": (17, 58), "sagittal": (17, 51)}
REAL_SLICE_MEAN, REAL_SLICE_SD = 31.5, 7.1

# MRNet train label combinations (abnormal, acl, meniscus) and their counts out of 1,130.
COMBINATION_COUNTS: dict[tuple[int, int, int], int] = {
    (0, 0, 0): 217,
    (1, 0, 0): 433,
    (1, 0, 1): 272,
    (1, 1, 0): 83,
    (1, 1, 1): 125,
}
COMBINATIONS: tuple[tuple[int, int, int], ...] = tuple(COMBINATION_COUNTS)  # also the valid-split order
MIN_CLASS_COUNT = 2  # each task needs this many positives and negatives per split ...
BALANCE_FROM_N = 10  # ... once a split has at least this many exams

LABEL_STREAM = 1  # label draws use default_rng([seed, case_index, LABEL_STREAM])

Labels = tuple[int, int, int]
Box = tuple[np.ndarray, np.ndarray]  # (lo (3,), hi (3,)) axis-aligned, knee frame


class Tissue(IntEnum):
    """Tissue classes of the phantom; lesions are their own classes so masks fall out of the labels."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    CORTEX = 3
    MARROW = 4
    CARTILAGE = 5
    FLUID = 6
    LIGAMENT = 7
    MENISCUS = 8
    VESSEL = 9
    EFFUSION = 10
    BONE_BRUISE = 11
    CARTILAGE_DEFECT = 12
    ACL_TEAR = 13
    MENISCAL_TEAR = 14
    MENISCAL_FRAGMENT = 15
    MENISCAL_SIGNAL = 16  # intrasubstance signal along a torn segment


# Finding name -> the tissue classes it plants.
FINDING_TISSUES: dict[str, tuple[Tissue, ...]] = {
    "acl_tear": (Tissue.ACL_TEAR,),
    "meniscal_tear": (Tissue.MENISCAL_TEAR, Tissue.MENISCAL_FRAGMENT, Tissue.MENISCAL_SIGNAL),
    "effusion": (Tissue.EFFUSION,),
    "bone_bruise": (Tissue.BONE_BRUISE,),
    "cartilage_defect": (Tissue.CARTILAGE_DEFECT,),
}
FINDINGS = tuple(FINDING_TISSUES)
# Task -> the findings that make it positive (abnormal: any of them).
TASK_FINDINGS: dict[str, tuple[str, ...]] = {
    "abnormal": FINDINGS,
    "acl": ("acl_tear",),
    "meniscus": ("meniscal_tear",),
}

SOFT = (Tissue.FAT, Tissue.MUSCLE, Tissue.FLUID, Tissue.EFFUSION)

# Relative signal of each tissue per series (before per-exam jitter), chosen like the real
# sequences: sagittal T2 fat-sat (fluid/edema bright, fat dark), coronal T1 (fat/marrow
# bright, fluid dark grey, short-TE meniscal signal intermediate), axial PD fat-sat (fluid
# bright). Lesion rows are where the plane dependence of the findings is set. The torn
# meniscal segment (MENISCAL_SIGNAL) is deliberately brighter on coronal T1 than any real
# tear: a meniscus is a few pixels tall at the demo's 64 px, and at a realistic signal a
# small AlexNet trained from scratch for a few epochs does not find it at all.
_T = Tissue
BASE_CONTRAST: dict[str, dict[Tissue, float]] = {
    "sagittal": {
        _T.AIR: 0.0, _T.FAT: 0.2, _T.MUSCLE: 0.32, _T.CORTEX: 0.03, _T.MARROW: 0.19,
        _T.CARTILAGE: 0.45, _T.FLUID: 0.95, _T.LIGAMENT: 0.05, _T.MENISCUS: 0.05, _T.VESSEL: 0.07,
        _T.EFFUSION: 0.95, _T.BONE_BRUISE: 0.75, _T.CARTILAGE_DEFECT: 0.92,
        _T.ACL_TEAR: 0.88, _T.MENISCAL_TEAR: 0.2, _T.MENISCAL_FRAGMENT: 0.05, _T.MENISCAL_SIGNAL: 0.1,
    },
    "coronal": {
        _T.AIR: 0.0, _T.FAT: 0.92, _T.MUSCLE: 0.36, _T.CORTEX: 0.03, _T.MARROW: 0.86,
        _T.CARTILAGE: 0.42, _T.FLUID: 0.16, _T.LIGAMENT: 0.06, _T.MENISCUS: 0.05, _T.VESSEL: 0.06,
        _T.EFFUSION: 0.16, _T.BONE_BRUISE: 0.30, _T.CARTILAGE_DEFECT: 0.16,
        _T.ACL_TEAR: 0.55, _T.MENISCAL_TEAR: 0.8, _T.MENISCAL_FRAGMENT: 0.05, _T.MENISCAL_SIGNAL: 2.5,
    },
    "axial": {
        _T.AIR: 0.0, _T.FAT: 0.2, _T.MUSCLE: 0.33, _T.CORTEX: 0.03, _T.MARROW: 0.2,
        _T.CARTILAGE: 0.5, _T.FLUID: 0.90, _T.LIGAMENT: 0.06, _T.MENISCUS: 0.05, _T.VESSEL: 0.08,
        _T.EFFUSION: 0.90, _T.BONE_BRUISE: 0.62, _T.CARTILAGE_DEFECT: 0.85,
        _T.ACL_TEAR: 0.2, _T.MENISCAL_TEAR: 0.14, _T.MENISCAL_FRAGMENT: 0.05, _T.MENISCAL_SIGNAL: 0.08,
    },
}


# ----------------------------------------------------------------------------- geometry


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

    def grown(self, by: float) -> "Ellipsoid":
        return Ellipsoid(self.center, tuple(r + by for r in self.radii))


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
        for (ax, ay, az), r in zip(self.axes, self.radii):
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

    def shrunk(self, by: float) -> "Column":
        return Column(
            self.center_xy,
            (self.z_knots[0] + by, *self.z_knots[1:-1], self.z_knots[-1]),
            tuple(r - by for r in self.rx_knots),
            tuple(r - by for r in self.ry_knots),
        )

    def grown(self, by: float) -> "Column":
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
        return _box((-self.half_width, self.y_back, self.z_floor),
                    (self.half_width, self.y_front, max(self.height_front, self.height_back)))

    def inside(self, x, y, z):
        frac = np.clip((y - self.y_back) / (self.y_front - self.y_back), 0.0, 1.0)
        height = self.height_back + (self.height_front - self.height_back) * frac
        arch = (x / self.half_width) ** 2 + (z / height) ** 2 <= 1.0
        return arch & (y >= self.y_back) & (y <= self.y_front) & (z >= self.z_floor)

    def grown(self, by: float) -> "Notch":
        return Notch(self.half_width + by, self.height_front + by, self.height_back + by, self.y_front + by,
                     self.y_back - by, self.z_floor)


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


# ----------------------------------------------------------------------------- anatomy


@dataclass(frozen=True)
class Anatomy:
    """Per-exam anatomical variation (sizes in knee units)."""

    body_scale: float
    subcutaneous_fat: float
    condyle_scale: float
    notch_half_width: float
    patella_z: float
    cartilage: float
    physiologic_fluid: float
    meniscus_scale: float
    acl_tilt: float


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    return Anatomy(
        body_scale=float(rng.uniform(0.92, 1.05)),
        subcutaneous_fat=float(rng.uniform(0.06, 0.13)),
        condyle_scale=float(rng.uniform(0.95, 1.05)),
        notch_half_width=float(rng.uniform(0.085, 0.11)),
        patella_z=float(rng.uniform(0.26, 0.36)),
        cartilage=float(rng.uniform(0.03, 0.042)),
        physiologic_fluid=float(rng.uniform(0.006, 0.022)),
        meniscus_scale=float(rng.uniform(0.94, 1.06)),
        acl_tilt=float(rng.uniform(-0.03, 0.03)),
    )


CORTEX_THICKNESS = 0.02
TIBIA_TOP = -0.06  # z of the tibial plateau bone surface
MENISCUS_HEIGHT = 0.14


def femoral_condyles(an: Anatomy) -> list[Ellipsoid]:
    """Medial and lateral condyles, lowest point just above the tibial cartilage, curving up
    over the menisci at the periphery of each compartment."""
    r = (0.19 * an.condyle_scale, 0.36 * an.condyle_scale, 0.19 * an.condyle_scale)
    return [Ellipsoid((side * 0.24, -0.06, r[2] + 0.01), r) for side in (-1.0, 1.0)]


def condyle_articular_region() -> tuple[Shape, Shape]:
    """Where condyles carry cartilage (and a fluid film): the distal and posterior surfaces."""
    return Union((Slab(2, -1.0, 0.16), Slab(1, -1.0, -0.14))), Slab(2, -1.0, 0.28)


def femoral_shaft() -> Column:
    return Column((0.0, -0.02), (0.16, 0.3, 0.5, 1.6), (0.42, 0.4, 0.27, 0.25), (0.3, 0.28, 0.22, 0.21))


def tibia_column() -> Column:
    return Column((0.0, -0.05), (-1.6, -0.5, -0.28, -0.12, TIBIA_TOP - 0.02, TIBIA_TOP),
                  (0.26, 0.27, 0.42, 0.54, 0.54, 0.5), (0.23, 0.24, 0.33, 0.38, 0.38, 0.34))


def menisci(an: Anatomy) -> dict[str, Meniscus]:
    """Medial (-x, C-shaped, wide opening) and lateral (+x, nearly O-shaped) menisci."""
    s = an.meniscus_scale
    base = TIBIA_TOP + an.cartilage * 0.9
    return {
        "medial": Meniscus(MeniscusFrame((-0.28, -0.05), 0.27 * s, 0.32 * s), 0.4, base,
                           MENISCUS_HEIGHT * s, 0.0, math.radians(48)),
        "lateral": Meniscus(MeniscusFrame((0.28, -0.05), 0.26 * s, 0.3 * s), 0.4, base,
                            MENISCUS_HEIGHT * s, math.pi, math.radians(32)),
    }


def acl_band(an: Anatomy) -> Band:
    """From the medial wall of the lateral condyle (posterior, high) to the anterior tibial spine."""
    nw = an.notch_half_width
    return Band((0.75 * nw, -0.21, 0.17 + an.acl_tilt), (-0.02, 0.10, TIBIA_TOP - 0.005), 0.052,
                scale=(1.1, 1.0, 1.0))


def pcl_bands(an: Anatomy) -> list[Band]:
    """Two segments, so the PCL arches posteriorly as it does in a sagittal image."""
    nw = an.notch_half_width
    top, bend, bottom = (-0.6 * nw, 0.03, 0.15), (-0.02, -0.19, 0.13), (0.0, -0.34, -0.13)
    return [Band(top, bend, 0.056), Band(bend, bottom, 0.056)]


def bone_layers(outer: Sequence[Shape], inner: Sequence[Shape]) -> list[Layer]:
    """Cortex everywhere in the bone, then marrow inside: all cortices first so unions have no seams."""
    return [Layer(Tissue.CORTEX, s) for s in outer] + [Layer(Tissue.MARROW, s) for s in inner]


def soft_tissue_layers(an: Anatomy) -> list[Layer]:
    """Skin-to-bone soft tissue: fat everywhere inside the body, muscle bellies above, below and
    behind the joint (at the joint line itself there is mostly fat, tendon and ligament)."""
    b = an.body_scale
    body = Column((0.0, -0.02), (-5.0, 5.0), (0.72 * b, 0.72 * b), (0.7 * b, 0.7 * b))
    fat = an.subcutaneous_fat
    return [
        Layer(Tissue.FAT, body),
        Layer(Tissue.MUSCLE, Ellipsoid((0.0, -0.04, 1.15), (0.72 * b - fat, 0.7 * b - fat, 0.88))),  # thigh
        Layer(Tissue.MUSCLE, Ellipsoid((0.0, -0.1, -1.2), (0.72 * b - fat, 0.62 * b - fat, 0.88))),  # leg
        *[Layer(Tissue.MUSCLE, Ellipsoid((side * 0.22, -0.46, -0.32), (0.2, 0.17, 0.58)), over=(Tissue.FAT,))
          for side in (-1.0, 1.0)],  # gastrocnemius heads
        Layer(Tissue.FAT, Ellipsoid((0.0, -0.45, 0.1), (0.2, 0.16, 0.42)), over=SOFT),  # popliteal fossa
        Layer(Tissue.FAT, Ellipsoid((0.0, 0.34, 0.5), (0.32, 0.14, 0.3)), over=SOFT),  # prefemoral fat pad
        Layer(Tissue.VESSEL, Column((0.03, -0.5), (-5.0, 5.0), (0.04, 0.04), (0.045, 0.045))),  # popliteal vessels
    ]


def joint_fluid_layers(an: Anatomy, effusion: "Effusion | None") -> list[Layer]:
    """Physiologic fluid film, or an effusion that distends the pouch and recesses."""
    tissue = Tissue.FLUID if effusion is None else Tissue.EFFUSION
    pouch = an.physiologic_fluid if effusion is None else effusion.pouch_thickness
    film = an.physiologic_fluid if effusion is None else effusion.film_thickness
    pouch_height = 0.18 if effusion is None else effusion.pouch_height
    suprapatellar_pouch = Ellipsoid((0.0, 0.42 - pouch / 2, 0.5), (0.3, 0.018 + pouch, pouch_height))
    shapes: list[Shape] = [suprapatellar_pouch]
    shapes += [Intersection((c.grown(an.cartilage + film), *condyle_articular_region())) for c in femoral_condyles(an)]
    if effusion is not None and effusion.posterior_recess:
        shapes += [Ellipsoid((side * 0.25, -0.44, 0.14), (0.15, 0.035 + pouch / 2, 0.16)) for side in (-1.0, 1.0)]
    return [Layer(tissue, s, over=SOFT) for s in shapes]


def tibia_layers(an: Anatomy) -> list[Layer]:
    col = tibia_column()
    spines = [Ellipsoid((side * 0.045, -0.02, TIBIA_TOP), (0.04, 0.07, 0.045)) for side in (-1.0, 1.0)]
    plateau_cartilage = Difference(
        Column((0.0, -0.05), (TIBIA_TOP, TIBIA_TOP + an.cartilage), (0.5, 0.5), (0.35, 0.35)),
        Slab(0, -0.09, 0.09),
    )
    fibula = Ellipsoid((0.44, -0.3, -0.34), (0.1, 0.1, 0.16))
    layers = [Layer(Tissue.CARTILAGE, plateau_cartilage)]
    layers += bone_layers([col, *spines, fibula],
                          [col.shrunk(CORTEX_THICKNESS), *(s.grown(-CORTEX_THICKNESS) for s in spines),
                           fibula.grown(-CORTEX_THICKNESS)])
    layers.append(Layer(Tissue.CORTEX, Slab(2, -0.235, -0.222), over=(Tissue.MARROW,)))  # physeal scar
    return layers


def femur_layers(an: Anatomy) -> list[Layer]:
    condyles = femoral_condyles(an)
    shaft = femoral_shaft()
    notch = Notch(an.notch_half_width, 0.14, 0.3, 0.12, -0.6, -0.05)
    cartilage = [Intersection((c.grown(an.cartilage), *condyle_articular_region())) for c in condyles]
    cartilage.append(Intersection((shaft.grown(an.cartilage), Slab(1, 0.12, 1.0), Slab(2, 0.0, 0.4))))  # trochlea
    layers = [Layer(Tissue.CARTILAGE, c, over=SOFT + (Tissue.MENISCUS, Tissue.MENISCAL_TEAR, Tissue.MENISCAL_SIGNAL)) for c in cartilage]
    layers += bone_layers([shaft, *condyles], [shaft.shrunk(CORTEX_THICKNESS),
                                               *(c.grown(-CORTEX_THICKNESS) for c in condyles)])
    layers.append(Layer(Tissue.CORTEX, Slab(2, 0.33, 0.343), over=(Tissue.MARROW,)))  # physeal scar
    layers.append(Layer(Tissue.CORTEX, notch.grown(CORTEX_THICKNESS), over=(Tissue.MARROW,)))
    layers.append(Layer(Tissue.FAT, notch, over=(Tissue.CORTEX, Tissue.MARROW, Tissue.CARTILAGE)))
    return layers


def patella_layers(an: Anatomy) -> list[Layer]:
    patella = Ellipsoid((0.0, 0.5, an.patella_z), (0.24, 0.085, 0.165))
    cartilage = Intersection((patella.grown(an.cartilage), Slab(1, -1.0, 0.5)))
    return [Layer(Tissue.CARTILAGE, cartilage, over=SOFT)] + bone_layers([patella], [patella.grown(-CORTEX_THICKNESS)])


def tendon_and_ligament_layers(an: Anatomy) -> list[Layer]:
    pz = an.patella_z
    over = SOFT
    return [
        Layer(Tissue.LIGAMENT, Band((0.0, 0.53, pz + 0.15), (0.0, 0.47, 1.6), 0.035, scale=(0.17, 1.0, 1.0)), over),
        Layer(Tissue.LIGAMENT, Band((0.0, 0.54, pz - 0.15), (0.0, 0.26, -0.4), 0.035, scale=(0.25, 1.0, 1.0)), over),
        Layer(Tissue.LIGAMENT, Band((-0.46, -0.04, 0.3), (-0.56, -0.03, 0.0), 0.026, scale=(1.0, 0.3, 1.0)), over),
        Layer(Tissue.LIGAMENT, Band((-0.56, -0.03, 0.0), (-0.43, -0.0, -0.4), 0.026, scale=(1.0, 0.3, 1.0)), over),
        Layer(Tissue.LIGAMENT, Band((0.5, -0.12, 0.24), (0.5, -0.27, -0.24), 0.026), over),
    ]


# ----------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Effusion:
    pouch_thickness: float
    pouch_height: float
    film_thickness: float
    posterior_recess: bool


@dataclass(frozen=True)
class AclTear:
    center_t: float  # where along the band the gap is (0 femoral end, 1 tibial end)
    gap_half: float  # in band-parameter units
    edema_radii: tuple[float, float, float]  # along the band, across it in the y-z plane, along x
    wave_amp: float
    wave_cycles: float
    wave_phase: float


@dataclass(frozen=True)
class MeniscalTear:
    side: str  # "medial" | "lateral"
    kind: str  # "vertical" | "horizontal"
    arc_offset: float  # from the outward (body) direction of the compartment, radians
    arc_half_angle: float
    position: float
    thickness: float
    rho_end: float
    fragment: bool
    fragment_y: float


@dataclass(frozen=True)
class Findings:
    acl_tear: AclTear | None = None
    meniscal_tear: MeniscalTear | None = None
    effusion: Effusion | None = None
    bone_bruises: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = ()
    cartilage_defect: tuple[tuple[float, float, float], float] | None = None


def draw_acl_tear(rng: np.random.Generator) -> AclTear:
    proximal = rng.random() < 0.25  # femoral-side tears leave a short or absent proximal stump
    return AclTear(
        center_t=float(rng.uniform(0.15, 0.3) if proximal else rng.uniform(0.38, 0.64)),
        gap_half=float(rng.uniform(0.14, 0.22)),
        edema_radii=(float(rng.uniform(0.12, 0.17)), float(rng.uniform(0.09, 0.12)), float(rng.uniform(0.075, 0.1))),
        wave_amp=float(rng.uniform(0.012, 0.03)),
        wave_cycles=float(rng.uniform(1.5, 3.0)),
        wave_phase=float(rng.uniform(0.0, 2 * math.pi)),
    )


def draw_meniscal_tear(rng: np.random.Generator) -> MeniscalTear:
    kind = "vertical" if rng.random() < 0.55 else "horizontal"
    posterior_horn = rng.random() < 0.15
    return MeniscalTear(
        side="medial" if rng.random() < 0.6 else "lateral",
        kind=kind,
        arc_offset=float(rng.uniform(1.1, 1.5) if posterior_horn else rng.uniform(-0.6, 0.6)),
        arc_half_angle=float(rng.uniform(math.radians(50), math.radians(80))),
        position=float(rng.uniform(0.66, 0.84) if kind == "vertical" else rng.uniform(0.4, 0.6)),
        thickness=float(rng.uniform(0.055, 0.075) if kind == "vertical" else rng.uniform(0.05, 0.065)),
        rho_end=float(rng.uniform(0.8, 0.95)),
        fragment=bool(rng.random() < 0.35),
        fragment_y=float(rng.uniform(-0.16, 0.0)),
    )


def draw_effusion(rng: np.random.Generator) -> Effusion:
    return Effusion(
        pouch_thickness=float(rng.uniform(0.055, 0.1)),
        pouch_height=float(rng.uniform(0.22, 0.3)),
        film_thickness=float(rng.uniform(0.025, 0.045)),
        posterior_recess=bool(rng.random() < 0.5),
    )


def draw_bone_bruises(rng: np.random.Generator) -> tuple:
    """One or two marrow-edema blobs near the joint surfaces, where contusions occur."""
    sites = [(0.25, 0.05, 0.08), (0.3, -0.22, -0.13), (-0.25, 0.0, 0.08), (-0.3, -0.15, -0.13)]
    count = 1 if rng.random() < 0.7 else 2
    picks = rng.choice(len(sites), size=count, replace=False)
    bruises = []
    for i in sorted(int(p) for p in picks):
        center = tuple(float(c + rng.uniform(-0.04, 0.04)) for c in sites[i])
        radii = tuple(float(r) for r in rng.uniform(0.075, 0.13, size=3))
        bruises.append((center, radii))
    return tuple(bruises)


def draw_cartilage_defect(rng: np.random.Generator) -> tuple[tuple[float, float, float], float]:
    if rng.random() < 0.3:  # patellar facet
        center = (float(rng.uniform(-0.12, 0.12)), 0.41, 0.0)  # z filled in from the patella height
    else:  # weight-bearing femoral condyle
        center = (float(rng.choice([-0.25, 0.25]) + rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.15, 0.1)), -0.015)
    return center, float(rng.uniform(0.06, 0.1))


def draw_findings(rng: np.random.Generator, labels: Labels) -> Findings:
    """Draw every finding's parameters in a fixed order, then keep those the labels call for.

    Drawing all of them regardless of the labels keeps the stream aligned, so an exam with
    and without a given finding differs by that finding only.
    """
    abnormal, acl, meniscus = labels
    acl_tear = draw_acl_tear(rng)
    meniscal_tear = draw_meniscal_tear(rng)
    effusion = draw_effusion(rng)
    bruises = draw_bone_bruises(rng)
    defect = draw_cartilage_defect(rng)
    has_effusion, has_bruise, has_defect = (rng.random(3) < (0.65, 0.5, 0.35)).tolist()
    if not (has_effusion or has_bruise):  # a cartilage defect alone is too small to carry `abnormal`
        if rng.random() < 0.5:
            has_effusion = True
        else:
            has_bruise = True
    if not abnormal:
        return Findings()
    return Findings(
        acl_tear=acl_tear if acl else None,
        meniscal_tear=meniscal_tear if meniscus else None,
        effusion=effusion if has_effusion else None,
        bone_bruises=bruises if has_bruise else (),
        cartilage_defect=defect if has_defect else None,
    )


def acl_layers(an: Anatomy, tear: AclTear | None) -> list[Layer]:
    band = acl_band(an)
    if tear is None:
        return [Layer(Tissue.LIGAMENT, band, over=SOFT)]
    d = np.asarray(band.b) - np.asarray(band.a)
    along = d / np.linalg.norm(d)
    across = np.cross(along, (1.0, 0.0, 0.0))  # in the y-z plane, perpendicular to the band
    across /= np.linalg.norm(across)
    lax = Band(band.a, band.b, band.radius, band.scale, tear.wave_amp, tear.wave_cycles, tear.wave_phase,
               tuple(across), gap=(tear.center_t - tear.gap_half, tear.center_t + tear.gap_half))
    along_radius = max(tear.edema_radii[0], tear.gap_half * band.length() + 0.03)
    edema = OrientedEllipsoid(tuple(band.point(tear.center_t)), (tuple(along), tuple(across), (1.0, 0.0, 0.0)),
                              (along_radius, tear.edema_radii[1], tear.edema_radii[2]))
    return [
        Layer(Tissue.ACL_TEAR, edema, over=SOFT),  # around the gap, sparing the PCL and the bones
        Layer(Tissue.LIGAMENT, lax, over=SOFT + (Tissue.ACL_TEAR,)),
    ]


def meniscus_layers(an: Anatomy, tear: MeniscalTear | None) -> list[Layer]:
    shapes = menisci(an)
    layers = [Layer(Tissue.MENISCUS, m, over=SOFT) for m in shapes.values()]
    if tear is None:
        return layers
    m = shapes[tear.side]
    outward = math.pi if tear.side == "medial" else 0.0
    sign = 1.0 if tear.side == "medial" else -1.0  # posterior horn offsets turn towards -y on both sides
    arc_angle = outward + sign * tear.arc_offset
    cleft = MeniscalCleft(m, tear.kind, arc_angle, tear.arc_half_angle, tear.position, tear.thickness, tear.rho_end)
    # Torn fibrocartilage around the cleft imbibes fluid: intermediate signal on short-TE
    # (coronal T1) images, hardly any on long-TE fat-saturated ones (sagittal T2, axial PD).
    segment = MeniscalSegment(m, arc_angle, tear.arc_half_angle)
    layers.append(Layer(Tissue.MENISCAL_SIGNAL, segment, over=(Tissue.MENISCUS,)))
    layers.append(Layer(Tissue.MENISCAL_TEAR, cleft, over=(Tissue.MENISCUS, Tissue.MENISCAL_SIGNAL)))
    if tear.fragment:  # a bucket-handle fragment flipped into the notch
        side = -1.0 if tear.side == "medial" else 1.0
        fragment = Ellipsoid((side * 0.035, tear.fragment_y, 0.035), (0.04, 0.12, 0.04))
        layers.append(Layer(Tissue.MENISCAL_FRAGMENT, fragment, over=SOFT))
    return layers


def other_finding_layers(an: Anatomy, findings: Findings) -> list[Layer]:
    layers = [Layer(Tissue.BONE_BRUISE, Ellipsoid(c, r), over=(Tissue.MARROW,)) for c, r in findings.bone_bruises]
    if findings.cartilage_defect is not None:
        (cx, cy, cz), radius = findings.cartilage_defect
        if cy > 0.3:  # patellar facet: follow the patella's height
            cz = an.patella_z
        layers.append(Layer(Tissue.CARTILAGE_DEFECT, Ellipsoid((cx, cy, cz), (radius, radius, radius)),
                            over=(Tissue.CARTILAGE,)))
    return layers


def knee_layers(an: Anatomy, findings: Findings) -> list[Layer]:
    """The whole phantom as an ordered paint list (later layers win)."""
    return (
        soft_tissue_layers(an)
        + joint_fluid_layers(an, findings.effusion)
        + meniscus_layers(an, findings.meniscal_tear)
        + tibia_layers(an)
        + femur_layers(an)
        + patella_layers(an)
        + tendon_and_ligament_layers(an)
        + [Layer(Tissue.LIGAMENT, b, over=SOFT) for b in pcl_bands(an)]
        + acl_layers(an, findings.acl_tear)
        + other_finding_layers(an, findings)
    )


# ----------------------------------------------------------------------------- pose and grids


@dataclass(frozen=True)
class Pose:
    """Knee frame -> scanner frame: p = forward @ q + shift, with
    forward = scale * R @ diag(mirror, 1, 1) (mirror = -1 for the other knee side)."""

    forward: np.ndarray  # (3, 3)
    shift: np.ndarray  # (3,)

    @staticmethod
    def of(rotation: np.ndarray, scale: float, shift: np.ndarray, mirror: float) -> "Pose":
        return Pose(scale * rotation @ np.diag([mirror, 1.0, 1.0]), np.asarray(shift, dtype=np.float64))

    def inverse(self) -> tuple[np.ndarray, np.ndarray]:
        """(M, c) with q = M @ p + c."""
        m = np.linalg.inv(self.forward)
        return m, -m @ self.shift


def rotation_matrix(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
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
    for axis, sampling in ((geo.slice_axis, grid.slices), (geo.row_axis, grid.rows), (geo.col_axis, grid.cols)):
        span = sampling.index_range(center[axis] - half[axis], center[axis] + half[axis])
        if span is None:
            return None
        block.append(span)
    return tuple(block)


def knee_coordinates(pose: Pose, grid: SamplingGrid) -> list[np.ndarray]:
    """Knee-frame x, y, z of every sample point, each (s * n_sub, size*ss, size*ss) float32.

    Computed once per series; each shape then reads a view of its block, which is much
    cheaper than recomputing coordinates per shape.
    """
    m, c = pose.inverse()
    geo = grid.geometry
    coords = []
    for k in range(3):
        along_slices = (m[k, geo.slice_axis] * grid.slices.positions() + c[k]).astype(np.float32)[:, None, None]
        along_rows = (m[k, geo.row_axis] * grid.rows.positions()).astype(np.float32)[None, :, None]
        along_cols = (m[k, geo.col_axis] * grid.cols.positions()).astype(np.float32)[None, None, :]
        coords.append(along_slices + along_rows + along_cols)
    return coords


_ALLOWED_CACHE: dict[tuple[Tissue, ...], np.ndarray] = {}


def _allowed_lookup(over: tuple[Tissue, ...]) -> np.ndarray:
    if over not in _ALLOWED_CACHE:
        table = np.zeros(256, dtype=bool)
        table[list(over)] = True
        _ALLOWED_CACHE[over] = table
    return _ALLOWED_CACHE[over]


def paint_tissues(layers: Sequence[Layer], pose: Pose, grid: SamplingGrid) -> np.ndarray:
    """Tissue label of every sample point, (s * n_sub, size * ss, size * ss) uint8."""
    labels = np.zeros((grid.slices.count, grid.rows.count, grid.cols.count), dtype=np.uint8)
    coords = knee_coordinates(pose, grid)
    for layer in layers:
        block = block_for_box(layer.box, pose, grid)
        if block is None:
            continue
        hit = layer.shape.inside(*(c[block] for c in coords))
        view = labels[block]
        if layer.over is not None:
            hit &= _allowed_lookup(layer.over)[view]
        view[hit] = layer.tissue
    return labels


# ----------------------------------------------------------------------------- image formation


def draw_contrast(rng: np.random.Generator, plane: str) -> np.ndarray:
    """Per-exam tissue signals: the plane's table with +-10 % jitter (lesions +-15 %), indexed by tissue id."""
    table = np.zeros(len(Tissue), dtype=np.float32)
    for tissue, value in BASE_CONTRAST[plane].items():
        spread = 0.15 if tissue >= Tissue.EFFUSION else 0.1
        table[tissue] = value * rng.uniform(1.0 - spread, 1.0 + spread)
    return table


def pool_samples(values: np.ndarray, grid: SamplingGrid) -> np.ndarray:
    """(s * n_sub, n, n) -> (s, size, size): mean over each slab's sub-samples (partial volume)
    and over each pixel's ss x ss in-plane samples (box filter); slicing sums beat a 6-D mean."""
    n = values.shape[-1]
    slabs = values.reshape(grid.n_slices, grid.n_sub, n, n).sum(axis=1, dtype=np.float32)  # (s, n, n)
    ss = grid.supersample
    pooled = np.zeros((grid.n_slices, n // ss, n // ss), dtype=np.float32)
    for dr in range(ss):
        for dc in range(ss):
            pooled += slabs[:, dr::ss, dc::ss]
    return pooled / float(grid.n_sub * ss * ss)


def smooth_inplane(image: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 blur along rows and columns: a point-spread function for point-sampled images."""
    out = image * 0.5
    out[:, 1:] += 0.25 * image[:, :-1]
    out[:, :-1] += 0.25 * image[:, 1:]
    out[:, 0] += 0.25 * image[:, 0]
    out[:, -1] += 0.25 * image[:, -1]
    image, out = out, out * 0.5
    out[:, :, 1:] += 0.25 * image[:, :, :-1]
    out[:, :, :-1] += 0.25 * image[:, :, 1:]
    out[:, :, 0] += 0.25 * image[:, :, 0]
    out[:, :, -1] += 0.25 * image[:, :, -1]
    return out


def coil_shading(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth multiplicative bias field (size, size): receive coils see tissue near the skin
    brighter than the centre, plus a gentle tilt.

    The bright rim also matters for windowing: on T1 the brightest voxels are then a band of
    subcutaneous fat rather than isolated noise pixels, so stretching them to 255 leaves no
    salt-and-pepper specks.
    """
    v = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    tilt_rows, tilt_cols, rim = rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), rng.uniform(0.25, 0.5)
    radius2 = v[:, None] ** 2 + v[None, :] ** 2
    return (1.0 + tilt_rows * v[:, None] + tilt_cols * v[None, :] + rim * radius2).astype(np.float32)


def add_rician_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of signal plus complex Gaussian noise: a noise floor in air, unbiased in tissue."""
    real = image + rng.standard_normal(image.shape, dtype=np.float32) * sigma
    imag = rng.standard_normal(image.shape, dtype=np.float32) * sigma
    return np.sqrt(real * real + imag * imag)


MAX_SATURATED = 0.01  # fraction of voxels allowed to clip at 255 when a dark series is brightened
TOP_TAIL = 99.0  # percentile above which the brightest voxels are bent up to reach 255
TAIL_POWER = 3.0  # convex bend: most of the tail stays near the knee, only the very top reaches 255


def to_uint8(image: np.ndarray, target_mean: float) -> np.ndarray:
    """Full 0-255 range with the mean near target_mean, like MRNet's per-series windowing.

    A linear window sets the mean (real series average 40-70 even when, as on T1, fat fills
    much of the image: their maxima are rare bright outliers). At most MAX_SATURATED of the
    voxels may clip; if nothing reaches 255, the brightest 1 % are bent up along a convex
    curve so that the maximum lands on 255 while tissue contrast stays linear below them.
    """
    unit = image - image.min()  # (s, H, W), min -> 0
    sample = unit[:, ::3, ::3]
    scale = target_mean / max(float(sample.mean()), 1e-6)
    scale = min(scale, 255.0 / max(float(np.percentile(sample, 100 * (1 - MAX_SATURATED))), 1e-6))
    out = unit * scale
    peak = float(out.max())
    if peak < 255.0:
        knee = min(float(np.percentile(sample, TOP_TAIL)) * scale, peak * 0.999)
        tail = out > knee
        bend = ((out[tail] - knee) / (peak - knee)) ** TAIL_POWER  # 0..1
        out[tail] = out[tail] + bend * (255.0 - peak)
    return np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def render_series(
    layers: Sequence[Layer],
    pose: Pose,
    plane: str,
    size: int,
    n_slices: int,
    coverage_scale: float,
    rng: np.random.Generator,
    want_masks: bool,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One series: (s, size, size) uint8, and per-finding (s, size, size) bool masks if asked."""
    grid = sampling_grid(plane, size, n_slices, coverage_scale)
    labels = paint_tissues(layers, pose, grid)  # (s * n_sub, size*ss, size*ss)
    contrast = draw_contrast(rng, plane)
    image = pool_samples(contrast[labels], grid)  # (s, size, size)
    if grid.supersample == 1:
        image = smooth_inplane(image)
    image *= coil_shading(rng, size)[None]
    image = add_rician_noise(image, float(rng.uniform(0.02, 0.045)), rng)
    series = to_uint8(image, float(rng.uniform(44.0, 60.0)))
    masks: dict[str, np.ndarray] = {}
    if want_masks:
        for finding, tissues in FINDING_TISSUES.items():
            masks[finding] = pool_samples(np.isin(labels, tissues), grid) > 0  # any sub-sample planted
    return series, masks


# ----------------------------------------------------------------------------- exams


def validate_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise ValueError(f"size must be an integer number of pixels, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")


def validate_slices(slices: tuple[int, int] | None) -> None:
    if slices is None:
        return
    try:
        lo, hi = slices
    except (TypeError, ValueError):
        raise ValueError(f"slices must be a (lo, hi) pair or None, got {slices!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (lo, hi)):
        raise ValueError(f"slices must be two integers, got {slices!r}")
    if lo < 1:
        raise ValueError(f"slices: the lower bound must be at least 1, got {lo}")
    if lo > hi:
        raise ValueError(f"slices: the lower bound {lo} is above the upper bound {hi}")
    if hi > MAX_SLICES:
        raise ValueError(f"slices: the upper bound must be at most {MAX_SLICES}, got {hi}")


def validate_labels(labels: Labels | Mapping[str, int]) -> Labels:
    if isinstance(labels, Mapping):
        labels = tuple(labels[t] for t in TASKS)
    values = tuple(int(v) for v in labels)
    if len(values) != 3 or any(v not in (0, 1) for v in values):
        raise ValueError(f"labels must be three 0/1 values (abnormal, acl, meniscus), got {labels!r}")
    if values[0] == 0 and (values[1] or values[2]):
        raise ValueError(f"labels {values}: a tear is always abnormal (abnormal must be 1)")
    return values


def draw_slice_counts(rng: np.random.Generator, slices: tuple[int, int] | None) -> dict[str, int]:
    """Slices per series; the planes of one exam get different counts whenever the range allows."""
    counts: dict[str, int] = {}
    for plane in PLANES:
        lo, hi = REAL_SLICE_RANGES[plane] if slices is None else slices
        distinct_possible = hi - lo + 1 > len(counts)
        for _ in range(50):
            if slices is None:
                n = int(np.clip(round(rng.normal(REAL_SLICE_MEAN, REAL_SLICE_SD)), lo, hi))
            else:
                n = int(rng.integers(lo, hi + 1))
            if not distinct_possible or n not in counts.values():
                break
        counts[plane] = n
    return counts


def exam_rng(seed: int, case_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, case_index])


def make_exam(
    rng_or_seed: np.random.Generator | int | Sequence[int],
    labels: Labels | Mapping[str, int],
    size: int = 256,
    slices: tuple[int, int] | None = None,
    return_masks: bool = False,
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """One exam: {plane: (s, size, size) uint8}; with return_masks also {plane: {name: (s, size, size) bool}}.

    Mask names are the findings (acl_tear, meniscal_tear, effusion, bone_bruise,
    cartilage_defect) and the tasks (abnormal, acl, meniscus); a voxel is set where any of its
    sub-samples holds planted lesion tissue, so masks say where a model should look.
    """
    labels = validate_labels(labels)
    validate_size(size)
    validate_slices(slices)
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    anatomy_rng, finding_rng, imaging_rng = rng.spawn(3)  # independent streams: see module docstring

    counts = draw_slice_counts(anatomy_rng, slices)
    pose = draw_pose(anatomy_rng)
    anatomy = draw_anatomy(anatomy_rng)
    coverage = {plane: float(anatomy_rng.uniform(0.95, 1.05)) for plane in PLANES}
    layers = knee_layers(anatomy, draw_findings(finding_rng, labels))

    series: dict[str, np.ndarray] = {}
    masks: dict[str, dict[str, np.ndarray]] = {}
    for plane, plane_rng in zip(PLANES, imaging_rng.spawn(len(PLANES))):
        series[plane], masks[plane] = render_series(layers, pose, plane, size, counts[plane], coverage[plane],
                                                    plane_rng, return_masks)
        if return_masks:
            for task, findings in TASK_FINDINGS.items():
                masks[plane][task] = np.logical_or.reduce([masks[plane][f] for f in findings])
    return (series, masks) if return_masks else series


# ----------------------------------------------------------------------------- datasets


def case_id(index: int) -> str:
    return f"{index:04d}"


def draw_case_labels(seed: int, case_index: int) -> Labels:
    """One label combination at MRNet's train frequencies, from the case's own stream."""
    rng = np.random.default_rng([seed, case_index, LABEL_STREAM])
    weights = np.array(list(COMBINATION_COUNTS.values()), dtype=np.float64)
    return COMBINATIONS[int(rng.choice(len(COMBINATIONS), p=weights / weights.sum()))]


def class_deficits(combos: Sequence[Labels]) -> list[tuple[int, int]]:
    """(task index, class) pairs that have fewer than MIN_CLASS_COUNT exams."""
    counts = np.array(combos, dtype=int).reshape(-1, 3)
    missing = []
    for task in range(3):
        positives = int(counts[:, task].sum())
        for cls, n in ((1, positives), (0, len(counts) - positives)):
            if n < MIN_CLASS_COUNT:
                missing.append((task, cls))
    return missing


def _combination_fixing(deficit: tuple[int, int], missing: list[tuple[int, int]]) -> Labels:
    task, cls = deficit
    if cls == 0:
        return (0, 0, 0) if task == 0 else (1, 0, 0)
    if task == 1:
        return (1, 1, 1) if (2, 1) in missing else (1, 1, 0)
    if task == 2:
        return (1, 0, 1)
    return (1, 0, 0)


def class_shortfall(combos: Sequence[Labels]) -> int:
    """How many exams are missing, summed over tasks and classes, for MIN_CLASS_COUNT of each."""
    counts = np.array(combos, dtype=int).reshape(-1, 3)
    positives = counts.sum(axis=0)
    negatives = len(counts) - positives
    return int(np.maximum(MIN_CLASS_COUNT - positives, 0).sum() + np.maximum(MIN_CLASS_COUNT - negatives, 0).sum())


def balance_split(combos: list[Labels]) -> list[Labels]:
    """Make sure each task has both classes (>= MIN_CLASS_COUNT each) in a split of >= BALANCE_FROM_N.

    Small random splits often miss a class, and AUC is undefined then. Only the last possible
    exam is replaced each time, so the first ones keep their own draws however long the split
    is, and a replacement is taken only if it lowers the total shortfall.
    """
    combos = list(combos)
    if len(combos) < BALANCE_FROM_N:
        return combos
    while (shortfall := class_shortfall(combos)) > 0:
        missing = class_deficits(combos)
        wanted = _combination_fixing(missing[0], missing)
        for slot in range(len(combos) - 1, -1, -1):
            trial = combos[:slot] + [wanted] + combos[slot + 1:]
            if class_shortfall(trial) < shortfall:
                combos = trial
                break
        else:  # cannot happen for >= 10 exams (4 suffice); stop rather than loop
            break
    return combos


def draw_split_labels(seed: int, first_index: int, n: int, ordered: bool) -> list[Labels]:
    """Labels of one split's cases; `ordered` sorts them by combination as MRNet's valid split is."""
    combos = balance_split([draw_case_labels(seed, first_index + i) for i in range(n)])
    if ordered:
        combos.sort(key=COMBINATIONS.index)
    return combos


def mrnet_layout_paths(out_dir: Path) -> list[Path]:
    """Existing paths that belong to an MRNet layout in out_dir."""
    candidates = [out_dir / split for split in SPLITS]
    candidates += [out_dir / f"{split}-{task}.csv" for split in SPLITS for task in TASKS]
    return [p for p in candidates if p.exists()]


def clear_mrnet_layout(out_dir: Path) -> None:
    """Remove a previous dataset's series and label files (only those), so no stale exams remain."""
    for split in SPLITS:
        for plane in PLANES:
            shutil.rmtree(out_dir / split / plane, ignore_errors=True)
        split_dir = out_dir / split
        if split_dir.is_dir() and not any(split_dir.iterdir()):
            split_dir.rmdir()
    for split in SPLITS:
        for task in TASKS:
            (out_dir / f"{split}-{task}.csv").unlink(missing_ok=True)


def validate_counts(n_train: int, n_valid: int, seed: int) -> None:
    for name, value in (("n_train", n_train), ("n_valid", n_valid), ("seed", seed)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if n_train < 1 or n_valid < 1:
        raise ValueError(f"each split needs at least one exam, got n_train={n_train}, n_valid={n_valid}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")


def make_dataset(
    out_dir: str | Path,
    n_train: int = 120,
    n_valid: int = 60,
    size: int = 256,
    seed: int = 0,
    slices: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: Callable[[str, str], None] | None = None,
) -> dict:
    """Write a synthetic MRNet-v1.0 dataset; return {split: {n, first_id, last_id, abnormal, acl, meniscus}}.

    Train ids start at 0000 and valid ids continue after them; the valid split is ordered by
    label combination like the real one. `progress(split, case_id)` is called after each exam.
    """
    validate_counts(n_train, n_valid, seed)
    validate_size(size)
    validate_slices(slices)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    existing = mrnet_layout_paths(out)
    if existing and not overwrite:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in existing)
        raise FileExistsError(
            f"{out} already holds an MRNet-style dataset ({names}); refusing to overwrite it. "
            "Choose another folder or pass overwrite=True (--overwrite) to replace it."
        )
    if existing:
        clear_mrnet_layout(out)

    split_cases = {
        "train": (0, draw_split_labels(seed, 0, n_train, ordered=False)),
        "valid": (n_train, draw_split_labels(seed, n_train, n_valid, ordered=True)),
    }
    summary: dict = {}
    for split, (first, combos) in split_cases.items():
        for plane in PLANES:
            (out / split / plane).mkdir(parents=True, exist_ok=True)
        for offset, labels in enumerate(combos):
            index = first + offset
            exam = make_exam(exam_rng(seed, index), labels, size=size, slices=slices)
            for plane in PLANES:
                np.save(out / split / plane / f"{case_id(index)}.npy", exam[plane])
            if progress is not None:
                progress(split, case_id(index))
        for t, task in enumerate(TASKS):
            rows = "".join(f"{case_id(first + i)},{labels[t]}\n" for i, labels in enumerate(combos))
            (out / f"{split}-{task}.csv").write_text(rows)
        summary[split] = {
            "n": len(combos),
            "first_id": case_id(first),
            "last_id": case_id(first + len(combos) - 1),
            **{task: int(sum(labels[t] for labels in combos)) for t, task in enumerate(TASKS)},
        }
    return summary
