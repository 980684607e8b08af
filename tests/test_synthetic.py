"""Synthetic MRNet exams: layout, determinism, labels, and findings that are real and plane-dependent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mrnet import PLANES, SPLITS, TASKS
from mrnet import synthetic as synth

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
SLICES = (4, 8)
N_TRAIN, N_VALID = 12, 10


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic") / "MRNet-v1.0"
    summary = synth.make_dataset(out, n_train=N_TRAIN, n_valid=N_VALID, size=SIZE, seed=0, slices=SLICES)
    return out, summary


def read_labels(root: Path, split: str, task: str) -> list[tuple[str, int]]:
    rows = [line.split(",") for line in (root / f"{split}-{task}.csv").read_text().splitlines()]
    return [(case, int(label)) for case, label in rows]


def all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- layout


def test_layout_has_every_series_and_label_file(dataset):
    root, _ = dataset
    expected_ids = {"train": [f"{i:04d}" for i in range(N_TRAIN)],
                    "valid": [f"{i:04d}" for i in range(N_TRAIN, N_TRAIN + N_VALID)]}
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


def test_real_slice_ranges_by_default():
    rng = np.random.default_rng(0)
    draws = [synth.draw_slice_counts(rng, None) for _ in range(400)]
    for plane, (lo, hi) in synth.REAL_SLICE_RANGES.items():
        counts = np.array([d[plane] for d in draws])
        assert counts.min() >= lo and counts.max() <= hi
        assert 28 <= counts.mean() <= 35
    assert np.mean([len(set(d.values())) == 3 for d in draws]) > 0.95


# ----------------------------------------------------------------------------- labels


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
    combos = list(zip(*(
        [label for _, label in sorted(read_labels(root, "valid", task))] for task in TASKS)))
    order = [synth.COMBINATIONS.index(c) for c in combos]
    assert order == sorted(order)


def test_label_combinations_follow_mrnet_frequencies():
    combos = [synth.draw_case_labels(0, i) for i in range(3000)]
    freq = np.mean(combos, axis=0)
    assert abs(freq[0] - 913 / 1130) < 0.03
    assert abs(freq[1] - 208 / 1130) < 0.03
    assert abs(freq[2] - 397 / 1130) < 0.03
    assert set(combos) <= set(synth.COMBINATIONS)


def test_small_splits_are_balanced_for_every_seed():
    for seed in range(30):
        combos = synth.draw_split_labels(seed, 0, 10, ordered=False)
        counts = np.array(combos).sum(axis=0)
        assert np.all(counts >= 2) and np.all(10 - counts >= 2), (seed, combos)


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_and_another_seed_differs(dataset, tmp_path):
    root, _ = dataset
    again = tmp_path / "again"
    synth.make_dataset(again, n_train=N_TRAIN, n_valid=N_VALID, size=SIZE, seed=0, slices=SLICES)
    assert all_bytes(again) == all_bytes(root)

    other = tmp_path / "other"
    synth.make_dataset(other, n_train=3, n_valid=2, size=SIZE, seed=1, slices=SLICES)
    for plane in PLANES:
        assert (other / "train" / plane / "0000.npy").read_bytes() != (root / "train" / plane / "0000.npy").read_bytes()


def test_an_exam_does_not_depend_on_how_many_were_made(tmp_path):
    few, many = tmp_path / "few", tmp_path / "many"
    synth.make_dataset(few, n_train=5, n_valid=1, size=SIZE, seed=3, slices=SLICES)
    synth.make_dataset(many, n_train=10, n_valid=1, size=SIZE, seed=3, slices=SLICES)
    for case in range(5):
        for plane in PLANES:
            name = Path("train") / plane / f"{case:04d}.npy"
            assert (few / name).read_bytes() == (many / name).read_bytes()


def test_make_exam_accepts_a_seed_or_a_generator():
    by_seed = synth.make_exam([7, 1], (1, 0, 1), size=SIZE, slices=SLICES)
    by_rng = synth.make_exam(np.random.default_rng([7, 1]), (1, 0, 1), size=SIZE, slices=SLICES)
    for plane in PLANES:
        np.testing.assert_array_equal(by_seed[plane], by_rng[plane])


# ----------------------------------------------------------------------------- findings


def test_masks_cover_the_series_and_mark_only_planted_findings():
    series, masks = synth.make_exam(0, (0, 0, 0), size=SIZE, slices=SLICES, return_masks=True)
    for plane in PLANES:
        assert set(masks[plane]) == set(synth.FINDINGS) | set(TASKS)
        for mask in masks[plane].values():
            assert mask.dtype == bool and mask.shape == series[plane].shape
            assert not mask.any()  # a normal exam has no lesion anywhere

    series, masks = synth.make_exam(0, (1, 1, 1), size=SIZE, slices=(8, 12), return_masks=True)
    assert masks["sagittal"]["acl"].any() and masks["coronal"]["meniscus"].any()
    for plane in PLANES:
        assert masks[plane]["abnormal"].any()
        assert not (masks[plane]["acl"] & ~masks[plane]["abnormal"]).any()


def test_a_tear_changes_only_its_own_exam_region():
    """Anatomy, pose and noise come from their own streams: with and without a tear differ only near it."""
    with_tear, masks = synth.make_exam(4, (1, 1, 0), size=SIZE, slices=(8, 12), return_masks=True)
    without = synth.make_exam(4, (1, 0, 0), size=SIZE, slices=(8, 12))
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


def lesion_change(seed: int, labels: tuple[int, int, int], baseline: tuple[int, int, int], task: str) -> dict:
    """Per plane: mean |exam with lesion - same exam without| inside the lesion mask, in units of
    the series' standard deviation (how much the lesion stands out against that series' contrast)."""
    lesion, masks = synth.make_exam(seed, labels, size=SIZE, slices=(8, 12), return_masks=True)
    plain = synth.make_exam(seed, baseline, size=SIZE, slices=(8, 12))
    change = {}
    for plane in PLANES:
        mask = masks[plane][task]
        diff = np.abs(lesion[plane].astype(float) - plain[plane].astype(float))
        change[plane] = float(diff[mask].mean() / lesion[plane].std()) if mask.any() else 0.0
    return change


def surround_contrast(seed: int, labels: tuple[int, int, int], task: str) -> dict:
    """Per plane: |mean inside the lesion - mean of a 2-pixel ring around it| / series std."""
    series, masks = synth.make_exam(seed, labels, size=SIZE, slices=(8, 12), return_masks=True)
    contrast = {}
    for plane in PLANES:
        mask = masks[plane][task]
        ring = dilate(mask, 2) & ~mask
        image = series[plane].astype(float)
        contrast[plane] = float(abs(image[mask].mean() - image[ring].mean()) / image.std()) if mask.any() else 0.0
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


# ----------------------------------------------------------------------------- refusals and errors


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "data"
    synth.make_dataset(out, n_train=4, n_valid=2, size=SIZE, seed=0, slices=SLICES)
    before = all_bytes(out)
    with pytest.raises(FileExistsError, match="overwrite"):
        synth.make_dataset(out, n_train=2, n_valid=2, size=SIZE, seed=1, slices=SLICES)
    assert all_bytes(out) == before

    synth.make_dataset(out, n_train=2, n_valid=2, size=SIZE, seed=1, slices=SLICES, overwrite=True)
    assert sorted(p.name for p in (out / "train" / "axial").iterdir()) == ["0000.npy", "0001.npy"]
    assert len(read_labels(out, "train", "acl")) == 2


def test_writing_into_a_folder_without_a_dataset_is_allowed(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    synth.make_dataset(tmp_path, n_train=1, n_valid=1, size=SIZE, seed=0, slices=SLICES)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 32}, "size"),
    ({"slices": (0, 4)}, "at least 1"),
    ({"slices": (6, 4)}, "above"),
    ({"n_train": 0}, "at least one exam"),
    ({"n_valid": -1}, "at least one exam"),
    ({"seed": -1}, "seed"),
])
def test_bad_options_raise_clear_errors_before_writing(tmp_path, kwargs, message):
    options = {"n_train": 2, "n_valid": 2, "size": SIZE, "slices": SLICES} | kwargs
    with pytest.raises(ValueError, match=message):
        synth.make_dataset(tmp_path / "data", **options)
    assert not (tmp_path / "data").exists()


def test_tear_without_abnormal_is_rejected():
    with pytest.raises(ValueError, match="abnormal"):
        synth.make_exam(0, (0, 1, 0), size=SIZE, slices=SLICES)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_a_dataset_and_reports_positives(tmp_path):
    done = run_cli("--out", str(tmp_path / "d"), "--train", "3", "--valid", "2", "--size", "64", "--slices", "3", "4")
    assert done.returncode == 0, done.stderr
    assert "wrote 5 synthetic exams" in done.stdout
    assert "abnormal" in done.stdout and "meniscus" in done.stdout
    assert (tmp_path / "d" / "valid" / "coronal" / "0004.npy").is_file()

    refused = run_cli("--out", str(tmp_path / "d"), "--train", "3", "--valid", "2", "--size", "64")
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize("args", [["--size", "32"], ["--slices", "5", "2"]])
def test_cli_bad_options_exit_2_without_traceback(tmp_path, args):
    done = run_cli("--out", str(tmp_path / "d"), *args)
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
