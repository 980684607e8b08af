"""make_exam: slice counts per plane, how its random streams are seeded, and label checks."""

from __future__ import annotations

import numpy as np
import pytest

from mrnet import PLANES
from mrnet.synthetic.exam import REAL_SLICE_RANGES, draw_slice_counts, make_exam

SIZE = 64
SLICES = (4, 8)


def test_real_slice_ranges_by_default():
    rng = np.random.default_rng(0)
    draws = [draw_slice_counts(rng, None) for _ in range(400)]
    for plane, (lo, hi) in REAL_SLICE_RANGES.items():
        counts = np.array([d[plane] for d in draws])
        assert counts.min() >= lo and counts.max() <= hi
        assert 28 <= counts.mean() <= 35
    assert np.mean([len(set(d.values())) == 3 for d in draws]) > 0.95


def test_make_exam_accepts_a_seed_or_a_generator():
    by_seed = make_exam([7, 1], (1, 0, 1), size=SIZE, slices=SLICES)
    by_rng = make_exam(np.random.default_rng([7, 1]), (1, 0, 1), size=SIZE, slices=SLICES)
    for plane in PLANES:
        np.testing.assert_array_equal(by_seed[plane], by_rng[plane])


def test_tear_without_abnormal_is_rejected():
    with pytest.raises(ValueError, match="abnormal"):
        make_exam(0, (0, 1, 0), size=SIZE, slices=SLICES)
