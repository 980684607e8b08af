"""Predicting new exams: every input form, the outputs, size handling and clear errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import run_script
from tiny_models import SIZE

from mrnet import PLANES, TASKS
from mrnet.cli.common import run_cli
from mrnet.cli.predict import main
from mrnet.data.dataset import series_path
from mrnet.data.exams import plane_named_in
from mrnet.data.series import resize_series
from mrnet.ensemble.file import load_ensemble
from mrnet.errors import MRNetError

ROOT = Path(__file__).resolve().parents[1]
PROBABILITIES = [f"{t}_{c}" for t in TASKS for c in (*PLANES, "ensemble")]
COLUMNS = ["case"] + [f"{t}_{c}" for t in TASKS for c in (*PLANES, "ensemble", "threshold", "positive")]


def valid_cases(tiny) -> list[str]:
    return sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))


def plane_args(data_dir: Path, case: str) -> list[str]:
    return [arg for p in PLANES for arg in (f"--{p}", str(series_path(data_dir, "valid", p, case)))]


def predict_argv(models_dir: Path, *inputs: str, out: Path | None = None) -> list[str]:
    """The predict command line on the CPU: the models, the exams (as options), and where to write."""
    argv = ["--models-dir", str(models_dir), *inputs, "--device", "cpu"]
    return argv if out is None else [*argv, "--out", str(out)]


def training_predictions(tiny) -> pd.DataFrame:
    """The valid-split probabilities train_meta wrote, one row per (task, case)."""
    return pd.read_csv(tiny.models_dir / "ensemble_valid_predictions.csv", dtype={"case": str})


@pytest.mark.slow
def test_three_files_give_csv_and_json(tiny, tmp_path, capsys):
    case = valid_cases(tiny)[0]
    table = main(predict_argv(tiny.models_dir, *plane_args(tiny.data_dir, case), out=tmp_path))
    printed = capsys.readouterr().out
    assert case in printed and "ensemble" in printed and "threshold" in printed
    for task in TASKS:  # on tune, or on valid where tune has under 2 exams of a class (never the stacker's own fit)
        chosen = load_ensemble(tiny.models_dir / f"ensemble-{task}.json").thresholds["ensemble"]
        assert (
            f"{task}: positive when the ensemble >= {chosen.threshold:.3f} (Youden's J on {chosen.chosen_on})"
            in printed
        )

    saved = pd.read_csv(tmp_path / "predictions.csv", dtype={"case": str})
    assert list(saved.columns) == COLUMNS
    assert list(saved["case"]) == [case]
    probs = saved[PROBABILITIES].to_numpy()
    assert ((probs > 0) & (probs < 1)).all()
    assert np.allclose(probs, table[PROBABILITIES].to_numpy(), atol=1e-6)
    for task in TASKS:  # the call is the ensemble probability against the threshold train_meta chose
        threshold = load_ensemble(tiny.models_dir / f"ensemble-{task}.json").thresholds["ensemble"].threshold
        assert saved[f"{task}_threshold"].iloc[0] == pytest.approx(threshold)
        assert saved[f"{task}_positive"].iloc[0] == int(saved[f"{task}_ensemble"].iloc[0] >= threshold)

    payload = json.loads((tmp_path / "predictions.json").read_text())
    exam = payload["exams"][0]
    assert exam["case"] == case
    assert set(exam["probabilities"]) == set(TASKS)
    assert set(exam["probabilities"]["acl"]) == {*PLANES, "ensemble"}
    assert set(exam["operating_points"]["acl"]) == {"threshold", "positive"}
    assert (tmp_path / "predict_config.json").is_file()


@pytest.mark.slow
def test_exam_folder_input(tiny, valid_run, tmp_path):
    case = valid_cases(tiny)[1]
    folder = tmp_path / "knee-07"
    folder.mkdir()
    for plane in PLANES:
        shutil.copy(series_path(tiny.data_dir, "valid", plane, case), folder / f"{plane}.npy")
    table = main(predict_argv(tiny.models_dir, "--exam-dir", str(folder), out=tmp_path / "out"))
    assert list(table["case"]) == ["knee-07"]
    assert np.allclose(table[PROBABILITIES].to_numpy()[0], valid_run[1].loc[case, PROBABILITIES].to_numpy())


@pytest.fixture(scope="module")
def valid_run(tiny, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """Every valid exam through the competition's input format (rows sagittal, coronal, axial)."""
    out = tmp_path_factory.mktemp("valid-run")
    rows = [str(series_path(tiny.data_dir, "valid", p, c)) for c in valid_cases(tiny) for p in reversed(PLANES)]
    listing = out / "valid-paths.csv"
    listing.write_text("\n".join(rows) + "\n")
    table = main(predict_argv(tiny.models_dir, "--input-csv", str(listing), out=out / "out"))
    return out / "out", table.set_index("case")


@pytest.mark.slow
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


@pytest.mark.slow
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
    table = main(predict_argv(tiny.models_dir, "--input-csv", str(listing), out=tmp_path / "a"))
    assert list(table["case"]) == [case]
    assert np.allclose(table[PROBABILITIES].to_numpy()[0], valid_run[1].loc[case, PROBABILITIES].to_numpy())


@pytest.mark.slow
def test_larger_series_are_resized_with_a_warning(tiny, tmp_path, capsys):
    case = valid_cases(tiny)[0]
    files = {}
    for plane in PLANES:
        series = np.load(series_path(tiny.data_dir, "valid", plane, case))
        files[plane] = tmp_path / f"{plane}-big.npy"
        np.save(files[plane], series.repeat(2, axis=1).repeat(2, axis=2))  # 128 px
    main(predict_argv(tiny.models_dir, *[a for p in PLANES for a in (f"--{p}", str(files[p]))], out=tmp_path / "out"))
    err = capsys.readouterr().err
    for plane in PLANES:
        assert f"{files[plane]}: slices are 128x128 but the model was trained on {SIZE}x{SIZE}" in err


def test_resize_series_shape_and_type():
    series = np.random.default_rng(0).integers(0, 256, size=(3, 128, 128), dtype=np.uint8)
    small = resize_series(series, 64)
    assert small.shape == (3, 64, 64) and small.dtype == np.uint8
    flat = np.full((2, 80, 80), 77, dtype=np.uint8)
    assert (resize_series(flat, 64) == 77).all()


@pytest.mark.slow
def test_bad_input_exits_2_naming_the_file(tiny, tmp_path, capsys):
    case = valid_cases(tiny)[0]
    bad = tmp_path / "coronal-bad.npy"
    np.save(bad, np.random.default_rng(0).random((4, SIZE, SIZE)))  # float intensities, not uint8
    args = plane_args(tiny.data_dir, case)
    args[args.index("--coronal") + 1] = str(bad)
    with pytest.raises(SystemExit) as stop:
        run_cli(main, predict_argv(tiny.models_dir, *args, out=tmp_path / "out"))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "fractional" in err
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_missing_models_dir_is_a_clear_error(tiny_data, tmp_path):
    with pytest.raises(MRNetError, match=r"models folder .* does not exist"):
        main(predict_argv(tmp_path / "none", *plane_args(tiny_data, "0012")))


@pytest.mark.slow
def test_task_without_models_is_skipped(tiny, tmp_path, capsys):
    partial = tmp_path / "models"
    for plane in PLANES:
        (partial / f"acl-{plane}").mkdir(parents=True)
        shutil.copy(tiny.models_dir / f"acl-{plane}" / "best.pt", partial / f"acl-{plane}" / "best.pt")
    shutil.copy(tiny.models_dir / "ensemble-acl.json", partial / "ensemble-acl.json")
    table = main(predict_argv(partial, *plane_args(tiny.data_dir, valid_cases(tiny)[0]), out=tmp_path / "o"))
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


@pytest.mark.slow
def test_dicom_folders_need_pydicom(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)  # `import pydicom` fails, as where it is not installed
    for plane in PLANES:
        (tmp_path / "exam" / plane).mkdir(parents=True)
    with pytest.raises(MRNetError, match=r"install pydicom to read DICOM \(pip install pydicom"):
        main(predict_argv(tiny.models_dir, "--exam-dir", str(tmp_path / "exam"), out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_plane_named_in_paths():
    assert plane_named_in("MRNet-v1.0/valid/sagittal/1130.npy") == "sagittal"
    assert plane_named_in("exam/1130_coronal.npy") == "coronal"
    assert plane_named_in("exam/1130.npy") is None


@pytest.mark.slow
def test_predict_script_with_heatmaps(tiny, tmp_path):
    case = valid_cases(tiny)[0]
    cam = ["--tasks", "acl", "--cam", str(tmp_path / "cam"), "--cam-top-k", "2", "--cam-gif"]
    argv = predict_argv(tiny.models_dir, *plane_args(tiny.data_dir, case), out=tmp_path / "out")
    result = run_script("predict.py", *argv, *cam, timeout=120)
    assert result.returncode == 0, result.stderr
    assert case in result.stdout
    pngs = sorted((tmp_path / "cam" / case).glob("acl-*.png"))
    assert len(pngs) == 2 * len(PLANES)
    assert len(list((tmp_path / "cam" / case).glob("acl-*.gif"))) == len(PLANES)
    assert (tmp_path / "out" / "predictions.json").is_file()
