"""DICOM SR out: a measurement report per DICOM exam, read back with pydicom and highdicom, equal to predictions.csv."""

from __future__ import annotations

import hashlib
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_files import write_series

from mrnet import PLANES, TASKS
from mrnet.cli.export import main as export_main
from mrnet.cli.predict import main as predict_main
from mrnet.export.card import RESEARCH_STATEMENT, TASK_NAMES


def dicom_exam(tiny, folder: Path, case: str) -> dict[str, str]:
    """The valid exam `case` as three DICOM series of one study; returns plane -> SeriesInstanceUID."""
    return {
        plane: write_series(np.load(tiny.data_dir / "valid" / plane / f"{case}.npy"), folder / plane, plane, seed=0)
        for plane in PLANES
    }


def content(item) -> list:
    """Every content item below `item`, depth first."""
    found = []
    for child in getattr(item, "ContentSequence", []):
        found += [child, *content(child)]
    return found


def meaning(item) -> str:
    return item.ConceptNameCodeSequence[0].CodeMeaning


def number(item) -> float:
    measured = item.MeasuredValueSequence[0]
    return float(measured.FloatingPointValue if "FloatingPointValue" in measured else measured.NumericValue)


@pytest.mark.slow
def test_structured_report_holds_the_predictions_and_references_the_study(tiny, tmp_path):
    series_uids = dicom_exam(tiny, tmp_path / "exam", "0019")
    bundle = tmp_path / "knee-model.zip"
    export_main(["bundle", "--models-dir", str(tiny.models_dir), "--out", str(bundle)])
    argv = ["--bundle", str(bundle), "--exam-dir", str(tmp_path / "exam"), "--device", "cpu"]
    predict_main([*argv, "--out", str(tmp_path / "out"), "--dicom-sr", str(tmp_path / "sr")])
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv", dtype={"case": str}).iloc[0]

    path = tmp_path / "sr" / "exam.dcm"
    assert isinstance(hd.sr.srread(path), hd.sr.Comprehensive3DSR)
    report = pydicom.dcmread(path)
    source = pydicom.dcmread(next((tmp_path / "exam" / "axial").iterdir()))
    assert report.StudyInstanceUID == source.StudyInstanceUID and report.PatientID == source.PatientID
    assert "InstitutionName" not in report and "OperatorsName" not in report
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0]
    assert {s.SeriesInstanceUID for s in evidence.ReferencedSeriesSequence} == set(series_uids.values())
    assert meaning(report) == "Imaging Measurement Report"

    items = content(report)
    texts = [i.TextValue for i in items if i.ValueType == "TEXT"]
    assert f"bundle sha256 {hashlib.sha256(bundle.read_bytes()).hexdigest()}" in texts
    assert RESEARCH_STATEMENT in texts and "knee-model" in texts
    values = {meaning(i): number(i) for i in items if i.ValueType == "NUM" and "probability" in meaning(i)}
    values |= {meaning(i): number(i) for i in items if i.ValueType == "NUM" and "threshold" in meaning(i)}
    calls = {meaning(i): i.ConceptCodeSequence[0].CodeMeaning for i in items if i.ValueType == "CODE"}
    for task in TASKS:
        name = TASK_NAMES[task]
        assert values[f"{name} probability (ensemble)"] == predictions[f"{task}_ensemble"]
        assert values[f"{name} operating threshold"] == predictions[f"{task}_threshold"]
        for plane in PLANES:
            assert values[f"{name} probability ({plane} model)"] == predictions[f"{task}_{plane}"]
        assert calls[name] == ("Present" if predictions[f"{task}_positive"] == 1 else "Absent")
    referenced = {  # each plane's probability points at an image of the series that plane was scored on
        meaning(i).split("(")[1].split(" ")[0]: i.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for i in items
        if i.ValueType == "NUM" and "model)" in meaning(i)
    }
    for plane, sop_uid in referenced.items():
        uids = {
            pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in (tmp_path / "exam" / plane).iterdir()
        }
        assert sop_uid in uids
