"""Reading the MRNet layout and every data check (one test per row of the docs' bad-input table)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mrnet.data.dataset import check_and_load, parse_labels
from mrnet.data.series import SeriesProblem, load_series
from mrnet.errors import DataError


def problems_of(data_dir: Path, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        check_and_load(data_dir, **kwargs)
    return str(err.value)


def test_reads_layout_with_zero_padded_string_ids(tiny_data):
    data = check_and_load(tiny_data)
    train = data[("train", "sagittal")]
    assert train.cases[:3] == ["0000", "0001", "0002"]
    assert data[("valid", "axial")].cases[0] == "0012"
    assert train.labels_for("acl").tolist()[:4] == [0, 1, 0, 1]
    series = train.series["0001"]
    assert series.dtype == np.uint8 and series.ndim == 3 and series.shape[1:] == (64, 64)


def test_slice_counts_may_differ_between_planes(tiny_data):
    data = check_and_load(tiny_data)
    planes = ("axial", "coronal", "sagittal")
    counts = {p: data[("train", p)].series["0003"].shape[0] for p in planes}
    on_disk = {p: np.load(tiny_data / "train" / p / "0003.npy").shape[0] for p in planes}
    assert len(set(on_disk.values())) == 3  # the exam really has three different counts
    assert counts == on_disk  # each plane keeps its own count: nothing cut or padded to a common one


def test_ids_without_padding_in_csv_are_padded(tiny_data):
    (tiny_data / "train-acl.csv").write_text("\n".join(f"{i},{i % 2}" for i in range(12)) + "\n")
    data = check_and_load(tiny_data, tasks=("acl",))
    assert data[("train", "axial")].cases[0] == "0000"


def test_missing_data_dir(tmp_path):
    assert "does not exist" in problems_of(tmp_path / "nowhere")


def test_missing_plane_folder(tiny_data):
    shutil.rmtree(tiny_data / "valid" / "coronal")
    assert "valid/coronal/: folder is missing" in problems_of(tiny_data)


def test_missing_label_file(tiny_data):
    (tiny_data / "train-meniscus.csv").unlink()
    assert "train-meniscus.csv: missing" in problems_of(tiny_data)


def test_case_in_csv_without_npy(tiny_data):
    (tiny_data / "train" / "axial" / "0005.npy").unlink()
    message = problems_of(tiny_data)
    assert "train/axial/" in message and "0005" in message


def test_case_present_in_one_plane_absent_in_another(tiny_data):
    (tiny_data / "valid" / "sagittal" / "0013.npy").unlink()
    message = problems_of(tiny_data)
    assert "valid/sagittal/" in message and "0013" in message
    assert "valid/axial" not in message


def test_truncated_npy(tiny_data):
    path = tiny_data / "train" / "coronal" / "0002.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = problems_of(tiny_data)
    assert "train/coronal/0002.npy" in message and "truncated or corrupt" in message


def test_corrupt_npy(tiny_data):
    (tiny_data / "train" / "coronal" / "0003.npy").write_bytes(b"not an array at all")
    assert "train/coronal/0003.npy: truncated or corrupt" in problems_of(tiny_data)


def test_truncated_npy_is_caught_by_header_only_check(tiny_data):
    path = tiny_data / "train" / "axial" / "0004.npy"
    path.write_bytes(path.read_bytes()[:-100])
    assert "train/axial/0004.npy" in problems_of(tiny_data, load=False)


def test_colour_axis(tiny_data):
    np.save(tiny_data / "train" / "sagittal" / "0001.npy", np.zeros((4, 64, 64, 3), np.uint8))
    message = problems_of(tiny_data)
    assert "train/sagittal/0001.npy" in message and "colour axis" in message


@pytest.mark.parametrize(
    "shape,phrase",
    [
        ((0, 64, 64), "0 slices"),
        ((4, 64, 80), "square"),
        ((4, 32, 32), "at least 64x64"),
        ((64, 64), "2 dimensions"),
    ],
)
def test_bad_shapes(tiny_data, shape, phrase):
    np.save(tiny_data / "valid" / "axial" / "0012.npy", np.zeros(shape, np.uint8))
    message = problems_of(tiny_data)
    assert "valid/axial/0012.npy" in message and phrase in message


def test_float_with_fractions_is_refused(tiny_data):
    np.save(tiny_data / "train" / "axial" / "0000.npy", np.random.default_rng(0).random((4, 64, 64)))
    message = problems_of(tiny_data)
    assert "train/axial/0000.npy" in message and "fractional" in message and "uint8" in message


def test_nan_and_inf_are_refused(tiny_data):
    volume = np.zeros((4, 64, 64), np.float32)
    volume[0, 0, 0] = np.nan
    volume[1, 0, 0] = np.inf
    np.save(tiny_data / "train" / "axial" / "0000.npy", volume)
    message = problems_of(tiny_data)
    assert "train/axial/0000.npy" in message and "2 NaN/inf" in message


def test_int16_out_of_range_is_refused(tiny_data):
    np.save(tiny_data / "train" / "axial" / "0000.npy", np.full((4, 64, 64), 1000, np.int16))
    message = problems_of(tiny_data)
    assert "int16" in message and "outside 0..255" in message


def test_lossless_conversions_are_accepted(tmp_path):
    for dtype in (np.int16, np.float32, np.float64, np.uint16):
        volume = np.arange(4 * 64 * 64).reshape(4, 64, 64) % 256
        np.save(tmp_path / "v.npy", volume.astype(dtype))
        loaded = load_series(tmp_path / "v.npy")
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded, volume.astype(np.uint8))


def test_load_series_missing_file(tmp_path):
    with pytest.raises(SeriesProblem, match="missing"):
        load_series(tmp_path / "absent.npy")


def test_label_not_binary(tiny_data):
    (tiny_data / "train-acl.csv").write_text("0000,0\n0001,2\n")
    message = problems_of(tiny_data, tasks=("acl",))
    assert "train-acl.csv, line 2" in message and "'2'" in message


def test_header_line(tiny_data):
    text = (tiny_data / "valid-meniscus.csv").read_text()
    (tiny_data / "valid-meniscus.csv").write_text("case,label\n" + text)
    message = problems_of(tiny_data)
    assert "valid-meniscus.csv, line 1" in message and "header" in message


def test_duplicate_ids(tiny_data):
    text = (tiny_data / "train-abnormal.csv").read_text()
    (tiny_data / "train-abnormal.csv").write_text(text + "0003,1\n")
    message = problems_of(tiny_data)
    assert "train-abnormal.csv: duplicate case ids 0003" in message


def test_label_files_disagree_on_cases(tiny_data):
    lines = (tiny_data / "train-acl.csv").read_text().splitlines()
    (tiny_data / "train-acl.csv").write_text("\n".join(lines[:-1]) + "\n")
    message = problems_of(tiny_data)
    assert "label files list different cases" in message and "0011" in message


def test_empty_split(tiny_data):
    for task in ("abnormal", "acl", "meniscus"):
        (tiny_data / f"valid-{task}.csv").write_text("")
    assert "valid-acl.csv: no cases" in problems_of(tiny_data)


def test_all_problems_reported_together(tiny_data):
    path = tiny_data / "train" / "axial" / "0001.npy"
    path.write_bytes(path.read_bytes()[:50])
    text = (tiny_data / "train-acl.csv").read_text()
    (tiny_data / "train-acl.csv").write_text("case,label\n" + text)
    message = problems_of(tiny_data)
    assert "train/axial/0001.npy" in message and "train-acl.csv, line 1" in message
    assert "2 problems" in message


def test_parse_labels_keeps_ids_as_strings(tmp_path):
    path = tmp_path / "train-acl.csv"
    path.write_text("0007,1\n0010,0\n")
    table, problems = parse_labels(path)
    assert problems == []
    assert table["case"].tolist() == ["0007", "0010"]
    assert table["label"].tolist() == [1, 0]
