"""Cohorts for the import tests, written by the tests: DICOM studies of synthetic knees with what PACS
exports contain, and a KneeMRI-format folder.

Every study records the knee it was written from, so a test can compare each imported series
with its source.
"""

from __future__ import annotations

import csv
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from mrnet import PLANES, TASKS
from mrnet.synthetic import draw_case_labels, make_exam
from tests.dicom_files import write_series

SIZE = 64
SLICES = (5, 7)


@dataclass
class SourceStudy:
    uid: str
    accession: str
    patient: str
    labels: dict[str, int]
    exam: dict[str, np.ndarray]
    label_key: str  # what the labels file names it by
    mess: list[str] = field(default_factory=list)


def write_dicom_cohort(root: Path, n: int, seed: int = 0) -> tuple[Path, Path, dict[str, SourceStudy]]:
    """n studies under root/src (the mess of an export), LABELS.csv beside it; the studies by labels key.

    Study 0 has a 3-plane localizer, 1 a second sagittal series, 2 lacks its coronal series, 3 has
    a file cut short, 4 and 5 are one patient's, 6 and 7 share one flat folder, 8 has an unknown
    meniscus label, 9 has no row; the labels file also has a row for a study that is not there.
    Odd studies are named by StudyInstanceUID, even ones by AccessionNumber.
    """
    src = root / "src"
    studies: dict[str, SourceStudy] = {}
    for index in range(n):
        labels = dict(zip(TASKS, (int(v) for v in draw_case_labels(seed, index)), strict=True))
        exam = make_exam([seed, index], labels, size=SIZE, slices=SLICES)
        uid = generate_uid(entropy_srcs=[f"cohort-{seed}-{index}"])
        patient = f"PAT{index - 1 if index == 5 else index:04d}"
        accession = f"ACC{7000 + index}"
        key = uid if index % 2 else accession
        study = SourceStudy(uid, accession, patient, labels, exam, key)
        folder = src / "flat" if index in (6, 7) else src / f"patient{patient}" / f"study{index}"
        headers = {
            "StudyInstanceUID": uid,
            "PatientID": patient,
            "AccessionNumber": accession,
            "PatientName": f"Doe^{patient}",
        }
        for plane in PLANES:
            if index == 2 and plane == "coronal":
                study.mess.append("no coronal")
                continue
            write_series(
                exam[plane],
                folder / plane if index not in (6, 7) else folder,
                plane,
                seed=seed * 1000 + index,
                headers=headers,
                prefix=f"S{index}{plane[:3]}",
            )
        if index == 0:
            localizer = generate_uid()
            for plane in PLANES:
                write_series(
                    exam[plane][:1],
                    folder / "loc",
                    plane,
                    seed=index,
                    series_uid=localizer,
                    description="3-PLANE LOC",
                    headers=headers,
                    prefix=f"L{plane[:3]}",
                )
            study.mess.append("localizer")
        if index == 1:
            write_series(
                exam["sagittal"][::-1].copy(),
                folder / "sag2",
                "sagittal",
                seed=index,
                description="SAGITTAL KNEE REPEAT",
                headers=headers,
                prefix="R",
            )
            study.mess.append("second sagittal")
        if index == 3:
            victim = sorted((folder / "axial").iterdir())[0]
            data = victim.read_bytes()
            victim.write_bytes(data[: len(data) - 200])
            study.mess.append("cut short")
        studies[key] = study
    (src / "README.txt").write_text("exported by a PACS\n")
    (src / "DICOMDIR").write_bytes(b"not read")
    labels_path = root / "LABELS.csv"
    with labels_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study", *TASKS])
        for index, (key, study) in enumerate(studies.items()):
            if index == 9:
                continue
            cells = [str(study.labels[t]) for t in TASKS]
            if index == 8:
                cells[2] = ""
            writer.writerow([key, *cells])
        writer.writerow(["ACC9999", 1, 1, 0])
    return src, labels_path, studies


class Hostile:
    """A pickle that runs a shell command when loaded: what a .pck must never be allowed to do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def write_kneemri(root: Path, n: int, seed: int = 0, flat: bool = False) -> tuple[Path, dict[str, dict]]:
    """A KneeMRI-format folder: metadata.csv (the real column order) and 12-bit .pck volumes in vol01, vol02.

    The last row's volume is a hostile pickle; returns the folder and, by examId, the row and the
    source volume (None for the hostile one).
    """
    src = root / "kneemri"
    rows: dict[str, dict] = {}
    rng = np.random.default_rng(seed)
    columns = [
        "examId",
        "seriesNo",
        "aclDiagnosis",
        "kneeLR",
        "roiX",
        "roiY",
        "roiZ",
        "roiHeight",
        "roiWidth",
        "roiDepth",
        "volumeFilename",
    ]
    for index in range(n):
        exam_id, series_no = str(400000 + 17 * index), str(5 + index % 3)
        diagnosis = index % 3
        labels = {"abnormal": int(diagnosis > 0), "acl": int(diagnosis > 0), "meniscus": 0}
        knee = make_exam([seed, index], labels, size=SIZE, slices=SLICES)["sagittal"]
        volume = (knee.astype(np.uint16) * 16 + rng.integers(0, 16, knee.shape)).astype(np.uint16)  # 12-bit
        name = f"{exam_id}-{series_no}.pck"
        folder = src if flat else src / f"vol{index % 2 + 1:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        hostile = index == n - 1
        with (folder / name).open("wb") as handle:
            pickle.dump(Hostile(root / "pwned") if hostile else volume, handle, protocol=2)
        rows[exam_id] = {
            "examId": exam_id,
            "seriesNo": series_no,
            "aclDiagnosis": str(diagnosis),
            "kneeLR": str(index % 2),
            "roiX": "10",
            "roiY": "12",
            "roiZ": "2",
            "roiHeight": "20",
            "roiWidth": "22",
            "roiDepth": "3",
            "volumeFilename": name,
            "volume": None if hostile else volume,
        }
    with (src / "metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows.values():
            writer.writerow([row[c] for c in columns])
    return src, rows
