"""Which exams a prediction is asked for: one id per exam, CSV input, and series that cannot be told apart."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_files import write_series

from mrnet import PLANES
from mrnet.data.exams import ExamInput, check_inputs, exams_from_csv, unique_case_ids
from mrnet.errors import MRNetError
from mrnet.viewer.page import page_names


def _exams(*cases: str) -> list[ExamInput]:
    return [ExamInput(case, {}) for case in cases]


def test_ids_are_unique_by_construction_even_against_an_exam_named_like_a_suffix():
    # Before: the second `a` became `a-2` and collided with the real `a-2`.
    cases = [e.case for e in unique_case_ids(_exams("a", "a", "a-2"))]
    assert cases == ["a", "a-3", "a-2"]
    assert len({e.case.lower() for e in unique_case_ids(_exams("Knee", "knee", "KNEE"))}) == 3


def test_the_viewer_index_cannot_be_an_exam():
    cases = [e.case for e in unique_case_ids(_exams("index", "Index"))]
    assert all(c.lower() != "index" for c in cases) and len(set(cases)) == 2
    names = page_names(["index", "INDEX", "a"])
    assert "index.html" not in {n.lower() for n in names.values()} and len(set(names.values())) == 3


def _npy_exam(folder, value=None, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for plane in PLANES:
        series = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) if value is None else np.full((3, 64, 64), value)
        np.save(folder / f"{plane}.npy", series.astype(np.uint8))
    return folder


def test_csv_paths_are_read_as_csv_quotes_and_commas_included(tmp_path):
    folder = _npy_exam(tmp_path / "knee, left")
    rows = "".join(f'"{folder / (p + ".npy")}",extra\n' for p in PLANES)
    (tmp_path / "in.csv").write_text(rows)
    (exam,) = exams_from_csv(tmp_path / "in.csv")
    assert exam.sources["sagittal"] == folder / "sagittal.npy"
    check_inputs([exam])


def test_a_series_with_one_grey_value_is_refused(tmp_path):
    folder = _npy_exam(tmp_path / "b", value=0)
    exam = ExamInput("blank", {p: folder / f"{p}.npy" for p in PLANES})
    with pytest.raises(MRNetError, match=r"blank, axial\): every pixel has one grey value \(0\)"):
        check_inputs([exam])


def test_one_series_given_for_two_planes_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    volume = rng.integers(0, 256, (5, 64, 64), dtype=np.uint8)
    write_series(volume, tmp_path / "exam", "sagittal")
    exam = ExamInput("e", {p: tmp_path / "exam" for p in PLANES})
    with pytest.raises(MRNetError, match=r"no usable|orientation is sagittal"):
        check_inputs([exam])
    npy = _npy_exam(tmp_path / "n")
    twice = ExamInput("t", {"axial": npy / "axial.npy", "coronal": npy / "axial.npy", "sagittal": npy / "sagittal.npy"})
    with pytest.raises(MRNetError, match=r"\(t, coronal\): the same series is also given as axial"):
        check_inputs([twice])
