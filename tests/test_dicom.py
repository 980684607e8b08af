"""DICOM input on real files written with pydicom: order, rescale, window, geometry, plane check, series choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_files import tilted, write_compressed_slice, write_series

from mrnet import PLANES
from mrnet.cli.common import run_cli
from mrnet.cli.predict import main
from mrnet.data.dataset import series_path
from mrnet.data.dicom import DicomOptions, read_dicom_series, series_from_datasets
from mrnet.data.series import SeriesProblem
from mrnet.errors import MRNetError
from mrnet.prediction import PredictConfig, dicom_options, validate_predict_config


@pytest.fixture
def volume() -> np.ndarray:
    """Six 64 px slices with the full 0..255 range and a different mean per slice (order matters)."""
    rng = np.random.default_rng(0)
    slices = rng.integers(0, 200, size=(6, 64, 64)).astype(np.int64) + np.arange(6)[:, None, None] * 10
    slices[0, 0, 0], slices[-1, -1, -1] = 0, 255
    return np.clip(slices, 0, 255).astype(np.uint8)


def test_shuffled_files_with_per_slice_rescale_give_back_the_series(volume, tmp_path):
    write_series(volume, tmp_path / "axial", "axial")
    files = sorted((tmp_path / "axial").iterdir())
    instances = [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in files]
    assert instances != sorted(instances)  # the file names do not follow the slice order
    converted = read_dicom_series(tmp_path / "axial", "axial")
    assert converted.volume.dtype == np.uint8
    # Exact: each slice's own slope and intercept undone, then the header's window 128/256 maps 0..255 onto 0..255.
    assert np.array_equal(converted.volume, volume)
    assert "field of view 160 x 160 mm" in converted.notes[0] and "window 128/256" in converted.notes[0]


def test_window_falls_back_to_percentiles(volume, tmp_path):
    write_series(volume, tmp_path / "s", "sagittal", window=False)
    converted = read_dicom_series(tmp_path / "s", "sagittal")
    assert "percentile" in converted.notes[0]
    assert converted.volume.min() == 0 and converted.volume.max() == 255
    # A monotone map of the original values: the order of intensities is kept.
    assert np.corrcoef(converted.volume.ravel(), volume.ravel())[0, 1] > 0.99


def test_far_field_of_view_is_warned(volume, tmp_path):
    write_series(volume, tmp_path / "c", "coronal", fov_mm=420.0)  # a body coil's field of view
    notes = read_dicom_series(tmp_path / "c", "coronal").notes
    assert any("field of view 420 x 420 mm is far outside a knee protocol" in n for n in notes)


def test_coronal_series_given_as_axial_is_refused_naming_both(volume, tmp_path):
    write_series(volume, tmp_path / "axial", "coronal")
    with pytest.raises(SeriesProblem, match=r"orientation is coronal .* but it is given as axial"):
        read_dicom_series(tmp_path / "axial", "axial")
    allowed = read_dicom_series(tmp_path / "axial", "axial", DicomOptions(ignore_orientation=True))
    assert "warning: the orientation is coronal, used as axial" in allowed.notes[0]
    assert np.array_equal(allowed.volume, volume)


def test_oblique_series_keeps_its_plane(volume, tmp_path):
    write_series(volume, tmp_path / "s", "sagittal", orientation=tilted("sagittal", 15.0))
    converted = read_dicom_series(tmp_path / "s", "sagittal")
    assert converted.info.describe().endswith("sagittal (oblique, 15°))")
    assert np.array_equal(converted.volume, volume)  # positions along the tilted normal still sort the slices


def test_missing_slice_is_noted_and_the_rest_is_used(volume, tmp_path):
    write_series(volume, tmp_path / "a", "axial", skip_slices=[3])
    converted = read_dicom_series(tmp_path / "a", "axial")
    assert np.array_equal(converted.volume, np.delete(volume, 3, axis=0))
    assert any("between slices 2 and 3" in n and "1 slice(s) missing" in n for n in converted.notes)


def test_two_acquisitions_at_one_position_are_refused(volume, tmp_path):
    uid = write_series(volume[:3], tmp_path / "a", "axial", prefix="E1-")
    write_series(volume[:3], tmp_path / "a", "axial", prefix="E2-", series_uid=uid, seed=1)
    with pytest.raises(SeriesProblem, match="share a position"):
        read_dicom_series(tmp_path / "a", "axial")


def test_series_in_one_folder_are_listed_chosen_by_the_user_or_by_orientation(volume, tmp_path):
    exam = tmp_path / "exam"  # a PACS export: every series of the exam below one folder
    write_series(volume, exam / "se1", "sagittal", description="SAG T1", seed=1)
    t2 = write_series(volume[::-1].copy(), exam / "se2", "sagittal", description="SAG PD FS", seed=2)
    write_series(volume, exam / "se3", "coronal", description="COR T1", seed=3)
    with pytest.raises(SeriesProblem, match=r"holds 3 series, 2 of them sagittal") as problem:
        read_dicom_series(exam, "sagittal")
    assert "'SAG T1'" in str(problem.value) and "'SAG PD FS'" in str(problem.value) and "'COR T1'" in str(problem.value)

    by_description = read_dicom_series(exam, "sagittal", DicomOptions({"sagittal": "sag pd fs"}))
    by_uid = read_dicom_series(exam, "sagittal", DicomOptions({"sagittal": t2}))
    assert by_description.info.uid == by_uid.info.uid == t2
    assert np.array_equal(by_uid.volume, volume[::-1])

    coronal = read_dicom_series(exam, "coronal")
    assert coronal.info.description == "COR T1"
    assert "picked" in coronal.notes[0] and "by its orientation" in coronal.notes[0]

    with pytest.raises(SeriesProblem, match="no series matches --series sagittal=AX PD"):
        read_dicom_series(exam, "sagittal", DicomOptions({"sagittal": "AX PD"}))


def test_compressed_transfer_syntax_names_it_and_the_package(tmp_path):
    write_compressed_slice(tmp_path / "axial" / "IM0001")
    with pytest.raises(SeriesProblem) as problem:
        read_dicom_series(tmp_path / "axial", "axial")
    message = str(problem.value)
    assert "'JPEG-LS Lossless Image Compression' (1.2.840.10008.1.2.4.80)" in message
    assert "pylibjpeg-libjpeg" in message and "python-gdcm" in message


def test_folder_without_dicom_files(tmp_path):
    (tmp_path / "axial").mkdir()
    (tmp_path / "axial" / "notes.txt").write_text("not an image")
    with pytest.raises(SeriesProblem, match="no readable DICOM image files"):
        read_dicom_series(tmp_path / "axial", "axial")


def test_series_option_is_plane_equals_id():
    cfg = PredictConfig(series=["sagittal=SAG PD FS", "coronal = 1.2.3"])
    validate_predict_config(cfg)
    assert dicom_options(cfg).series == {"sagittal": "SAG PD FS", "coronal": "1.2.3"}
    with pytest.raises(MRNetError, match=r"--series oblique=1.2: expected PLANE=SeriesInstanceUID"):
        validate_predict_config(PredictConfig(series=["oblique=1.2"]))
    with pytest.raises(MRNetError, match=r"--series axial: expected"):
        validate_predict_config(PredictConfig(series=["axial"]))


def stand_in(z: float, value: int, instance: int, **extra) -> SimpleNamespace:
    header = {
        "ImagePositionPatient": [0.0, 0.0, z],
        "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
        "InstanceNumber": instance,
        "WindowCenter": 100,
        "WindowWidth": 200,
        "PhotometricInterpretation": "MONOCHROME2",
        **extra,
    }
    return SimpleNamespace(pixel_array=np.full((4, 6), value, dtype=np.int16), **header)


def test_rules_on_stand_in_headers_monochrome1_and_padding():
    # Misleading instance numbers: the position decides. MONOCHROME1 shows low values white.
    datasets = [stand_in(2.0, 200, 1), stand_in(0.0, 0, 3), stand_in(1.0, 100, 2)]
    series, notes = series_from_datasets(datasets)
    assert series.shape == (3, 6, 6) and series.dtype == np.uint8
    assert list(series[:, 3, 3]) == [0, 128, 255]  # window 100/200 (DICOM's linear formula)
    assert (series[:, 0, :] == 0).all()  # padding rows above the 4-row image
    assert "pixel spacing unknown" in notes[0]
    inverted, _ = series_from_datasets([stand_in(0.0, 0, 1, PhotometricInterpretation="MONOCHROME1")])
    assert inverted[0, 3, 3] == 255
    with pytest.raises(SeriesProblem, match="colour image"):
        series_from_datasets([stand_in(0.0, 0, 1, PhotometricInterpretation="RGB")])


# ----------------------------------------------------------------------------- predict end to end


def write_dicom_exam(tiny, case: str, root: Path, planes_as: dict[str, str] | None = None) -> Path:
    """The valid exam `case` as three DICOM folders; planes_as puts a plane's series in another plane's folder."""
    for index, plane in enumerate(PLANES):
        volume = np.load(series_path(tiny.data_dir, "valid", plane, case))
        folder = (planes_as or {}).get(plane, plane)
        write_series(volume, root / folder, plane, seed=index)
    return root


def predict(args: list[str], out: Path) -> pd.DataFrame:
    return main([*args, "--out", str(out), "--device", "cpu"]).set_index("case")


@pytest.mark.slow
def test_dicom_exam_predicts_as_its_npy_files(tiny, tmp_path):
    case = sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))[0]
    npy = predict(
        ["--models-dir", str(tiny.models_dir)]
        + [a for p in PLANES for a in (f"--{p}", str(series_path(tiny.data_dir, "valid", p, case)))],
        tmp_path / "npy",
    )
    exam = write_dicom_exam(tiny, case, tmp_path / "knee")
    dicom = predict(["--models-dir", str(tiny.models_dir), "--exam-dir", str(exam)], tmp_path / "dicom")
    assert np.abs(dicom.to_numpy() - npy.to_numpy()).max() < 0.01
    notes = json.loads((tmp_path / "dicom" / "predictions.json").read_text())["exams"][0]["input_notes"]
    assert len(notes) == 3 and all("field of view 160 x 160 mm" in n for n in notes)

    flat = tmp_path / "export"  # the same series, all below one folder: planes chosen by orientation
    shutil.copytree(exam, flat / "DICOM")
    by_orientation = predict(["--models-dir", str(tiny.models_dir), "--exam-dir", str(flat)], tmp_path / "flat")
    assert np.abs(by_orientation.to_numpy() - npy.to_numpy()).max() < 0.01


@pytest.mark.slow
def test_swapped_dicom_folders_are_refused_naming_the_orientation(tiny, tmp_path, capsys):
    case = sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))[0]
    exam = write_dicom_exam(tiny, case, tmp_path / "knee", planes_as={"coronal": "axial", "axial": "coronal"})
    with pytest.raises(SystemExit) as stop:
        run_cli(main, ["--models-dir", str(tiny.models_dir), "--exam-dir", str(exam), "--out", str(tmp_path / "o")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"{exam / 'axial'} (knee, axial): the series' orientation is coronal" in err
    assert f"{exam / 'coronal'} (knee, coronal): the series' orientation is axial" in err
    assert "--ignore-orientation" in err
    assert not (tmp_path / "o").exists()


def _edit_headers(folder: Path, **values: object) -> None:
    """Rewrite every file of a series with some header attributes changed (None deletes one)."""
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        for name, value in values.items():
            if value is None:
                if name in ds:
                    delattr(ds, name)
            else:
                setattr(ds, name, value)
        ds.save_as(path, enforce_file_format=True)


def test_series_without_orientation_is_refused_for_a_plane_unless_overridden(volume, tmp_path):
    write_series(volume, tmp_path / "exam", "sagittal")
    _edit_headers(tmp_path / "exam", ImageOrientationPatient=None)
    for plane in PLANES:  # before: the one series was scored by all three planes' models, with a note
        with pytest.raises(SeriesProblem, match="no usable ImageOrientationPatient"):
            read_dicom_series(tmp_path / "exam", plane)
    allowed = read_dicom_series(tmp_path / "exam", "sagittal", DicomOptions(ignore_orientation=True))
    assert any("--ignore-orientation" in note for note in allowed.notes)


def test_an_all_zero_orientation_is_unknown_not_oblique(volume, tmp_path):
    write_series(volume, tmp_path / "a", "axial")
    _edit_headers(tmp_path / "a", ImageOrientationPatient=[0.0] * 6)
    with pytest.raises(SeriesProblem) as problem:
        read_dicom_series(tmp_path / "a", "axial")
    assert "no usable ImageOrientationPatient" in str(problem.value)
    assert "oblique" not in str(problem.value) and "share a position" not in str(problem.value)
    # With the override the slices are ordered by InstanceNumber, not by a zero normal.
    allowed = read_dicom_series(tmp_path / "a", "axial", DicomOptions(ignore_orientation=True))
    assert np.array_equal(allowed.volume, volume)


def test_a_non_numeric_instance_number_without_positions_is_no_traceback(volume, tmp_path):
    write_series(volume, tmp_path / "a", "axial")
    _edit_headers(tmp_path / "a", ImagePositionPatient=None)
    first = sorted((tmp_path / "a").iterdir())[0]
    ds = pydicom.dcmread(first)
    ds["InstanceNumber"].VR = "LO"  # a hand-edited export: the number is text
    ds.InstanceNumber = "ab"
    ds.save_as(first, enforce_file_format=True)
    converted = read_dicom_series(tmp_path / "a", "axial")
    assert any("file-name order" in note for note in converted.notes)


def test_control_characters_in_a_description_do_not_reach_the_terminal(volume, tmp_path):
    write_series(volume, tmp_path / "exam" / "s1", "sagittal", description="SAG\x1b[2J\x1b[8mHIDDEN", seed=1)
    write_series(volume, tmp_path / "exam" / "s2", "sagittal", description="SAG 2", seed=2)
    with pytest.raises(SeriesProblem) as problem:
        read_dicom_series(tmp_path / "exam", "sagittal")
    message = str(problem.value)
    assert "\x1b" not in message and "SAG\\x1b[2J\\x1b[8mHIDDEN" in message


@pytest.mark.parametrize("slope", ["NaN", "inf"])
def test_a_non_finite_rescale_slope_is_refused_naming_the_file(volume, tmp_path, slope):
    write_series(volume, tmp_path / "a", "axial")
    target = sorted((tmp_path / "a").iterdir())[2]
    ds = pydicom.dcmread(target)
    ds.RescaleSlope = slope
    ds.save_as(target, enforce_file_format=True)
    with pytest.raises(SeriesProblem, match=rf"{target.name}: RescaleSlope .* is not a finite number"):
        read_dicom_series(tmp_path / "a", "axial")


def test_rle_lossless_files_are_read_without_an_extra_package(volume, tmp_path):
    from pydicom.uid import RLELossless

    write_series(volume, tmp_path / "axial", "axial")
    for path in (tmp_path / "axial").iterdir():
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)  # pydicom's own RLE encoder
        ds.save_as(path, enforce_file_format=True)
    assert str(pydicom.dcmread(next((tmp_path / "axial").iterdir())).file_meta.TransferSyntaxUID) == RLELossless
    converted = read_dicom_series(tmp_path / "axial", "axial")
    np.testing.assert_array_equal(converted.volume, volume)
