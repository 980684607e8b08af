"""From phantom to image, per series: tissue labels on the plane's grid, contrast, partial
volume, blur, coil shading, Rician noise and uint8 windowing like MRNet's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .geometry import Pose, SamplingGrid, block_for_box, knee_coordinates, sampling_grid
from .shapes import Layer
from .tissues import BASE_CONTRAST, FINDING_TISSUES, Tissue

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


def draw_contrast(rng: np.random.Generator, plane: str) -> np.ndarray:
    """Per-exam tissue signals by tissue id: the plane's table with +-10 % jitter (lesions +-15 %)."""
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
