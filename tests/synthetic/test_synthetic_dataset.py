"""make_dataset: the MRNet-v1.0 layout on disk, its label files, determinism, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrnet import PLANES, SPLITS, TASKS
from mrnet.synthetic.dataset import make_dataset
from mrnet.synthetic.labels import COMBINATIONS

SIZE = 64
SLICES = (4, 8)
N_TRAIN, N_VALID = 12, 10


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic") / "MRNet-v1.0"
    summary = make_dataset(out, n_train=N_TRAIN, n_valid=N_VALID, size=SIZE, seed=0, slices=SLICES)
    return out, summary


def read_labels(root: Path, split: str, task: str) -> list[tuple[str, int]]:
    rows = [line.split(",") for line in (root / f"{split}-{task}.csv").read_text().splitlines()]
    return [(case, int(label)) for case, label in rows]


def all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- layout


def test_layout_has_every_series_and_label_file(dataset):
    root, _ = dataset
    expected_ids = {
        "train": [f"{i:04d}" for i in range(N_TRAIN)],
        "valid": [f"{i:04d}" for i in range(N_TRAIN, N_TRAIN + N_VALID)],
    }
    for split in SPLITS:
        for plane in PLANES:
            names = sorted(p.name for p in (root / split / plane).iterdir())
            assert names == [f"{case}.npy" for case in expected_ids[split]]
        for task in TASKS:
            rows = read_labels(root, split, task)
            assert sorted(case for case, _ in rows) == expected_ids[split]
            assert all(len(case) == 4 and case.isdigit() for case, _ in rows)
            assert not (root / f"{split}-{task}.csv").read_text().startswith("case")  # no header


def test_series_are_uint8_full_range_with_mrnet_like_means(dataset):
    root, _ = dataset
    for path in sorted(root.rglob("*.npy")):
        volume = np.load(path)
        assert volume.dtype == np.uint8 and volume.flags["C_CONTIGUOUS"]
        assert volume.ndim == 3 and volume.shape[1:] == (SIZE, SIZE)
        assert SLICES[0] <= volume.shape[0] <= SLICES[1]
        assert volume.min() == 0 and volume.max() == 255
        assert 30 <= volume.mean() <= 85, (path, volume.mean())


def test_slice_counts_differ_between_the_planes_of_an_exam(dataset):
    root, _ = dataset
    distinct = 0
    for case in range(N_TRAIN):
        counts = {np.load(root / "train" / plane / f"{case:04d}.npy", mmap_mode="r").shape[0] for plane in PLANES}
        distinct += len(counts) == 3
    assert distinct >= 0.8 * N_TRAIN


# ----------------------------------------------------------------------------- label files


def test_labels_are_hierarchical_and_both_classes_are_in_each_split(dataset):
    root, summary = dataset
    for split in SPLITS:
        labels = {task: dict(read_labels(root, split, task)) for task in TASKS}
        for case, abnormal in labels["abnormal"].items():
            if not abnormal:
                assert labels["acl"][case] == 0 and labels["meniscus"][case] == 0
        for task in TASKS:
            positives = sum(labels[task].values())
            assert positives >= 2 and len(labels[task]) - positives >= 2, (split, task)
            assert summary[split][task] == positives


def test_valid_split_is_ordered_by_label_combination(dataset):
    root, _ = dataset
    combos = list(
        zip(*([label for _, label in sorted(read_labels(root, "valid", task))] for task in TASKS), strict=True)
    )
    order = [COMBINATIONS.index(c) for c in combos]
    assert order == sorted(order)


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    root, again = tmp_path / "first", tmp_path / "again"
    for out in (root, again):
        make_dataset(out, n_train=3, n_valid=2, size=SIZE, seed=0, slices=SLICES)
    assert all_bytes(again) == all_bytes(root)

    other = tmp_path / "other"
    make_dataset(other, n_train=3, n_valid=2, size=SIZE, seed=1, slices=SLICES)
    for plane in PLANES:
        name = Path("train") / plane / "0000.npy"
        assert (other / name).read_bytes() != (root / name).read_bytes()


def test_an_exam_does_not_depend_on_how_many_were_made(tmp_path):
    few, many = tmp_path / "few", tmp_path / "many"
    make_dataset(few, n_train=2, n_valid=1, size=SIZE, seed=3, slices=SLICES)
    make_dataset(many, n_train=5, n_valid=1, size=SIZE, seed=3, slices=SLICES)
    for case in range(2):
        for plane in PLANES:
            name = Path("train") / plane / f"{case:04d}.npy"
            assert (few / name).read_bytes() == (many / name).read_bytes()


# ----------------------------------------------------------------------------- refusals and errors


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "data"
    make_dataset(out, n_train=4, n_valid=2, size=SIZE, seed=0, slices=SLICES)
    before = all_bytes(out)
    with pytest.raises(FileExistsError, match="overwrite"):
        make_dataset(out, n_train=2, n_valid=2, size=SIZE, seed=1, slices=SLICES)
    assert all_bytes(out) == before

    make_dataset(out, n_train=2, n_valid=2, size=SIZE, seed=1, slices=SLICES, overwrite=True)
    assert sorted(p.name for p in (out / "train" / "axial").iterdir()) == ["0000.npy", "0001.npy"]
    assert len(read_labels(out, "train", "acl")) == 2


def test_writing_into_a_folder_without_a_dataset_is_allowed(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    make_dataset(tmp_path, n_train=1, n_valid=1, size=SIZE, seed=0, slices=SLICES)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 32}, "size"),
        ({"slices": (0, 4)}, "at least 1"),
        ({"slices": (6, 4)}, "above"),
        ({"n_train": 0}, "at least one exam"),
        ({"n_valid": -1}, "at least one exam"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_options_raise_clear_errors_before_writing(tmp_path, kwargs, message):
    options = {"n_train": 2, "n_valid": 2, "size": SIZE, "slices": SLICES} | kwargs
    with pytest.raises(ValueError, match=message):
        make_dataset(tmp_path / "data", **options)
    assert not (tmp_path / "data").exists()
