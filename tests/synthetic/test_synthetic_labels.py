"""Label draws: MRNet's label frequencies, and small splits that still hold both classes of every task."""

from __future__ import annotations

import numpy as np

from mrnet.synthetic.labels import COMBINATIONS, draw_case_labels, draw_split_labels


def test_label_combinations_follow_mrnet_frequencies():
    combos = [draw_case_labels(0, i) for i in range(3000)]
    freq = np.mean(combos, axis=0)
    assert abs(freq[0] - 913 / 1130) < 0.03
    assert abs(freq[1] - 208 / 1130) < 0.03
    assert abs(freq[2] - 397 / 1130) < 0.03
    assert set(combos) <= set(COMBINATIONS)


def test_small_splits_are_balanced_for_every_seed():
    for seed in range(30):
        combos = draw_split_labels(seed, 0, 10, ordered=False)
        counts = np.array(combos).sum(axis=0)
        assert np.all(counts >= 2) and np.all(10 - counts >= 2), (seed, combos)
