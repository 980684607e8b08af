"""Reading one DICOM series (a folder of slices) into the uint8 (s, H, W) form the models take.

Optional: pydicom is imported only when a DICOM folder is read, and is not a dependency.
The conversion mirrors what MRNet's .npy files are (one grey series, 0..255, square
slices); it cannot reproduce Stanford's own export, whose exact windowing is not
published, so predictions on converted series carry that extra uncertainty.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MRNetError
from .series import SeriesProblem

PERCENTILE_WINDOW = (0.5, 99.5)  # used when the headers carry no window
SKIPPED_NAMES = {"DICOMDIR"}


def import_pydicom():
    try:
        import pydicom
    except ImportError:
        raise MRNetError(
            "install pydicom to read DICOM (pip install pydicom), or convert the series to "
            "uint8 .npy files of shape (slices, H, W)"
        ) from None
    return pydicom


def read_dicom_series(folder: str | Path) -> np.ndarray:
    """A folder of one series' slice files -> uint8 (s, N, N); raises SeriesProblem naming what is wrong."""
    pydicom = import_pydicom()
    folder = Path(folder)
    datasets = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if path.name.upper() in SKIPPED_NAMES:
            continue
        try:
            datasets.append(pydicom.dcmread(path))
        except Exception:  # pydicom raises several types for files that are not DICOM; skip them
            continue
    if not datasets:
        raise SeriesProblem("holds no readable DICOM files")
    return series_from_datasets(datasets)


def series_from_datasets(datasets: Sequence[Any]) -> np.ndarray:
    """Sort, window and scale DICOM datasets of one series into uint8 (s, N, N).

    Works on anything with pydicom's attribute names and a `pixel_array`, so the rules can
    be checked without pydicom or real files.
    """
    series_ids = {str(getattr(ds, "SeriesInstanceUID", "")) for ds in datasets}
    if len(series_ids) > 1:
        raise SeriesProblem(f"holds {len(series_ids)} different series (SeriesInstanceUID); put one series per folder")
    if len(datasets) == 1 and _pixels(datasets[0]).ndim == 3:
        volume = _pixels(datasets[0]).astype(np.float64)  # one multi-frame file: frames are in order
        reference = datasets[0]
    else:
        ordered = [datasets[i] for i in slice_order(datasets)]
        shapes = {_pixels(ds).shape for ds in ordered}
        if len(shapes) != 1:
            raise SeriesProblem(f"slices have different sizes {sorted(shapes)}")
        volume = np.stack([_pixels(ds) for ds in ordered]).astype(np.float64)
        reference = ordered[len(ordered) // 2]
    volume = volume * float(getattr(reference, "RescaleSlope", 1) or 1) + float(
        getattr(reference, "RescaleIntercept", 0) or 0
    )
    low, high = display_window(reference, volume)
    scaled = np.clip((volume - low) / max(high - low, 1e-6), 0.0, 1.0)
    if str(getattr(reference, "PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        scaled = 1.0 - scaled  # MONOCHROME1 shows low values as white
    return pad_to_square(np.round(scaled * 255.0).astype(np.uint8))


def _pixels(ds: Any) -> np.ndarray:
    try:
        return np.asarray(ds.pixel_array)
    except Exception as err:  # compressed transfer syntaxes need extra pydicom plugins
        raise SeriesProblem(f"pixel data cannot be decoded ({type(err).__name__}: {err})") from None


def slice_order(datasets: Sequence[Any]) -> list[int]:
    """Slices ordered along the series' normal when positions are known, else by InstanceNumber.

    The position projected on the slice normal is the geometric order; InstanceNumber is
    only the order the scanner wrote the files in, usually but not always the same.
    """
    keys = [_position_along_normal(ds) for ds in datasets]
    if all(k is not None for k in keys):
        return sorted(range(len(datasets)), key=lambda i: keys[i])
    numbers = [getattr(ds, "InstanceNumber", None) for ds in datasets]
    if all(n is not None for n in numbers):
        return sorted(range(len(datasets)), key=lambda i: int(numbers[i]))
    return list(range(len(datasets)))  # file-name order


def _position_along_normal(ds: Any) -> float | None:
    position = getattr(ds, "ImagePositionPatient", None)
    orientation = getattr(ds, "ImageOrientationPatient", None)
    if position is None or orientation is None or len(orientation) != 6:
        return None
    row, col = np.asarray(orientation[:3], dtype=float), np.asarray(orientation[3:], dtype=float)
    return float(np.dot(np.asarray(position, dtype=float), np.cross(row, col)))


def display_window(ds: Any, volume: np.ndarray) -> tuple[float, float]:
    """(low, high) intensities mapped to 0 and 255: the header's first window, else percentiles.

    One window for the whole series keeps the slices' relative brightness, which the
    models' per-series min-max scaling also keeps.
    """
    center, width = _first_value(getattr(ds, "WindowCenter", None)), _first_value(getattr(ds, "WindowWidth", None))
    if center is not None and width is not None and width > 0:
        return center - width / 2.0, center + width / 2.0
    low, high = np.percentile(volume, PERCENTILE_WINDOW)
    if high <= low:
        low, high = float(volume.min()), float(volume.max())
    return float(low), float(high)


def _first_value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and not isinstance(value, str)):
        value = value[0] if len(value) else None
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def pad_to_square(volume: np.ndarray) -> np.ndarray:
    """Centre (s, H, W) in an (s, N, N) black canvas, N = max(H, W): the models expect square slices."""
    slices, height, width = volume.shape
    size = max(height, width)
    if height == width:
        return volume
    out = np.zeros((slices, size, size), dtype=volume.dtype)
    top, left = (size - height) // 2, (size - width) // 2
    out[:, top : top + height, left : left + width] = volume
    return out
