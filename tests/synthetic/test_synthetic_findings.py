"""Findings are real and plane-dependent: masks mark only what was planted, and each tear stands
out most in the plane where it does in real scans."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from mrnet import PLANES, TASKS
from mrnet.synthetic.exam import make_exam
from mrnet.synthetic.tissues import FINDINGS

SIZE = 64
SLICES = (4, 8)
# Each check renders several whole exams with and without a finding (about a second in all).
pytestmark = pytest.mark.slow


def test_masks_cover_the_series_and_mark_only_planted_findings():
    series, masks = make_exam(0, (0, 0, 0), size=SIZE, slices=SLICES, return_masks=True)
    for plane in PLANES:
        assert set(masks[plane]) == set(FINDINGS) | set(TASKS)
        for mask in masks[plane].values():
            assert mask.dtype == bool and mask.shape == series[plane].shape
            assert not mask.any()  # a normal exam has no lesion anywhere

    series, masks = make_exam(0, (1, 1, 1), size=SIZE, slices=(8, 12), return_masks=True)
    assert masks["sagittal"]["acl"].any() and masks["coronal"]["meniscus"].any()
    for plane in PLANES:
        assert masks[plane]["abnormal"].any()
        assert not (masks[plane]["acl"] & ~masks[plane]["abnormal"]).any()


def test_a_tear_changes_only_its_own_exam_region():
    """Anatomy, pose and noise come from their own streams: with and without a tear differ only near it."""
    with_tear, masks = make_exam(4, (1, 1, 0), size=SIZE, slices=(8, 12), return_masks=True)
    without = make_exam(4, (1, 0, 0), size=SIZE, slices=(8, 12))
    changed = np.abs(with_tear["sagittal"].astype(int) - without["sagittal"].astype(int)) > 40
    near = dilate(masks["sagittal"]["acl"], 3)
    assert changed.any() and changed[~near].mean() < 0.002


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """In-plane dilation of a (s, H, W) mask by `steps` 4-neighbour steps."""
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        grown[:, :, 1:] |= out[:, :, :-1]
        grown[:, :, :-1] |= out[:, :, 1:]
        out = grown
    return out


@functools.cache
def exam_with_masks(seed: int, labels: tuple[int, int, int]) -> tuple[dict, dict]:
    """One exam of the measures below and its masks, made once: the tests share exams (e.g. the normal baseline)."""
    return make_exam(seed, labels, size=SIZE, slices=(8, 12), return_masks=True)


def lesion_change(seed: int, labels: tuple[int, int, int], baseline: tuple[int, int, int], task: str) -> dict:
    """Per plane: mean |exam with lesion - same exam without| inside the lesion mask, in units of
    the series' standard deviation (how much the lesion stands out against that series' contrast)."""
    lesion, masks = exam_with_masks(seed, labels)
    plain, _ = exam_with_masks(seed, baseline)
    change = {}
    for plane in PLANES:
        mask = masks[plane][task]
        diff = np.abs(lesion[plane].astype(float) - plain[plane].astype(float))
        change[plane] = float(diff[mask].mean() / lesion[plane].std()) if mask.any() else 0.0
    return change


def surround_contrast(seed: int, labels: tuple[int, int, int], task: str) -> dict:
    """Per plane: |mean inside the lesion - mean of a 2-pixel ring around it| / series std."""
    series, masks = exam_with_masks(seed, labels)
    contrast = {}
    for plane in PLANES:
        mask = masks[plane][task]
        ring = dilate(mask, 2) & ~mask
        image = series[plane].astype(float)
        if mask.any():
            contrast[plane] = float(abs(image[mask].mean() - image[ring].mean()) / image.std())
        else:
            contrast[plane] = 0.0
    return contrast


SEEDS = range(6)


def mean_over_seeds(measure, *args) -> dict:
    values = [measure(seed, *args) for seed in SEEDS]
    return {plane: float(np.mean([v[plane] for v in values])) for plane in PLANES}


def test_acl_tears_stand_out_most_on_sagittal_series():
    change = mean_over_seeds(lesion_change, (1, 1, 0), (1, 0, 0), "acl")
    assert change["sagittal"] > 1.5 * change["axial"], change
    assert change["sagittal"] > 1.5 * change["coronal"], change
    contrast = mean_over_seeds(surround_contrast, (1, 1, 0), "acl")
    assert contrast["sagittal"] > 1.5 * contrast["axial"], contrast


def test_meniscal_tears_stand_out_most_on_coronal_series():
    change = mean_over_seeds(lesion_change, (1, 0, 1), (1, 0, 0), "meniscus")
    assert change["coronal"] > 1.2 * change["sagittal"], change
    assert change["coronal"] > 1.2 * change["axial"], change


def test_other_abnormalities_show_in_every_plane():
    change = mean_over_seeds(lesion_change, (1, 0, 0), (0, 0, 0), "abnormal")
    assert min(change.values()) > 0.3, change
