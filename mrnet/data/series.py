"""One series file: read, checked and converted to the uint8 (s, H, W) form every model takes.

Shared by training data, evaluation and prediction, so a file that one command accepts
is read the same way by every other.
"""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MIN_SIZE = 64  # AlexNet's feature maps vanish below this
MAX_SIZE = 1024  # four times MRNet's 256 px; a larger slice size in a file is a mistake, not a scan


class SeriesProblem(Exception):
    """A series file that cannot be used as it is; the message names what is wrong."""


def load_series(path: Path, mmap: bool = False) -> np.ndarray:
    """Load one series as uint8 (s, H, W), converting other dtypes only where it is lossless.

    Integer or float volumes whose values are all whole numbers in 0..255 are cast to
    uint8 exactly; anything else is refused rather than silently rescaled, because a
    rescale changes what the model sees compared with the MRNet data it was built for.
    """
    check_header(Path(path))
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise SeriesProblem("file is missing") from None
    except (ValueError, OSError, EOFError, MemoryError) as err:
        raise SeriesProblem(f"truncated or corrupt, cannot be read as .npy ({_first_line(err)})") from None
    if not isinstance(array, np.ndarray):
        raise SeriesProblem("is not a single array (.npz archives are not supported)")
    if array.ndim == 4 and array.shape[-1] in (3, 4):
        raise SeriesProblem(
            f"shape {array.shape} has a colour axis; expected grayscale (slices, H, W) - convert it to one channel"
        )
    if array.ndim != 3:
        raise SeriesProblem(f"shape {array.shape} has {array.ndim} dimensions; expected 3: (slices, H, W)")
    slices, height, width = array.shape
    if slices == 0:
        raise SeriesProblem("has 0 slices")
    if height != width:
        raise SeriesProblem(f"slices are {height}x{width}; expected square slices (H = W)")
    if height < MIN_SIZE:
        raise SeriesProblem(f"slices are {height}x{width}; expected at least {MIN_SIZE}x{MIN_SIZE}")
    if array.dtype == np.uint8:
        return array if mmap else np.ascontiguousarray(array)
    return _to_uint8_losslessly(np.asarray(array))


def check_header(path: Path) -> None:
    """What the .npy header promises, checked before any data is read.

    A FIFO or device named .npy would block or stream forever, a pickled object array is
    not an image, and a header that declares more bytes than the file holds (a download cut
    short, or a corrupted shape claiming gigabytes) must not reach a memory allocation.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SeriesProblem("file is missing") from None
    except OSError as err:
        raise SeriesProblem(f"cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(info.st_mode):
        raise SeriesProblem("is not a regular file (a folder, FIFO or device); expected a .npy file")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle, max_header_size=100_000)
            offset = handle.tell()
    except (ValueError, OSError, EOFError) as err:
        raise SeriesProblem(f"truncated or corrupt, cannot be read as .npy ({_first_line(err)})") from None
    if dtype.hasobject:
        raise SeriesProblem("holds pickled Python objects, not a numeric array; save the volume itself with np.save")
    needed = int(np.prod(shape, dtype=np.float64) * dtype.itemsize)
    if needed > info.st_size - offset:
        raise SeriesProblem(
            f"truncated or corrupt: its header declares shape {tuple(shape)} {dtype} ({_bytes(needed)}) "
            f"but the file holds {_bytes(info.st_size - offset)} of data"
        )


def _bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def _to_uint8_losslessly(array: np.ndarray) -> np.ndarray:
    kind = array.dtype.kind
    if kind not in "iuf" and array.dtype != np.bool_:
        raise SeriesProblem(f"dtype {array.dtype} is not numeric; expected uint8")
    if kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            bad = int((~finite).sum())
            raise SeriesProblem(f"{bad} NaN/inf values; expected uint8 intensities 0..255")
        if not np.array_equal(array, np.round(array)):
            raise SeriesProblem(
                f"dtype {array.dtype} with fractional values (range {array.min():.3g}..{array.max():.3g}); "
                "expected uint8 0..255 - rescale it to uint8 yourself (see the manual, 'Bad input and reliability')"
            )
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        raise SeriesProblem(
            f"dtype {array.dtype} with values {low:.6g}..{high:.6g} outside 0..255; expected uint8 - "
            "rescale it to uint8 yourself (see the manual, 'Bad input and reliability')"
        )
    return array.astype(np.uint8)


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def resize_series(series: np.ndarray, size: int) -> np.ndarray:
    """uint8 (s, H, W) -> uint8 (s, size, size), bilinear per slice (antialiased when shrinking)."""
    x = torch.from_numpy(np.ascontiguousarray(series)).float()[:, None]  # (s, 1, H, W)
    shrinking = size < series.shape[-1]
    resized = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
    return resized[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
