"""Series and label files beyond the basic checks: each reported by name, none hangs or gives a traceback."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mrnet.data.dataset import check_and_load, parse_labels
from mrnet.data.exams import exams_from_csv, exams_from_inputs
from mrnet.errors import DataError


def problems_of(data) -> str:
    with pytest.raises(DataError) as caught:
        check_and_load(data, tasks=("acl",), planes=("sagittal",))
    return str(caught.value)


def test_label_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "train-acl.csv"
    path.write_bytes(b"\xef\xbb\xbf0000,1\r\n0001,0\r\n")
    table, problems = parse_labels(path)
    assert problems == [] and table["case"].tolist() == ["0000", "0001"]


def test_huge_csv_field_is_a_problem_not_a_traceback(tmp_path):
    path = tmp_path / "train-acl.csv"
    path.write_text("0000,1\n" + '"' + "x" * 200_000 + '",1\n')
    _, problems = parse_labels(path)
    assert problems and "line 2: cannot be read as CSV" in problems[0]


def test_pickled_npy_is_named_as_such(tiny_data):
    path = tiny_data / "train" / "sagittal" / "0001.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "train/sagittal/0001.npy: holds pickled Python objects" in problems_of(tiny_data)


def test_header_claiming_gigabytes_is_truncated_not_a_memory_error(tiny_data):
    path = tiny_data / "train" / "sagittal" / "0001.npy"
    with open(path, "wb") as handle:  # a corrupted header: 30 GiB declared, a few bytes present
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "|u1", "fortran_order": False, "shape": (30000, 1024, 1024)}
        )
        handle.write(b"\0" * 100)
    message = problems_of(tiny_data)
    assert "train/sagittal/0001.npy: truncated or corrupt: its header declares shape (30000, 1024, 1024)" in message
    assert "29.3 GiB" in message


def test_fifo_named_npy_does_not_hang(tiny_data):
    path = tiny_data / "train" / "sagittal" / "0001.npy"
    path.unlink()
    os.mkfifo(path)
    assert "train/sagittal/0001.npy: is not a regular file" in problems_of(tiny_data)


def test_mixed_slice_sizes_are_reported_up_front(tiny_data):
    for case in ("0001", "0014"):
        split = "train" if case == "0001" else "valid"
        path = tiny_data / split / "sagittal" / f"{case}.npy"
        np.save(path, np.load(path).repeat(2, axis=1).repeat(2, axis=2))
    message = problems_of(tiny_data)
    assert "sagittal: series of different slice sizes" in message
    assert "128x128: 2 series (train/0001, valid/0014)" in message


def test_same_case_in_train_and_valid_is_flagged(tiny_data):
    for task in ("abnormal", "acl", "meniscus"):
        path = tiny_data / f"valid-{task}.csv"
        path.write_text(path.read_text().replace("0012,", "0003,", 1))
    for plane in ("axial", "coronal", "sagittal"):
        (tiny_data / "valid" / plane / "0012.npy").rename(tiny_data / "valid" / plane / "0003.npy")
    assert "case ids in both train and valid: 0003" in problems_of(tiny_data)


def test_input_csv_with_a_byte_order_mark(tiny_data, tmp_path):
    rows = [str(tiny_data / "valid" / p / "0012.npy") for p in ("axial", "coronal", "sagittal")]
    listing = tmp_path / "paths.csv"
    listing.write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode())
    (exam,) = exams_from_csv(listing)
    assert exam.case == "0012" and exam.sources["axial"].is_file()


def test_a_case_id_cannot_leave_the_heatmap_folder(tmp_path):
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    files = [folder / "...npy"] * 3  # the stem is '..'
    (exam,) = exams_from_inputs([str(f) for f in files], None, None)
    assert exam.case not in ("..", ".") and "/" not in exam.case and not exam.case.startswith(".")
