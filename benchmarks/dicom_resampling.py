"""In-plane resampling to the import size: the project's resize_series against torch's other modes and SimpleITK.

The reference is what a scanner gives at 256 x 256 over the same field of view: a
high-resolution synthetic slice with its k-space cut to the smaller matrix. Each source matrix
(512, 384, 192) is made the same way and stored as uint8, as an import would read it; every
method's output is rounded to uint8, as the import writes it, and compared with the reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from mrnet.data.series import resize_series
from mrnet.synthetic import make_exam

TARGET = 256
SOURCES = (512, 384, 192)
HIGH = 1024  # the "true" knee from which every matrix is cut
SPEED_SHAPE = (24, 512)  # slices, matrix of the series timed


def matrix_of(image: np.ndarray, n: int) -> np.ndarray:
    """(H, H) float slice -> the (n, n) slice a scanner with an n matrix and the same field of view gives.

    The slice is read as its Fourier series (samples at pixel centres); the n x n image keeps the
    frequencies below the smaller matrix's Nyquist limit and samples them at its own pixel centres.
    """
    m = image.shape[0]
    spectrum = np.fft.fft2(image)
    k = np.fft.fftfreq(m, 1.0 / m)  # integer frequencies
    keep = np.abs(k) < n / 2
    cut = spectrum[np.ix_(keep, keep)]
    kk = k[keep]
    phase = np.exp(2j * np.pi * kk * (0.5 / n - 0.5 / m))  # from the high grid's centres to the small grid's
    cut = cut * phase[:, None] * phase[None, :]
    grid = np.zeros((n, n), dtype=complex)
    index = (kk % n).astype(int)
    grid[np.ix_(index, index)] = cut
    return np.real(np.fft.ifft2(grid)) * (n / m) ** 2


def to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def torch_mode(mode: str, antialias: bool) -> Callable[[np.ndarray, int], np.ndarray]:
    def resize(series: np.ndarray, size: int) -> np.ndarray:
        x = torch.from_numpy(series).float()[:, None]
        if mode == "area":
            out = F.interpolate(x, size=(size, size), mode="area")
        else:
            shrinking = antialias and size < series.shape[-1]
            out = F.interpolate(x, size=(size, size), mode=mode, align_corners=False, antialias=shrinking)
        return to_uint8(out[:, 0].numpy())

    return resize


def sitk_resample(interpolator: str, smooth: bool) -> Callable[[np.ndarray, int], np.ndarray]:
    """SimpleITK's Resample onto the same pixel centres as torch's align_corners=False; optionally a Gaussian first.

    The Gaussian's sigma is scikit-image's anti-aliasing rule, (factor - 1) / 2 input pixels.
    """

    def resize(series: np.ndarray, size: int) -> np.ndarray:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(series.astype(np.float32))  # (s, H, W) -> x = W, y = H, z = s
        factor = series.shape[-1] / size
        if smooth and factor > 1:
            for axis in (0, 1):
                image = sitk.RecursiveGaussian(
                    image, (factor - 1) / 2, False, sitk.RecursiveGaussianImageFilter.ZeroOrder, axis
                )
        spacing = (factor, factor, 1.0)
        origin = ((factor - 1) / 2, (factor - 1) / 2, 0.0)
        method = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}[interpolator]
        out = sitk.Resample(
            image, (size, size, series.shape[0]), sitk.Transform(), method, origin, spacing, image.GetDirection(), 0.0
        )
        return to_uint8(sitk.GetArrayFromImage(out))

    return resize


METHODS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "project: resize_series (bilinear, antialiased when shrinking)": resize_series,
    "torch bilinear, no antialias": torch_mode("bilinear", antialias=False),
    "torch area (box average)": torch_mode("area", antialias=False),
    "torch bicubic, antialiased": torch_mode("bicubic", antialias=True),
    "SimpleITK Resample, linear": sitk_resample("linear", smooth=False),
    "SimpleITK Gaussian + linear": sitk_resample("linear", smooth=True),
    "SimpleITK Resample, B-spline": sitk_resample("bspline", smooth=False),
}


def knee_slices(seed: int = 0) -> np.ndarray:
    """Synthetic knee slices at HIGH x HIGH (three planes, four slices each) as floats."""
    labels = {"abnormal": 1, "acl": 1, "meniscus": 1}
    exam = make_exam([seed, 0], labels, size=HIGH, slices=(4, 4))
    return np.concatenate([exam[plane] for plane in sorted(exam)]).astype(np.float64)


def best_seconds(run: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def measure() -> tuple[list[str], list[list[object]]]:
    """One row per method: RMSE (grey levels) against the 256 matrix for each source matrix, and ms per series."""
    torch.set_num_threads(1)
    truth = knee_slices()
    reference = np.stack([matrix_of(s, TARGET) for s in truth])
    sources = {n: to_uint8(np.stack([matrix_of(s, n) for s in truth])) for n in SOURCES}
    slices, n = SPEED_SHAPE
    timed_series = np.resize(sources[n], (slices, n, n))
    rows: list[list[object]] = []
    for name, method in METHODS.items():
        errors = []
        for series in sources.values():
            out = method(series, TARGET).astype(np.float64)
            errors.append(f"{np.sqrt(np.mean((out - reference) ** 2)):.2f}")
        ms = 1000 * best_seconds(lambda method=method: method(timed_series, TARGET))
        rows.append([name, *errors, f"{ms:.0f}"])
    columns = [
        "method",
        *(f"RMSE {n}→{TARGET} (grey levels)" for n in SOURCES),
        f"ms per series ({slices} × {n}² → {TARGET}²)",
    ]
    return columns, rows
