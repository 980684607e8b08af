"""Reading DICOM series into the uint8 (s, H, W) form the models take, with the plane checked.

pydicom is optional (the `dicom` extra) and imported only when a DICOM folder is read. A
folder may hold one series or several (a whole exam as a PACS exports it): the files are
grouped by SeriesInstanceUID, one series is chosen per plane (named by the user, else the
only one whose orientation fits), and its orientation is checked against the plane it is
used for, so a coronal series in the axial folder is refused instead of being scored by
the axial models with a confident, wrong answer.

The conversion mirrors MRNet's .npy files (one grey series, 0..255, square slices); it
cannot reproduce Stanford's own export, whose windowing is not published, so predictions
on converted series carry that extra uncertainty.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MRNetError
from .dicom_geometry import (
    Plane,
    instance_number,
    orientation_of,
    pixel_spacing,
    plane_of,
    slice_order,
    spacing_notes,
    spacing_problems,
)
from .dicom_pixels import display_uint8, inverted, modality_values, pad_to_square, pixels_of
from .series import SeriesProblem

SKIPPED_NAMES = {"DICOMDIR"}
DEFER_SIZE = "64 KB"  # pixel data stay on disk until the chosen series is converted


def import_pydicom():
    try:
        import pydicom
    except ImportError:
        raise MRNetError(
            "install pydicom to read DICOM (pip install pydicom, or pip install 'mrnet[dicom]'), or convert the "
            "series to uint8 .npy files of shape (slices, H, W)"
        ) from None
    return pydicom


@dataclass(frozen=True)
class DicomOptions:
    """The user's say over DICOM input: a series per plane, and whether a plane mismatch may pass."""

    series: Mapping[str, str] = field(default_factory=dict)  # plane -> SeriesInstanceUID or SeriesDescription
    ignore_orientation: bool = False


@dataclass
class SeriesInfo:
    """One series found in a folder: its ids, its files and the plane its orientation gives."""

    uid: str
    description: str
    number: str
    datasets: list[Any]
    plane: Plane | None  # None: no orientation in the headers
    orientations: list[str]  # the planes of its slices; more than one for a localizer

    @property
    def mixed(self) -> bool:
        return len(self.orientations) > 1

    @property
    def key(self) -> str | tuple[str, ...]:
        """What tells this series from another: its UID, else its files (a header may lack the UID)."""
        return self.uid or tuple(sorted(str(getattr(ds, "filename", id(ds))) for ds in self.datasets))

    def describe(self) -> str:
        if self.mixed:
            where = "mixed orientations " + "/".join(self.orientations)
        else:
            where = "orientation unknown" if self.plane is None else self.plane.describe()
        label = f"'{printable(self.description)}'" if self.description else "no description"
        files, number = len(self.datasets), printable(self.number) or "?"
        return f"{printable(self.uid) or 'no SeriesInstanceUID'} ({label}, series {number}, {files} files, {where})"


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Header text as it may reach a terminal: control characters (a screen clear, an escape) shown as codes."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@dataclass
class DicomSeries:
    """A converted series: uint8 (s, N, N), which series it was, and notes for the user."""

    volume: np.ndarray
    info: SeriesInfo
    notes: list[str]


def dicom_files(folder: Path) -> list[Path]:
    """Every regular file below the folder (PACS exports nest series in subfolders), DICOMDIR and hidden files aside."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name.upper() not in SKIPPED_NAMES
    )


def holds_dicom(folder: Path) -> bool:
    """Whether any file below the folder starts like a DICOM file (the 'DICM' marker after the 128-byte preamble)."""
    for path in dicom_files(folder):
        try:
            with path.open("rb") as handle:
                if handle.read(132)[128:] == b"DICM":
                    return True
        except OSError:
            continue
    return False


def catalog(folder: Path) -> list[SeriesInfo]:
    """The image series below a folder, grouped by SeriesInstanceUID; files that are not DICOM images are skipped."""
    pydicom = import_pydicom()
    groups: dict[str, list[Any]] = {}
    for path in dicom_files(folder):
        try:
            ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
        except Exception:  # pydicom raises several types for files that are not DICOM; they are not ours to read
            continue
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            continue  # reports, presentation states: no image
        groups.setdefault(str(getattr(ds, "SeriesInstanceUID", "") or ""), []).append(ds)
    return [series_info(uid, datasets) for uid, datasets in groups.items()]


def series_info(uid: str, datasets: list[Any]) -> SeriesInfo:
    first = datasets[0]
    planes = [plane_of(o) for o in (orientation_of(ds) for ds in datasets) if o is not None]
    names = [name for name, _ in Counter(p.name for p in planes).most_common()]
    plane = planes[0] if planes and len(planes) == len(datasets) and len(names) == 1 else None
    return SeriesInfo(
        uid=uid,
        description=str(getattr(first, "SeriesDescription", "") or ""),
        number=str(getattr(first, "SeriesNumber", "") or ""),
        datasets=datasets,
        plane=plane,
        orientations=names,
    )


def listing(series: Sequence[SeriesInfo]) -> str:
    return "".join(f"\n      * {s.describe()}" for s in series)


def choose_series(series: Sequence[SeriesInfo], plane: str | None, choice: str | None) -> tuple[SeriesInfo, list[str]]:
    """The series to use for a plane: the one named by the user, the only one, or the only one of that orientation."""
    if choice:
        matches = [s for s in series if s.uid == choice] or [
            s for s in series if s.description.strip().lower() == choice.strip().lower()
        ]
        if len(matches) == 1:
            return matches[0], []
        problem = "no series matches" if not matches else "several series match"
        raise SeriesProblem(
            f"{problem} --series {plane}={choice} (SeriesInstanceUID or SeriesDescription); the folder holds:"
            + listing(series)
        )
    if len(series) == 1:
        return series[0], []
    fitting = [s for s in series if not s.mixed and s.plane is not None and s.plane.name == plane]
    if plane is not None and len(fitting) == 1:
        others = [s for s in series if s is not fitting[0]]
        note = (
            f"the folder holds {len(series)} series; picked {fitting[0].describe()} by its orientation "
            f"(choose another with --series {plane}=UID); the others:" + listing(others)
        )
        return fitting[0], [note]
    raise SeriesProblem(
        f"holds {len(series)} series, {len(fitting)} of them {plane}: choose one with "
        f"--series {plane}=<SeriesInstanceUID or SeriesDescription>:" + listing(series)
    )


def check_plane(info: SeriesInfo, plane: str, options: DicomOptions) -> list[str]:
    """Refuse a series whose orientation disagrees with the plane it is given as, unless the user overrides it."""
    if info.mixed:
        raise SeriesProblem(
            f"its slices lie in several planes ({', '.join(info.orientations)}), as a localizer's do; "
            "choose an imaging series"
        )
    if info.plane is None:
        # A series of unknown plane could be scored by the wrong plane's models with a confident answer.
        if options.ignore_orientation:
            return [f"warning: no usable ImageOrientationPatient: used as {plane} because of --ignore-orientation"]
        raise SeriesProblem(
            "its headers carry no usable ImageOrientationPatient, so its plane cannot be checked; "
            f"pass --ignore-orientation to use it as {plane} anyway"
        )
    if info.plane.name == plane:
        return []
    orientation = orientation_of(info.datasets[0])
    cosines = [] if orientation is None else np.round(orientation, 3).tolist()
    found = info.plane.describe()
    if options.ignore_orientation:
        return [f"warning: the orientation is {found}, used as {plane} because of --ignore-orientation"]
    raise SeriesProblem(
        f"the series' orientation is {found} (ImageOrientationPatient {cosines}), but it is given as {plane}; "
        f"put it where the {info.plane.name} series goes, or pass --ignore-orientation to use it as {plane} anyway"
    )


def read_dicom_series(folder: str | Path, plane: str | None = None, options: DicomOptions | None = None) -> DicomSeries:
    """A folder's series for a plane -> uint8 (s, N, N); raises SeriesProblem naming what is wrong."""
    options = options or DicomOptions()
    series = catalog(Path(folder))
    if not series:
        raise SeriesProblem("holds no readable DICOM image files")
    info, notes = choose_series(series, plane, options.series.get(plane) if plane else None)
    if plane is not None:
        notes += check_plane(info, plane, options)
    volume, more = series_from_datasets(info.datasets)
    return DicomSeries(volume, info, notes + more)


def series_from_datasets(datasets: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Order, rescale, window and pad one series' datasets into uint8 (s, N, N); also notes for the user.

    Works on anything with pydicom's attribute names and a `pixel_array`, so the rules can
    be checked on stand-in objects as well as on files.
    """
    inverted(datasets[0])  # a colour series is refused before its pixels are decoded
    if len(datasets) == 1 and int(getattr(datasets[0], "NumberOfFrames", 1) or 1) > 1:
        values = modality_values(datasets[0], pixels_of(datasets[0]))
        ordered, notes = list(datasets), ["one multi-frame file: its frames are used in the order stored"]
    else:
        ordered, notes = ordered_slices(datasets)
        pixels = [pixels_of(ds) for ds in ordered]
        shapes = {p.shape for p in pixels}
        if len(shapes) != 1:
            raise SeriesProblem(f"slices have different sizes {sorted(shapes)}")
        values = np.stack([modality_values(ds, p) for ds, p in zip(ordered, pixels, strict=True)])
    if values.ndim != 3:
        raise SeriesProblem(f"pixel data of shape {values.shape}; expected grey slices (slices, rows, columns)")
    check_finite(values, ordered)
    volume, window = display_uint8(ordered, values)
    spacing = pixel_spacing(datasets[0])
    size = f"{volume.shape[0]} slices of {volume.shape[1]}x{volume.shape[2]} px"
    summary = ", ".join([size, spacing.describe() if spacing else "pixel spacing unknown", window.describe()])
    return pad_to_square(volume), [summary, *notes, *spacing_notes(spacing)]


def check_finite(values: np.ndarray, ordered: Sequence[Any]) -> None:
    """Refuse NaN or infinite modality values (a corrupt slope, float pixel data): they would become black silently."""
    bad = [index for index in range(len(values)) if not np.isfinite(values[index]).all()]
    if bad:
        first = ordered[min(bad[0], len(ordered) - 1)]
        where = getattr(first, "filename", None) or f"slice {bad[0]}"
        raise SeriesProblem(
            f"{len(bad)} slice(s) have NaN or infinite values after the rescale (first: {where}); "
            "check RescaleSlope/RescaleIntercept or the pixel data"
        )


def ordered_slices(datasets: Sequence[Any]) -> tuple[list[Any], list[str]]:
    """Slices sorted along the normal, with notes on gaps; slices sharing a position are refused."""
    order, positions = slice_order(datasets)
    ordered = [datasets[i] for i in order]
    if positions is None:
        if all(instance_number(ds) is not None for ds in datasets):
            return ordered, ["no slice positions in the headers: slices ordered by InstanceNumber"]
        return ordered, [
            "warning: no slice positions and no numeric InstanceNumber in the headers: slices are in file-name "
            "order, which may not be their order in the knee"
        ]
    problems, notes = spacing_problems(positions)
    if problems:
        raise SeriesProblem(problems[0])
    return ordered, notes
