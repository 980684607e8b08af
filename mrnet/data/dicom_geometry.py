"""Where a DICOM series lies in the patient: its plane, the order of its slices, gaps, pixel spacing.

Everything here reads header attributes only (ImageOrientationPatient, ImagePositionPatient,
PixelSpacing, InstanceNumber), by pydicom's names, so the rules can be checked on any object
that carries them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# The patient axes of DICOM's coordinate system (LPS): x right -> left, y anterior -> posterior,
# z feet -> head. A series whose slice normal runs mostly along x is sagittal, along y coronal,
# along z axial.
PLANE_OF_AXIS = ("sagittal", "coronal", "axial")
GAP_FACTOR = 1.5  # a step between positions this many times the usual one means a slice is missing
# Knee protocols use a field of view of about 120-180 mm; far outside this range the series is
# probably not a knee series, or its PixelSpacing is wrong.
KNEE_FOV_MM = (80.0, 250.0)


def orientation_of(ds: Any) -> np.ndarray | None:
    """ImageOrientationPatient (row and column direction cosines, (6,)), also from an enhanced multi-frame file."""
    value = getattr(ds, "ImageOrientationPatient", None)
    if value is None:
        try:
            value = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
        except (AttributeError, IndexError, TypeError):
            return None
    try:
        cosines = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    if cosines.shape != (6,) or not np.isfinite(cosines).all():
        return None
    return cosines if is_orthonormal(cosines) else None


def is_orthonormal(cosines: np.ndarray, tolerance: float = 0.01) -> bool:
    """Two unit, perpendicular direction cosines: anything else (all zeros, say) describes no plane at all."""
    row, column = cosines[:3], cosines[3:]
    units = abs(float(np.linalg.norm(row)) - 1.0) <= tolerance and abs(float(np.linalg.norm(column)) - 1.0) <= tolerance
    return units and abs(float(np.dot(row, column))) <= tolerance


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """The unit normal of the slice plane: row direction x column direction."""
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / max(float(np.linalg.norm(normal)), 1e-12)


@dataclass(frozen=True)
class Plane:
    """The plane a series' orientation describes, and how far its normal is tilted off that plane's axis."""

    name: str
    tilt_degrees: float

    def describe(self) -> str:
        return self.name if self.tilt_degrees < 1 else f"{self.name} (oblique, {self.tilt_degrees:.0f}°)"


def plane_of(orientation: np.ndarray) -> Plane:
    """The anatomical plane closest to the slices: the patient axis the slice normal runs along most.

    Knee series are often oblique (a sagittal series tilted along the ACL, say 15°); they
    still belong to the plane whose axis their normal is closest to.
    """
    normal = np.abs(slice_normal(orientation))
    axis = int(np.argmax(normal))
    tilt = math.degrees(math.acos(min(1.0, float(normal[axis]))))
    return Plane(PLANE_OF_AXIS[axis], tilt)


def position_along_normal(ds: Any, normal: np.ndarray) -> float | None:
    position = getattr(ds, "ImagePositionPatient", None)
    if position is None:
        return None
    try:
        point = np.asarray([float(v) for v in position], dtype=float)
    except (TypeError, ValueError):
        return None
    return float(np.dot(point, normal)) if point.shape == (3,) else None


def slice_order(datasets: Sequence[Any]) -> tuple[list[int], list[float] | None]:
    """Slice indices in geometric order, and their positions along the normal (None when unknown).

    The position projected on the slice normal is the geometric order; InstanceNumber is
    only the order the scanner wrote the files in, usually but not always the same; failing
    both, the order of the file names.
    """
    orientation = orientation_of(datasets[0]) if datasets else None
    if orientation is not None:
        normal = slice_normal(orientation)
        found = [position_along_normal(ds, normal) for ds in datasets]
        positions = [p for p in found if p is not None]
        if len(positions) == len(datasets):
            order = sorted(range(len(datasets)), key=lambda i: positions[i])
            return order, [positions[i] for i in order]
    read = [instance_number(ds) for ds in datasets]
    numbers = [n for n in read if n is not None]
    if len(numbers) == len(datasets):
        return sorted(range(len(datasets)), key=lambda i: numbers[i]), None
    return list(range(len(datasets))), None


def instance_number(ds: Any) -> int | None:
    """InstanceNumber as an integer; None where it is absent or not a number (a hand-edited 'ab')."""
    try:
        return int(str(ds.InstanceNumber).strip())
    except (AttributeError, TypeError, ValueError):
        return None


def spacing_problems(positions: Sequence[float]) -> tuple[list[str], list[str]]:
    """(problems, notes) about sorted slice positions: slices sharing a position, and gaps.

    Two slices at one position are two acquisitions mixed in one series (several echoes,
    a repeat): refused, since their order is undefined. A gap is a missing slice: noted,
    because the model still scores the slices that are there.
    """
    if len(positions) < 2:
        return [], []
    steps = np.diff(np.asarray(positions, dtype=float))
    usual = float(np.median(steps))
    shared = int(np.sum(steps < max(1e-3, 0.01 * usual)))
    if shared:
        return [
            f"{shared + 1} slices share a position along the slice normal (several acquisitions in one series?); "
            "keep one acquisition per series"
        ], []
    notes = []
    for index in np.flatnonzero(steps > GAP_FACTOR * usual):
        missing = round(float(steps[index]) / usual) - 1
        notes.append(
            f"slice positions jump by {steps[index]:.1f} mm between slices {index} and {index + 1} "
            f"(usual step {usual:.1f} mm): about {missing} slice(s) missing"
        )
    return [], notes


@dataclass(frozen=True)
class Spacing:
    """In-plane pixel size in mm (rows, columns) and the field of view it gives."""

    row_mm: float
    column_mm: float
    rows: int
    columns: int

    @property
    def field_of_view(self) -> tuple[float, float]:
        return self.rows * self.row_mm, self.columns * self.column_mm

    def describe(self) -> str:
        height, width = self.field_of_view
        return f"{self.row_mm:.2f} x {self.column_mm:.2f} mm pixels, field of view {height:.0f} x {width:.0f} mm"


def pixel_spacing(ds: Any) -> Spacing | None:
    """PixelSpacing (also from an enhanced multi-frame file's shared groups), or None when absent."""
    value = getattr(ds, "PixelSpacing", None)
    if value is None:
        try:
            value = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        except (AttributeError, IndexError, TypeError):
            return None
    try:
        row_mm, column_mm = (float(v) for v in value)
        rows, columns = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        return None
    if row_mm <= 0 or column_mm <= 0:
        return None
    return Spacing(row_mm, column_mm, rows, columns)


def spacing_notes(spacing: Spacing | None) -> list[str]:
    """Warnings about the field of view and non-square pixels (the model sees square pixels in MRNet's data)."""
    if spacing is None:
        return ["no PixelSpacing in the headers: the field of view is unknown"]
    notes = []
    low, high = KNEE_FOV_MM
    height, width = spacing.field_of_view
    if not (low <= height <= high and low <= width <= high):
        notes.append(
            f"warning: field of view {height:.0f} x {width:.0f} mm is far outside a knee protocol's "
            f"(about 120-180 mm; checked range {low:.0f}-{high:.0f} mm): is this a knee series?"
        )
    if abs(spacing.row_mm - spacing.column_mm) > 0.01 * max(spacing.row_mm, spacing.column_mm):
        notes.append(
            f"warning: pixels are not square ({spacing.row_mm:.2f} x {spacing.column_mm:.2f} mm); "
            "the image is used as stored, so anatomy looks stretched to the model"
        )
    return notes
