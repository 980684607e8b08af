"""One exam: its options checked, its random streams split, and one phantom rendered into
three series, which is what keeps the planes of an exam consistent with each other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .. import PLANES
from .anatomy import draw_anatomy
from .findings import draw_findings, knee_layers
from .geometry import draw_pose
from .labels import Labels, validate_labels
from .rendering import render_series
from .tissues import TASK_FINDINGS

MIN_SIZE = 64  # AlexNet's feature maps vanish below this
MAX_SIZE = 1024
MAX_SLICES = 256

# MRNet's real slice counts per series: the range of each plane, and a mean/sd shared by all.
REAL_SLICE_RANGES: dict[str, tuple[int, int]] = {"axial": (19, 61), "coronal": (17, 58), "sagittal": (17, 51)}
REAL_SLICE_MEAN, REAL_SLICE_SD = 31.5, 7.1


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
    for plane, plane_rng in zip(PLANES, imaging_rng.spawn(len(PLANES)), strict=True):
        series[plane], masks[plane] = render_series(
            layers, pose, plane, size, counts[plane], coverage[plane], plane_rng, return_masks
        )
        if return_masks:
            for task, findings in TASK_FINDINGS.items():
                masks[plane][task] = np.logical_or.reduce([masks[plane][f] for f in findings])
    return (series, masks) if return_masks else series
