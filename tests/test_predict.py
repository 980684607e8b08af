"""Predicting new exams: every input form, the outputs, size handling and clear errors."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from tiny_models import SIZE

from mrnet import PLANES, TASKS
from mrnet.cli.common import run_cli
from mrnet.cli.predict import main
from mrnet.data.dataset import series_path
from mrnet.data.dicom import series_from_datasets
from mrnet.data.exams import plane_named_in
from mrnet.data.series import resize_series
from mrnet.ensemble import load_ensemble
from mrnet.errors import MRNetError

ROOT = Path(__file__).resolve().parents[1]
PROBABILITIES = [f"{t}_{c}" for t in TASKS for c in (*PLANES, "ensemble")]
COLUMNS = ["case"] + [f"{t}_{c}" for t in TASKS for c in (*PLANES, "ensemble", "threshold", "positive")]


def valid_cases(tiny) -> list[str]:
    return sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))


def plane_args(tiny, case: str) -> list[str]:
    return [arg for p in PLANES for arg in (f"--{p}", str(series_path(tiny.data_dir, "valid", p, case)))]


def training_predictions(tiny) -> pd.DataFrame:
    """The valid-split probabilities train_meta wrote, one row per (task, case)."""
    return pd.read_csv(tiny.models_dir / "ensemble_valid_predictions.csv", dtype={"case": str})


def test_three_files_give_csv_and_json(tiny, tmp_path, capsys):
    case = valid_cases(tiny)[0]
    table = main(
        ["--models-dir", str(tiny.models_dir), *plane_args(tiny, case), "--out", str(tmp_path), "--device", "cpu"]
    )
    printed = capsys.readouterr().out
    assert case in printed and "ensemble" in printed and "threshold" in printed
    assert "Youden's J on tune" in printed

    saved = pd.read_csv(tmp_path / "predictions.csv", dtype={"case": str})
    assert list(saved.columns) == COLUMNS
    assert list(saved["case"]) == [case]
    probs = saved[PROBABILITIES].to_numpy()
    assert ((probs > 0) & (probs < 1)).all()
    assert np.allclose(probs, table[PROBABILITIES].to_numpy(), atol=1e-6)
    for task in TASKS:  # the call is the ensemble probability against the threshold train_meta chose on tune
        threshold = load_ensemble(tiny.models_dir / f"ensemble-{task}.joblib")["thresholds"]["ensemble"]["threshold"]
        assert saved[f"{task}_threshold"].iloc[0] == pytest.approx(threshold)
        assert saved[f"{task}_positive"].iloc[0] == int(saved[f"{task}_ensemble"].iloc[0] >= threshold)

    payload = json.loads((tmp_path / "predictions.json").read_text())
    exam = payload["exams"][0]
    assert exam["case"] == case
    assert set(exam["probabilities"]) == set(TASKS)
    assert set(exam["probabilities"]["acl"]) == {*PLANES, "ensemble"}
    assert set(exam["operating_points"]["acl"]) == {"threshold", "positive"}
    assert (tmp_path / "predict_config.json").is_file()


def test_exam_folder_input(tiny, valid_run, tmp_path):
    case = valid_cases(tiny)[1]
    folder = tmp_path / "knee-07"
    folder.mkdir()
    for plane in PLANES:
        shutil.copy(series_path(tiny.data_dir, "valid", plane, case), folder / f"{plane}.npy")
    table = main(
        [
            "--models-dir",
            str(tiny.models_dir),
            "--exam-dir",
            str(folder),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    assert list(table["case"]) == ["knee-07"]
    assert np.allclose(table[PROBABILITIES].to_numpy()[0], valid_run[1].loc[case, PROBABILITIES].to_numpy())


@pytest.fixture(scope="module")
def valid_run(tiny, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """Every valid exam through the competition's input format (rows sagittal, coronal, axial)."""
    out = tmp_path_factory.mktemp("valid-run")
    rows = [str(series_path(tiny.data_dir, "valid", p, c)) for c in valid_cases(tiny) for p in reversed(PLANES)]
    listing = out / "valid-paths.csv"
    listing.write_text("\n".join(rows) + "\n")
    table = main(
        [
            "--models-dir",
            str(tiny.models_dir),
            "--input-csv",
            str(listing),
            "--out",
            str(out / "out"),
            "--device",
            "cpu",
        ]
    )
    return out / "out", table.set_index("case")


def test_competition_csv_matches_training_predictions(tiny, valid_run):
    out, table = valid_run
    cases = valid_cases(tiny)
    assert list(table.index) == cases  # each row's plane was read from its path, not its position

    expected = training_predictions(tiny)
    for task in TASKS:
        part = expected[expected["task"] == task].set_index("case").loc[cases]
        for column in (*PLANES, "ensemble"):
            assert np.allclose(table[f"{task}_{column}"], part[column], atol=2e-6), (task, column)

    competition = pd.read_csv(out / "competition.csv", header=None)
    assert competition.shape == (len(cases), 3)
    assert np.allclose(competition.to_numpy(), table[[f"{t}_ensemble" for t in TASKS]].to_numpy())


def test_csv_without_plane_names_is_read_axial_coronal_sagittal(tiny, valid_run, tmp_path):
    case = valid_cases(tiny)[2]
    rows = []
    for letter, plane in zip("abc", PLANES, strict=True):
        target = tmp_path / letter / f"{case}.npy"  # paths that do not name the plane
        target.parent.mkdir()
        shutil.copy(series_path(tiny.data_dir, "valid", plane, case), target)
        rows.append(str(target))
    listing = tmp_path / "paths.csv"
    listing.write_text("\n".join(rows) + "\n")
    table = main(
        [
            "--models-dir",
            str(tiny.models_dir),
            "--input-csv",
            str(listing),
            "--out",
            str(tmp_path / "a"),
            "--device",
            "cpu",
        ]
    )
    assert list(table["case"]) == [case]
    assert np.allclose(table[PROBABILITIES].to_numpy()[0], valid_run[1].loc[case, PROBABILITIES].to_numpy())


def test_larger_series_are_resized_with_a_warning(tiny, tmp_path, capsys):
    case = valid_cases(tiny)[0]
    files = {}
    for plane in PLANES:
        series = np.load(series_path(tiny.data_dir, "valid", plane, case))
        files[plane] = tmp_path / f"{plane}-big.npy"
        np.save(files[plane], series.repeat(2, axis=1).repeat(2, axis=2))  # 128 px
    main(
        [
            "--models-dir",
            str(tiny.models_dir),
            *[a for p in PLANES for a in (f"--{p}", str(files[p]))],
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    for plane in PLANES:
        assert f"{files[plane]}: slices are 128x128 but the model was trained on {SIZE}x{SIZE}" in err


def test_resize_series_shape_and_type():
    series = np.random.default_rng(0).integers(0, 256, size=(3, 128, 128), dtype=np.uint8)
    small = resize_series(series, 64)
    assert small.shape == (3, 64, 64) and small.dtype == np.uint8
    flat = np.full((2, 80, 80), 77, dtype=np.uint8)
    assert (resize_series(flat, 64) == 77).all()


def test_bad_input_exits_2_naming_the_file(tiny, tmp_path, capsys):
    case = valid_cases(tiny)[0]
    bad = tmp_path / "coronal-bad.npy"
    np.save(bad, np.random.default_rng(0).random((4, SIZE, SIZE)))  # float intensities, not uint8
    args = plane_args(tiny, case)
    args[args.index("--coronal") + 1] = str(bad)
    with pytest.raises(SystemExit) as stop:
        run_cli(main, ["--models-dir", str(tiny.models_dir), *args, "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "fractional" in err
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_missing_models_dir_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(MRNetError, match=r"models folder .* does not exist"):
        main(["--models-dir", str(tmp_path / "none"), *plane_args(tiny, valid_cases(tiny)[0]), "--device", "cpu"])


def test_task_without_models_is_skipped(tiny, tmp_path, capsys):
    partial = tmp_path / "models"
    for plane in PLANES:
        (partial / f"acl-{plane}").mkdir(parents=True)
        shutil.copy(tiny.models_dir / f"acl-{plane}" / "best.pt", partial / f"acl-{plane}" / "best.pt")
    shutil.copy(tiny.models_dir / "ensemble-acl.joblib", partial / "ensemble-acl.joblib")
    table = main(
        [
            "--models-dir",
            str(partial),
            *plane_args(tiny, valid_cases(tiny)[0]),
            "--out",
            str(tmp_path / "o"),
            "--device",
            "cpu",
        ]
    )
    printed = capsys.readouterr().out
    assert "abnormal: skipped" in printed and "meniscus: skipped" in printed
    assert list(table.columns) == [
        "case",
        "acl_axial",
        "acl_coronal",
        "acl_sagittal",
        "acl_ensemble",
        "acl_threshold",
        "acl_positive",
    ]


@pytest.mark.skipif(importlib.util.find_spec("pydicom") is not None, reason="pydicom is installed here")
def test_dicom_folders_need_pydicom(tiny, tmp_path):
    for plane in PLANES:
        (tmp_path / "exam" / plane).mkdir(parents=True)
    with pytest.raises(MRNetError, match="install pydicom to read DICOM"):
        main(["--models-dir", str(tiny.models_dir), "--exam-dir", str(tmp_path / "exam"), "--device", "cpu"])


def fake_slice(z: float, value: int, instance: int) -> SimpleNamespace:
    return SimpleNamespace(
        pixel_array=np.full((4, 6), value, dtype=np.int16),
        ImagePositionPatient=[0.0, 0.0, z],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        InstanceNumber=instance,
        WindowCenter=100,
        WindowWidth=200,
        RescaleSlope=1,
        RescaleIntercept=0,
        PhotometricInterpretation="MONOCHROME2",
        SeriesInstanceUID="1.2",
    )


def test_dicom_slices_sorted_by_position_windowed_and_squared():
    # files in the wrong order and with misleading instance numbers: position decides
    datasets = [fake_slice(2.0, 200, 1), fake_slice(0.0, 0, 3), fake_slice(1.0, 100, 2)]
    series = series_from_datasets(datasets)
    assert series.shape == (3, 6, 6) and series.dtype == np.uint8
    centre = series[:, 3, 3]
    assert list(centre) == [0, 128, 255]  # window 0..200 -> 0, 0.5, 1 of 255
    assert (series[:, 0, :] == 0).all()  # padding rows above the 4-row image


def test_plane_named_in_paths():
    assert plane_named_in("MRNet-v1.0/valid/sagittal/1130.npy") == "sagittal"
    assert plane_named_in("exam/1130_coronal.npy") == "coronal"
    assert plane_named_in("exam/1130.npy") is None


def test_predict_script_with_heatmaps(tiny, tmp_path):
    case = valid_cases(tiny)[0]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "predict.py"),
            "--models-dir",
            str(tiny.models_dir),
            *plane_args(tiny, case),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--tasks",
            "acl",
            "--cam",
            str(tmp_path / "cam"),
            "--cam-top-k",
            "2",
            "--cam-gif",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert case in result.stdout
    pngs = sorted((tmp_path / "cam" / case).glob("acl-*.png"))
    assert len(pngs) == 2 * len(PLANES)
    assert len(list((tmp_path / "cam" / case).glob("acl-*.gif"))) == len(PLANES)
    assert (tmp_path / "out" / "predictions.json").is_file()
