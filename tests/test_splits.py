"""The tuning split: stratified, deterministic, disjoint from training, shared by a sweep, refused when it differs."""

from __future__ import annotations

from collections import Counter

import pytest

from mrnet.data.splits import (
    allocate,
    check_against_file,
    check_both_classes,
    draw_tune_split,
    prepare_tune_split,
    read_tune_cases,
    train_combinations,
    tune_split_for,
)
from mrnet.errors import MRNetError
from mrnet.layout import tune_cases_file

# MRNet-v1.0's train label combinations (abnormal, acl, meniscus) and counts.
MRNET_TRAIN = {(0, 0, 0): 217, (1, 0, 0): 433, (1, 0, 1): 272, (1, 1, 0): 83, (1, 1, 1): 125}


def combinations_of(counts: dict[tuple[int, int, int], int]) -> dict[str, tuple[int, int, int]]:
    cases, index = {}, 0
    for combination, n in counts.items():
        for _ in range(n):
            cases[f"{index:04d}"] = combination
            index += 1
    return cases


def test_allocation_by_hand():
    # 10 % of 1,130 = 113 exams, shared in proportion; remainders decide the last ones.
    sizes = {"000": 217, "100": 433, "101": 272, "110": 83, "111": 125}
    counts = allocate(sizes, 0.1)
    assert sum(counts.values()) == 113
    assert counts == {"000": 22, "100": 43, "101": 27, "110": 8, "111": 13}
    # Small groups: at least one each, never the whole group; a group of one gives none.
    assert allocate({"a": 2, "b": 5, "c": 1}, 0.1) == {"a": 1, "b": 1, "c": 0}


def test_mrnet_sized_split_is_stratified_and_deterministic():
    combos = combinations_of(MRNET_TRAIN)
    split = draw_tune_split(combos, 0.1, seed=0)
    assert len(split.cases) == 113 and split.pooled == ()
    held_out = Counter(combos[c] for c in split.cases)
    for combination, n in MRNET_TRAIN.items():
        assert abs(held_out[combination] - 0.1 * n) <= 1
    assert draw_tune_split(combos, 0.1, seed=0).cases == split.cases
    assert draw_tune_split(combos, 0.1, seed=1).cases != split.cases
    trained = split.training_cases(sorted(combos))
    assert len(trained) == 1130 - 113 and not set(trained) & set(split.cases)


def test_no_split_at_fraction_zero():
    split = draw_tune_split(combinations_of(MRNET_TRAIN), 0.0, seed=0)
    assert not split.enabled and split.training_cases(["0001", "0002"]) == ["0001", "0002"]


def test_rare_combinations_are_pooled_and_a_lone_exam_stays_in_train():
    combos = combinations_of({(0, 0, 0): 6, (1, 0, 0): 6, (1, 0, 1): 1, (1, 1, 1): 1})
    split = draw_tune_split(combos, 0.1, seed=0)
    assert split.pooled == ("101", "111")
    assert Counter(combos[c] for c in split.cases)[(0, 0, 0)] == 1
    assert sum(combos[c] in ((1, 0, 1), (1, 1, 1)) for c in split.cases) == 1  # the pool of two gives one

    lone = combinations_of({(0, 0, 0): 6, (1, 0, 0): 6, (1, 1, 1): 1})
    split = draw_tune_split(lone, 0.1, seed=0)
    assert split.pooled == ("111",) and all(lone[c] != (1, 1, 1) for c in split.cases)


def test_a_tuning_split_without_both_classes_is_refused_with_a_way_out():
    combos = combinations_of({(0, 0, 0): 6, (1, 0, 0): 6, (1, 1, 1): 1})
    split = draw_tune_split(combos, 0.1, seed=0)
    check_both_classes(split, ["abnormal"])
    with pytest.raises(MRNetError, match=r"acl: 0 positive.*too rare to stratify.*--tune-fraction 0 --select-on valid"):
        check_both_classes(split, ["abnormal", "acl"])


def test_split_from_label_files_matches_the_hand_draw(tiny_data):
    combos = train_combinations(tiny_data)
    assert set(combos.values()) == {(0, 0, 0), (1, 1, 1)}  # the tiny layout's labels alternate
    split = tune_split_for(tiny_data, 0.1, seed=0)
    assert split.cases == draw_tune_split(combos, 0.1, seed=0).cases
    assert Counter(combos[c] for c in split.cases) == {(0, 0, 0): 1, (1, 1, 1): 1}


def test_file_is_written_once_and_a_different_draw_is_refused(tiny_data, tmp_path):
    models = tmp_path / "models"
    first = prepare_tune_split(models, tiny_data, 0.1, seed=0)
    assert read_tune_cases(models) == list(first.cases)
    written = tune_cases_file(models).read_text()
    assert written.splitlines()[0] == "case,abnormal,acl,meniscus"
    assert check_against_file(models, tune_split_for(tiny_data, 0.1, seed=0)) is False  # same draw: nothing to write
    with pytest.raises(MRNetError, match=r"tune_cases.csv holds a tuning split.*--split-seed 5"):
        prepare_tune_split(models, tiny_data, 0.1, seed=5)
    with pytest.raises(MRNetError, match=r"--tune-fraction 0\.0"):
        check_against_file(models, tune_split_for(tiny_data, 0.0, seed=0))
    assert tune_cases_file(models).read_text() == written


def test_a_fraction_that_cannot_be_kept_and_a_thin_class_are_said():
    # 10 train exams, four combinations: each gives one, so 4 are held out where 0.1 asks for 1.
    combos = combinations_of({(0, 0, 0): 3, (1, 0, 0): 3, (1, 1, 0): 2, (1, 0, 1): 2})
    split = draw_tune_split(combos, 0.1, seed=0)
    assert len(split.cases) == 4
    notes = split.notes(["abnormal", "acl", "meniscus"])
    assert any("holds 4 of 10 train exams (40%), not the 1 that --tune-fraction 0.1 asks for" in n for n in notes)
    assert any(n.startswith("warning: the tuning split has 1 positive and 3 negative acl exams") for n in notes)
    assert draw_tune_split(combinations_of(MRNET_TRAIN), 0.1, seed=0).notes(["abnormal", "acl", "meniscus"]) == []


def test_a_draw_changed_by_the_labels_says_so_not_the_options(tiny_data, tmp_path):
    models = tmp_path / "models"
    first = prepare_tune_split(models, tiny_data, 0.2, seed=0)
    labels = tiny_data / "train-abnormal.csv"
    rows = [line.split(",") for line in labels.read_text().splitlines()]
    flipped = first.cases[0]
    labels.write_text("".join(f"{c},{1 - int(v) if c == flipped else v}\n" for c, v in rows))
    with pytest.raises(MRNetError, match=rf"the train labels changed since it was drawn \({flipped} abnormal"):
        prepare_tune_split(models, tiny_data, 0.2, seed=0)
