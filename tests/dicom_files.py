"""Real DICOM files for the tests, written with pydicom from uint8 series, with the headers a scanner writes.

Each slice is stored as signed 16-bit values under its own rescale slope and intercept, with
a window that maps the modality values back onto 0..255 exactly, so a correct reader gives
back the very series it was written from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, MRImageStorage, generate_uid

# Row and column direction cosines in the patient's LPS axes, as scanners write them.
ORIENTATION = {
    "axial": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "coronal": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    "sagittal": (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
}
SLOPES = (0.5, 0.25, 1.0, 0.125)  # a different scale on neighbouring slices (1/slope whole: lossless)
INTERCEPTS = (-100.0, 0.0, 20.0, -8.0)
FOV_MM = 160.0  # a knee protocol's field of view
SLICE_STEP_MM = 3.5
ORIGIN_MM = np.array([-80.0, -80.0, -40.0])


def tilted(plane: str, degrees: float) -> tuple[float, ...]:
    """The plane's orientation with its column direction turned about its row direction (an oblique series)."""
    row, col = np.asarray(ORIENTATION[plane][:3]), np.asarray(ORIENTATION[plane][3:])
    normal = np.cross(row, col)
    angle = np.radians(degrees)
    return (*row, *(np.cos(angle) * col + np.sin(angle) * normal))


def write_series(
    volume: np.ndarray,
    folder: Path,
    plane: str,
    *,
    seed: int = 0,
    description: str | None = None,
    series_uid: str | None = None,
    orientation: Sequence[float] | None = None,
    window: bool = True,
    fov_mm: float = FOV_MM,
    skip_slices: Sequence[int] = (),
    prefix: str = "IM",
    headers: Mapping[str, object] | None = None,
) -> str:
    """Write uint8 (s, H, W) as one DICOM file per slice into folder, in a shuffled order; returns the series UID.

    File names follow a random permutation, so neither the names nor the order the files are
    listed in tells the slice order: only ImagePositionPatient does. `headers` are set on every
    file last (a study's UID, a patient, an accession number).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    series_uid = series_uid or generate_uid()
    cosines = np.asarray(orientation or ORIENTATION[plane], dtype=float)
    normal = np.cross(cosines[:3], cosines[3:])
    study_uid = generate_uid(entropy_srcs=[f"study-{seed}"])
    names = rng.permutation(len(volume))
    for index in range(len(volume)):
        if index in skip_slices:
            continue
        ds = slice_dataset(volume[index], index, study_uid, series_uid, cosines, fov_mm)
        ds.ImagePositionPatient = [float(v) for v in ORIGIN_MM + index * SLICE_STEP_MM * normal]
        ds.SeriesDescription = description or f"{plane.upper()} KNEE"
        if window:
            ds.WindowCenter, ds.WindowWidth = 128, 256  # maps modality values 0..255 onto 0..255 exactly
        for keyword, value in (headers or {}).items():
            setattr(ds, keyword, value)
        ds.save_as(folder / f"{prefix}{names[index]:04d}", enforce_file_format=True)
    return series_uid


def slice_dataset(
    image: np.ndarray, index: int, study_uid: str, series_uid: str, cosines: np.ndarray, fov_mm: float
) -> Dataset:
    """One MR slice: stored = (value - intercept) / slope as int16, with the slice's own slope and intercept."""
    slope, intercept = SLOPES[index % len(SLOPES)], INTERCEPTS[index % len(INTERCEPTS)]
    stored = np.round((image.astype(np.float64) - intercept) / slope).astype(np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality, ds.PatientID, ds.SeriesNumber, ds.InstanceNumber = "MR", "SYNTH", 3, index + 1
    ds.ImageOrientationPatient = [float(v) for v in cosines]
    ds.PixelSpacing = [fov_mm / image.shape[0], fov_mm / image.shape[1]]
    ds.SliceThickness = 3.0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = stored.tobytes()
    return ds


def write_compressed_slice(path: Path, transfer_syntax: str = JPEGLSLossless) -> None:
    """A slice in a compressed transfer syntax (JPEG-LS by default) that pydicom cannot decode on its own."""
    axial = np.asarray(ORIENTATION["axial"])
    ds = slice_dataset(np.zeros((8, 8), np.uint8), 0, generate_uid(), generate_uid(), axial, FOV_MM)
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + bytes(60)])
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
