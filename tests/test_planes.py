"""The planes you have: a cohort with one plane (KneeMRI's sagittal series) trains, stacks, evaluates and predicts,
and models trained on MRNet-layout data are validated on it."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from mrnet import layout
from mrnet.data.dataset import check_and_load
from mrnet.data.exams import exams_from_inputs
from mrnet.ensemble.file import FORMAT, FORMAT_VERSION, LOGITS, problems
from mrnet.errors import DataError, MRNetError
from mrnet.importing.kneemri import import_kneemri
from tests.import_cohorts import write_kneemri

TINY = ["--no-pretrained", "--epochs", "1", "--patience", "0", "--no-augment", "--exams-per-step", "4"]
ONE_PLANE = ["--planes", "sagittal", "--tasks", "acl"]


def one_plane_payload(**changes):
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": "acl",
        "planes": ["sagittal"],
        "features": LOGITS,
        "fit_on": "train",
        "sklearn_version": "1.5.2",
        "classes": [0, 1],
        "coef": [1.5],
        "intercept": -0.2,
        "checkpoints": {"sagittal": "a" * 64},
        "thresholds": {
            "sagittal": {"threshold": 0.4, "chosen_on": "valid", "scored": "held-out"},
            "ensemble": {"threshold": 0.5, "chosen_on": "valid", "scored": "held-out"},
        },
    }
    return {**payload, **changes}


def test_an_ensemble_file_over_one_plane_is_valid_and_checked_against_its_planes():
    assert problems(one_plane_payload(), "acl") == []
    assert any("coef" in p for p in problems(one_plane_payload(coef=[1.0, 2.0]), "acl"))
    assert any("checkpoints" in p for p in problems(one_plane_payload(checkpoints={"axial": "a" * 64}), "acl"))
    thresholds = {"axial": {"threshold": 0.4, "chosen_on": "valid", "scored": "held-out"}}
    assert any("thresholds.axial" in p for p in problems(one_plane_payload(thresholds=thresholds), "acl"))
    assert any("planes" in p for p in problems(one_plane_payload(planes=["sagittal", "sagittal"]), "acl"))
    assert any("planes" in p for p in problems(one_plane_payload(planes=[]), "acl"))


def test_a_plane_the_data_lacks_is_named(tmp_path):
    data = tmp_path / "data"
    for split, case in (("train", "0000"), ("valid", "1000")):
        (data / split / "sagittal").mkdir(parents=True)
        np.save(data / split / "sagittal" / f"{case}.npy", np.zeros((3, 64, 64), np.uint8))
        (data / f"{split}-acl.csv").write_text(f"{case},1\n")
    with pytest.raises(DataError, match=r"train/axial/: folder is missing .*leave axial out of --planes"):
        check_and_load(data, ["acl"], load=False)
    check_and_load(data, ["acl"], ["sagittal"], load=False)


def test_predict_inputs_follow_the_planes(tmp_path):
    sagittal = tmp_path / "0001.npy"
    np.save(sagittal, np.zeros((3, 64, 64), np.uint8))
    (exam,) = exams_from_inputs([None, None, str(sagittal)], None, None, ["sagittal"])
    assert exam.sources == {"sagittal": sagittal} and exam.case == "0001"
    with pytest.raises(MRNetError, match="--axial given, but --planes is sagittal"):
        exams_from_inputs([str(sagittal), None, str(sagittal)], None, None, ["sagittal"])
    with pytest.raises(MRNetError, match="missing --axial, --coronal"):
        exams_from_inputs([None, None, str(sagittal)], None, None)
    folder = tmp_path / "exam"
    folder.mkdir()
    np.save(folder / "sagittal.npy", np.zeros((3, 64, 64), np.uint8))
    (exam,) = exams_from_inputs([None, None, None], str(folder), None, ["sagittal"])
    assert exam.sources == {"sagittal": folder / "sagittal.npy"}


def quiet(command, argv):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = command(argv)
    return result, out.getvalue()


@pytest.mark.slow  # imports a KneeMRI folder, trains two one-epoch sagittal models, evaluates and predicts
def test_a_sagittal_only_cohort_trains_evaluates_predicts_and_validates_externally(tiny_data, tmp_path):
    from mrnet.cli.evaluate import main as evaluate
    from mrnet.cli.predict import main as predict
    from mrnet.cli.train_all import main as train_all

    src, _ = write_kneemri(tmp_path, 16)
    cohort = tmp_path / "kneemri-data"
    import_kneemri(src, cohort, size=64, valid_fraction=0.4)
    assert sorted(p.name for p in (cohort / "train").iterdir()) == ["sagittal"]
    recipe = [*TINY, "--tune-fraction", "0", "--select-on", "valid", "--fit-on", "train", "--device", "cpu"]

    # The default planes: the missing ones are named before anything trains.
    with pytest.raises(DataError, match="train/axial/: folder is missing"):
        quiet(train_all, ["--data-dir", str(cohort), "--output-dir", str(tmp_path / "none"), "--tasks", "acl"])

    run = tmp_path / "kneemri-run"
    quiet(train_all, ["--data-dir", str(cohort), "--output-dir", str(run), *ONE_PLANE, *recipe])
    table = pd.read_csv(run / layout.AUC_TABLE)
    assert [c for c in table.columns if c in ("axial", "coronal", "sagittal")] == ["sagittal"]
    saved = json.loads(layout.ensemble_file(run, "acl").read_text())
    assert saved["planes"] == ["sagittal"] and len(saved["coef"]) == 1 and list(saved["checkpoints"]) == ["sagittal"]
    assert set(saved["thresholds"]) == {"sagittal", "ensemble"}
    assert not (run / "acl-axial").exists()

    metrics, _ = quiet(evaluate, ["--data-dir", str(cohort), "--models-dir", str(run), *ONE_PLANE, "--bootstrap", "0"])
    assert set(metrics["model"]) == {"sagittal", "ensemble"}
    report = (run / "report" / "report.md").read_text()
    assert "axial" not in report and "coronal" not in report
    with pytest.raises(MRNetError, match=r"missing .*acl-axial/best.pt.*\n.*--planes"):
        quiet(evaluate, ["--data-dir", str(cohort), "--models-dir", str(run), "--tasks", "acl"])

    series = next((cohort / "valid" / "sagittal").iterdir())
    out = tmp_path / "predicted"
    table, printed = quiet(
        predict, ["--models-dir", str(run), *ONE_PLANE, "--sagittal", str(series), "--out", str(out), "--device", "cpu"]
    )
    assert list(table.columns) == ["case", "acl_sagittal", "acl_ensemble", "acl_threshold", "acl_positive"]
    assert "axial" not in printed and "axial" not in (out / "predictions.json").read_text()
    with pytest.raises(MRNetError, match="--axial given, but --planes is sagittal"):
        quiet(predict, ["--models-dir", str(run), *ONE_PLANE, "--sagittal", str(series), "--axial", str(series)])

    # External validation: sagittal ACL models trained on MRNet-layout knees, scored on the imported cohort.
    mrnet_run = tmp_path / "mrnet-run"
    quiet(train_all, ["--data-dir", str(tiny_data), "--output-dir", str(mrnet_run), *ONE_PLANE, *recipe])
    external = tmp_path / "external"
    argv = ["--data-dir", str(cohort), "--models-dir", str(mrnet_run), *ONE_PLANE, "--out", str(external)]
    _, printed = quiet(evaluate, [*argv, "--bootstrap", "0"])
    for text in (printed, (external / "report.md").read_text()):
        text = " ".join(text.replace("\\_", "_").split())
        assert f"Scored on {cohort.name} ({cohort}, its valid split), another cohort" in text
        assert "Nothing was chosen on it" in text
    assert set(pd.read_csv(external / "metrics.csv")["threshold_chosen_on"].dropna()) == {f"valid of {tiny_data.name}"}
