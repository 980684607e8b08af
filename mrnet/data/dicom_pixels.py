"""DICOM pixel data -> the 0..255 intensities the models take: decoding, modality LUT per slice, window.

Order of the DICOM display pipeline (PS3.3 C.11): stored values -> modality LUT or rescale
slope/intercept (each slice its own: scanners may store every slice with a different
scale) -> VOI window -> presentation (MONOCHROME1 inverted). One window serves the whole
series, so slices keep their relative brightness, as MRNet's per-series scaling does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .series import SeriesProblem

PERCENTILE_WINDOW = (0.5, 99.5)  # used when the headers carry no window

# What pydicom needs besides itself to decode the compressed transfer syntaxes met in MR exports.
DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pillow, or pylibjpeg and pylibjpeg-libjpeg",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "pillow, or pylibjpeg and pylibjpeg-libjpeg",  # JPEG extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg and pylibjpeg-libjpeg, or python-gdcm",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg and pylibjpeg-libjpeg, or python-gdcm",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": "pylibjpeg and pylibjpeg-libjpeg, or pyjpegls, or python-gdcm",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg and pylibjpeg-libjpeg, or pyjpegls, or python-gdcm",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg and pylibjpeg-openjpeg, or python-gdcm",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg and pylibjpeg-openjpeg, or python-gdcm",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg and pylibjpeg-openjpeg",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg and pylibjpeg-openjpeg",  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg and pylibjpeg-openjpeg",  # HTJ2K
    # RLE lossless (1.2.840.10008.1.2.5) is absent: pydicom 3 decodes it with numpy alone (pylibjpeg-rle is faster).
}
DEFAULT_DECODERS = "pylibjpeg with its plugins, or python-gdcm"


def transfer_syntax(ds: Any) -> tuple[str, str]:
    """(UID, name) of a file's transfer syntax; ('', 'unknown') for objects without file meta."""
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None:
        return "", "unknown"
    return str(uid), str(getattr(uid, "name", uid))


def pixels_of(ds: Any) -> np.ndarray:
    """The stored pixel values of one file; a compressed syntax without its decoder gets a message naming both."""
    try:
        return np.asarray(ds.pixel_array)
    except Exception as err:  # pydicom raises RuntimeError, NotImplementedError, ValueError, ... per plugin
        uid, name = transfer_syntax(ds)
        packages = DECODER_PACKAGES.get(uid, DEFAULT_DECODERS)
        if not _decoder_available(uid):
            raise SeriesProblem(
                f"pixel data use the transfer syntax '{name}' ({uid}), which pydicom decodes only with an extra "
                f"package: install {packages} (pip install ...), or export the series uncompressed "
                f"(Explicit VR Little Endian)"
            ) from None
        if uid in DECODER_PACKAGES:
            raise SeriesProblem(
                f"pixel data in the transfer syntax '{name}' ({uid}) cannot be decoded ({_first_line(err)}): "
                f"the data may be corrupt, or the installed decoder may not handle it; decoders: {packages}"
            ) from None
        raise SeriesProblem(f"pixel data cannot be decoded ({type(err).__name__}: {_first_line(err)})") from None


def _decoder_available(uid: str) -> bool:
    """Whether pydicom (3.x) has a working decoder for the syntax; True where it cannot tell."""
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom 2.x
        return True
    try:
        return bool(get_decoder(uid).is_available)
    except (NotImplementedError, ValueError):  # an uncompressed syntax, or one pydicom does not know
        return True


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def modality_values(ds: Any, pixels: np.ndarray) -> np.ndarray:
    """Stored values -> modality values (float64) with this file's own modality LUT or rescale slope/intercept."""
    if getattr(ds, "ModalityLUTSequence", None):
        from pydicom.pixels import apply_modality_lut  # pydicom 3 (the dicom extra's floor)

        return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    slope = _number(getattr(ds, "RescaleSlope", None), 1.0) or 1.0
    intercept = _number(getattr(ds, "RescaleIntercept", None), 0.0)
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        where = getattr(ds, "filename", None) or "a slice"
        raise SeriesProblem(f"{where}: RescaleSlope {slope} / RescaleIntercept {intercept} is not a finite number")
    return pixels.astype(np.float64) * slope + intercept


@dataclass(frozen=True)
class Window:
    """A VOI window: centre, width and function (LINEAR, LINEAR_EXACT or SIGMOID), as in the header."""

    center: float
    width: float
    function: str = "LINEAR"
    source: str = "header"

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Modality values -> [0, 1] by the standard's formulas (PS3.3 C.11.2.1.2)."""
        c, w = self.center, max(self.width, 1e-6)
        if self.function == "SIGMOID":
            return 1.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
        if self.function == "LINEAR_EXACT":
            return np.clip((values - c) / w + 0.5, 0.0, 1.0)
        w = max(self.width, 1.0)  # LINEAR needs a width of at least 1
        return np.clip((values - (c - 0.5)) / max(w - 1.0, 1e-6) + 0.5, 0.0, 1.0)

    def describe(self) -> str:
        if self.source == "header":
            return f"window {self.center:g}/{self.width:g} from the headers"
        return f"no window in the headers: {PERCENTILE_WINDOW[0]}-{PERCENTILE_WINDOW[1]} percentile range"


def header_window(datasets: Sequence[Any]) -> Window | None:
    """The series' window from its headers: the median of the slices' first windows (they rarely differ)."""
    pairs = []
    for ds in datasets:
        center = _first_value(getattr(ds, "WindowCenter", None))
        width = _first_value(getattr(ds, "WindowWidth", None))
        if center is not None and width is not None and width > 0:
            pairs.append((center, width))
    if not pairs:
        return None
    centers, widths = zip(*pairs, strict=True)
    function = str(getattr(datasets[0], "VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    return Window(float(np.median(centers)), float(np.median(widths)), function)


def percentile_window(values: np.ndarray) -> Window:
    """A window spanning the 0.5-99.5 percentile range of the whole series (the full range if that is flat)."""
    low, high = (float(v) for v in np.percentile(values, PERCENTILE_WINDOW))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    return Window((low + high) / 2.0, max(high - low, 1e-6), "LINEAR_EXACT", source="percentiles")


def inverted(ds: Any) -> bool:
    """Whether the series shows low values as white (MONOCHROME1); colour images are refused."""
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise SeriesProblem(f"photometric interpretation {photometric}: a colour image; MRNet reads grey series")
    return photometric == "MONOCHROME1"


def display_uint8(datasets: Sequence[Any], volume: np.ndarray) -> tuple[np.ndarray, Window]:
    """Modality values (s, H, W) -> uint8 through the header's window (else percentiles), MONOCHROME1 inverted."""
    window = header_window(datasets) or percentile_window(volume)
    scaled = window.apply(volume)
    if inverted(datasets[0]):
        scaled = 1.0 - scaled
    return np.round(scaled * 255.0).astype(np.uint8), window


def _number(value: Any, default: float) -> float:
    first = _first_value(value)
    return default if first is None else first


def _first_value(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str) and hasattr(value, "__len__"):
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
