"""Predictions as DICOM Structured Reports: one per DICOM exam, as a hospital's systems take AI results.

A TID 1500 Measurement Report (highdicom's Comprehensive 3D SR), the template the IHE AI
Results profile builds on, so viewers that read measurement reports show it. Per task one
image-level measurement group holds the ensemble's probability, its operating threshold and
the call (SNOMED present/absent), then each plane model's probability, referencing an image
of the series that plane was scored on. Its algorithm identification carries the bundle's
name, version and sha256 and the research-use statement. Patient and study attributes come
from the source images (highdicom copies them from the evidence); nothing else identifying
is added: no institution, no operator.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from .. import PLANES, __version__
from ..data.dicom import DicomOptions, catalog, choose_series, import_pydicom
from ..data.exams import ExamInput
from ..errors import MRNetError
from ..files import atomic_write
from .card import RESEARCH_STATEMENT, TASK_NAMES
from .unpack import BUNDLE_RECORD

SCHEME = "99MRNET"  # a private coding scheme for the concepts no standard code names (the probabilities)
SR_SERIES_NUMBER = 9901
TYPE2_PATIENT_STUDY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber",
)  # fmt: skip


def import_highdicom():
    try:
        import highdicom
    except ImportError:
        raise MRNetError("install highdicom to write DICOM SR (pip install 'mrnet[dicom]')") from None
    return highdicom


def model_identity(models_dir: str | Path) -> dict[str, str]:
    """The bundle a run was unpacked from (bundle.json), else the run folder, hashed over its stackers."""
    models_dir = Path(models_dir)
    record = models_dir / BUNDLE_RECORD
    if record.is_file():
        saved = json.loads(record.read_text())
        return {"name": str(saved["name"]), "version": str(saved["version"]), "sha256": str(saved["sha256"])}
    digest = hashlib.sha256()
    for path in sorted(models_dir.glob("ensemble-*.json")):
        digest.update(path.read_bytes())
    return {
        "name": models_dir.resolve().name,
        "version": f"run folder (mrnet {__version__})",
        "sha256": digest.hexdigest(),
    }


def exam_series(exam: ExamInput, options: DicomOptions) -> dict[str, list[Any]] | None:
    """Per plane the headers of the series that was scored (chosen as prediction chose it); None for .npy input."""
    if not all(source.is_dir() for source in exam.sources.values()):
        return None
    chosen = {}
    for plane, source in exam.sources.items():
        info, _ = choose_series(catalog(source), plane, options.series.get(plane))
        chosen[plane] = info.datasets
    return chosen


def write_reports(
    folder: Path,
    exams: Sequence[ExamInput],
    table: pd.DataFrame,
    tasks: Sequence[str],
    models_dir: str | Path,
    options: DicomOptions,
) -> list[Path]:
    """<folder>/<case>.dcm per DICOM exam; exams given as .npy files have no study to report into."""
    identity = model_identity(models_dir)
    rows = table.set_index("case").to_dict("index")
    written = []
    for exam in exams:
        series = exam_series(exam, options)
        if series is None:
            continue
        path = folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', exam.case)}.dcm"
        report = structured_report(series, rows[exam.case], tasks, identity)
        atomic_write(path, partial(save_report, report))
        written.append(path)
    return written


def save_report(report: Any, tmp: Path) -> None:
    report.save_as(tmp, enforce_file_format=True)


def structured_report(
    series: dict[str, list[Any]], row: dict[str, Any], tasks: Sequence[str], identity: dict[str, str]
):
    hd = import_highdicom()
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    import_pydicom()
    studies = {str(ds.StudyInstanceUID) for datasets in series.values() for ds in datasets}
    if len(studies) != 1:
        raise MRNetError(f"the exam's series come from {len(studies)} studies; a report refers to one")
    first = {
        plane: min(datasets, key=lambda ds: int(getattr(ds, "InstanceNumber", 0) or 0))
        for plane, datasets in series.items()
    }
    algorithm = hd.sr.AlgorithmIdentification(
        name=identity["name"][:64],
        version=identity["version"][:64],
        parameters=[f"bundle sha256 {identity['sha256']}", RESEARCH_STATEMENT],
    )
    groups = []
    for task in tasks:
        positive = row[f"{task}_positive"]
        measurements = [
            measurement(hd, f"{task}-ensemble", f"{TASK_NAMES[task]} probability (ensemble)", row[f"{task}_ensemble"]),
            measurement(hd, f"{task}-threshold", f"{TASK_NAMES[task]} operating threshold", row[f"{task}_threshold"]),
        ]
        measurements += [
            measurement(
                hd,
                f"{task}-{plane}",
                f"{TASK_NAMES[task]} probability ({plane} model)",
                row[f"{task}_{plane}"],
                [hd.sr.SourceImageForMeasurement.from_source_image(first[plane])],
            )
            for plane in PLANES
        ]
        evaluations = []
        if not pd.isna(positive):
            present = codes.SCT.Present if bool(positive) else codes.SCT.Absent
            evaluations.append(hd.sr.QualitativeEvaluation(code(hd, f"{task}-call", TASK_NAMES[task]), present))
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"MRNet {task}"),
                algorithm_id=algorithm,
                measurements=measurements,
                qualitative_evaluations=evaluations,
            )
        )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[identity["sha256"]]),
            name=identity["name"][:64],
            manufacturer_name="MRNet (research software)",
            model_name=identity["version"][:64],
            serial_number=identity["sha256"][:64],
        ),
    )
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=code(hd, "knee-mri", "MRI of the knee"),
        imaging_measurements=groups,
        referenced_images=[first[plane] for plane in PLANES],
    )
    evidence = [ds for plane in PLANES for ds in series[plane]]
    for ds in evidence:  # type 2 in the SR: copied when the source has them, else present and empty (no new values)
        for keyword in TYPE2_PATIENT_STUDY:
            if keyword not in ds:
                setattr(ds, keyword, "")
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=content[0],
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="MRNet (research software)",
        series_description="MRNet research results, not for clinical use",
    )


def code(hd: Any, value: str, meaning: str):
    return hd.sr.CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning[:64])


def measurement(hd: Any, value: str, meaning: str, number: float, images: list[Any] | None = None):
    return hd.sr.Measurement(
        name=code(hd, value, meaning),
        value=float(number),
        unit=hd.sr.CodedConcept(value="1", scheme_designator="UCUM", meaning="no units"),
        referenced_images=images,
    )
