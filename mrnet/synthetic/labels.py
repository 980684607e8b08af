"""Exam labels: MRNet's label combinations, per-case draws, and splits balanced so AUC is defined.

Labels come from their own random stream, so they never shift an exam's anatomy or noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .. import TASKS

# MRNet train label combinations (abnormal, acl, meniscus) and their counts out of 1,130.
COMBINATION_COUNTS: dict[tuple[int, int, int], int] = {
    (0, 0, 0): 217,
    (1, 0, 0): 433,
    (1, 0, 1): 272,
    (1, 1, 0): 83,
    (1, 1, 1): 125,
}
COMBINATIONS: tuple[tuple[int, int, int], ...] = tuple(COMBINATION_COUNTS)  # also the valid-split order
MIN_CLASS_COUNT = 2  # each task needs this many positives and negatives per split ...
BALANCE_FROM_N = 10  # ... once a split has at least this many exams

LABEL_STREAM = 1  # label draws use default_rng([seed, case_index, LABEL_STREAM])

Labels = tuple[int, int, int]


def validate_labels(labels: Labels | Mapping[str, int]) -> Labels:
    given = tuple(labels[t] for t in TASKS) if isinstance(labels, Mapping) else tuple(labels)
    values = tuple(int(v) for v in given)
    if len(values) != 3 or any(v not in (0, 1) for v in values):
        raise ValueError(f"labels must be three 0/1 values (abnormal, acl, meniscus), got {labels!r}")
    if values[0] == 0 and (values[1] or values[2]):
        raise ValueError(f"labels {values}: a tear is always abnormal (abnormal must be 1)")
    return values


def draw_case_labels(seed: int, case_index: int) -> Labels:
    """One label combination at MRNet's train frequencies, from the case's own stream."""
    rng = np.random.default_rng([seed, case_index, LABEL_STREAM])
    weights = np.array(list(COMBINATION_COUNTS.values()), dtype=np.float64)
    return COMBINATIONS[int(rng.choice(len(COMBINATIONS), p=weights / weights.sum()))]


def class_deficits(combos: Sequence[Labels]) -> list[tuple[int, int]]:
    """(task index, class) pairs that have fewer than MIN_CLASS_COUNT exams."""
    counts = np.array(combos, dtype=int).reshape(-1, 3)
    missing = []
    for task in range(3):
        positives = int(counts[:, task].sum())
        for cls, n in ((1, positives), (0, len(counts) - positives)):
            if n < MIN_CLASS_COUNT:
                missing.append((task, cls))
    return missing


def _combination_fixing(deficit: tuple[int, int], missing: list[tuple[int, int]]) -> Labels:
    task, cls = deficit
    if cls == 0:
        return (0, 0, 0) if task == 0 else (1, 0, 0)
    if task == 1:
        return (1, 1, 1) if (2, 1) in missing else (1, 1, 0)
    if task == 2:
        return (1, 0, 1)
    return (1, 0, 0)


def class_shortfall(combos: Sequence[Labels]) -> int:
    """How many exams are missing, summed over tasks and classes, for MIN_CLASS_COUNT of each."""
    counts = np.array(combos, dtype=int).reshape(-1, 3)
    positives = counts.sum(axis=0)
    negatives = len(counts) - positives
    return int(np.maximum(MIN_CLASS_COUNT - positives, 0).sum() + np.maximum(MIN_CLASS_COUNT - negatives, 0).sum())


def balance_split(combos: list[Labels]) -> list[Labels]:
    """Make sure each task has both classes (>= MIN_CLASS_COUNT each) in a split of >= BALANCE_FROM_N.

    Small random splits often miss a class, and AUC is undefined then. Only the last possible
    exam is replaced each time, so the first ones keep their own draws however long the split
    is, and a replacement is taken only if it lowers the total shortfall.
    """
    combos = list(combos)
    if len(combos) < BALANCE_FROM_N:
        return combos
    while (shortfall := class_shortfall(combos)) > 0:
        missing = class_deficits(combos)
        wanted = _combination_fixing(missing[0], missing)
        for slot in range(len(combos) - 1, -1, -1):
            trial = [*combos[:slot], wanted, *combos[slot + 1 :]]
            if class_shortfall(trial) < shortfall:
                combos = trial
                break
        else:  # cannot happen for >= 10 exams (4 suffice); stop rather than loop
            break
    return combos


def draw_split_labels(seed: int, first_index: int, n: int, ordered: bool) -> list[Labels]:
    """Labels of one split's cases; `ordered` sorts them by combination as MRNet's valid split is."""
    combos = balance_split([draw_case_labels(seed, first_index + i) for i in range(n)])
    if ordered:
        combos.sort(key=COMBINATIONS.index)
    return combos
