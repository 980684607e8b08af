"""A cohort of DICOM studies (a PACS export) and a labels file -> the MRNet layout.

Files are found anywhere below the source folder and grouped by StudyInstanceUID; within a
study, each plane's series is chosen, ordered, rescaled and windowed by the same code and
rules that `predict` uses for a whole exam (mrnet.data.dicom), then resampled in-plane.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import PLANES
from ..data.dicom import (
    DEFER_SIZE,
    DicomOptions,
    check_plane,
    choose_series,
    dicom_files,
    import_pydicom,
    listing,
    printable,
    series_from_datasets,
    series_info,
)
from ..data.dicom_geometry import pixel_spacing
from ..data.series import SeriesProblem, resize_series
from ..errors import MRNetError
from .labels import LabelsFile, read_labels
from .runner import ImportResult, Job, StudyProblem, run_import
from .splits import Planned, assign_case_ids, assign_splits, hashed_patient
from .store import Store

DESCRIPTION_CHARS = 64


@dataclass
class FoundStudy:
    """One StudyInstanceUID found in the source: its accession number, patient and files."""

    uid: str
    accession: str
    patient_id: str
    files: list[str] = field(default_factory=list)


def scan(src: Path) -> tuple[dict[str, FoundStudy], list[tuple[str, str, str]]]:
    """Every DICOM file below src, by study (headers only); files that are not DICOM are passed over.

    A file that starts like DICOM but cannot be read, or has no StudyInstanceUID, is listed.
    """
    pydicom = import_pydicom()
    studies: dict[str, FoundStudy] = {}
    problems: list[tuple[str, str, str]] = []
    for path in dicom_files(src):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # pydicom raises several types for files that are not DICOM
            if _starts_like_dicom(path):
                problems.append(("", str(path), "starts like a DICOM file but its header cannot be read"))
            continue
        uid = str(getattr(ds, "StudyInstanceUID", "") or "")
        if not uid:
            problems.append(("", str(path), "DICOM file without StudyInstanceUID: not part of any study"))
            continue
        study = studies.setdefault(
            uid,
            FoundStudy(uid, str(getattr(ds, "AccessionNumber", "") or ""), str(getattr(ds, "PatientID", "") or "")),
        )
        study.files.append(str(path))
    return studies, problems


def _starts_like_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def match_labels(
    studies: Mapping[str, FoundStudy], labels: LabelsFile
) -> tuple[list[tuple[FoundStudy, Any]], list[tuple[str, str, str]]]:
    """Pair labels rows with studies: by AccessionNumber first (what reports carry), else by StudyInstanceUID.

    A value naming several studies, a study named by two rows, a study without a row and a
    row without a study are all listed, and none of them imported.
    """
    by_accession: dict[str, list[FoundStudy]] = {}
    for study in studies.values():
        if study.accession:
            by_accession.setdefault(study.accession, []).append(study)
    problems: list[tuple[str, str, str]] = []
    claimed: dict[str, list[Any]] = {}
    for row in labels.rows:
        matches = by_accession.get(row.study) or ([studies[row.study]] if row.study in studies else [])
        if not matches:
            problems.append(
                (
                    row.study,
                    f"labels line {row.line}",
                    "no study in the source has this AccessionNumber or StudyInstanceUID",
                )
            )
        elif len(matches) > 1:
            problems.append(
                (
                    row.study,
                    f"labels line {row.line}",
                    f"AccessionNumber shared by {len(matches)} studies; name each by its StudyInstanceUID",
                )
            )
        else:
            claimed.setdefault(matches[0].uid, []).append(row)
    pairs = []
    for uid, study in sorted(studies.items()):
        rows = claimed.get(uid, [])
        if not rows:
            problems.append((uid, "", "no row in the labels file (by AccessionNumber or StudyInstanceUID)"))
        elif len(rows) > 1:
            lines = ", ".join(str(r.line) for r in rows)
            problems.append((uid, f"labels lines {lines}", "named by several rows of the labels file"))
        else:
            pairs.append((study, rows[0]))
    return pairs, problems


def plan(
    pairs: Sequence[tuple[FoundStudy, Any]], labels: LabelsFile, valid_fraction: float, seed: int
) -> tuple[list[Job], list[tuple[str, str, str]]]:
    """The studies to import, with splits and case ids; studies with an unknown label are listed instead."""
    jobs, problems = [], []
    for study, row in pairs:
        unknown = labels.unknown(row)
        if unknown:
            problems.append(
                (
                    row.study,
                    f"labels line {row.line}",
                    f"unknown {', '.join(unknown)} label (empty "
                    "cell): the MRNet layout has no unknown, so the study is left out",
                )
            )
            continue
        if not study.patient_id:
            problems.append((row.study, "", "no PatientID: the split by patient cannot place it"))
            continue
        labelled = {task: int(row.labels[task]) for task in labels.tasks}
        planned = Planned(row.study, hashed_patient(study.patient_id), labelled, row.split)
        jobs.append(Job(planned, sorted(study.files)))
    assign_splits([j.study for j in jobs], valid_fraction, seed)
    assign_case_ids([j.study for j in jobs], seed)
    return jobs, problems


def convert_study(
    files: Sequence[str], planes: Sequence[str], size: int, rules: Mapping[str, str]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One study's files -> {plane: uint8 (s, size, size)} and its shareable facts; StudyProblem names what fails."""
    pydicom = import_pydicom()
    groups: dict[str, list[Any]] = {}
    for path in files:
        try:
            ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
        except Exception:
            raise StudyProblem(f"{path}: cannot be read as DICOM (cut short?)") from None
        if "PixelData" in ds or "FloatPixelData" in ds:
            groups.setdefault(str(getattr(ds, "SeriesInstanceUID", "") or ""), []).append(ds)
    series = [series_info(uid, datasets) for uid, datasets in groups.items()]
    volumes, facts = {}, {}
    for plane in planes:
        fitting = [s for s in series if not s.mixed and s.plane is not None and s.plane.name == plane]
        if not fitting and plane not in rules:
            raise StudyProblem(f"no {plane} series; the study holds:" + listing(series))
        try:
            info, _ = choose_series(series, plane, rules.get(plane))
            check_plane(info, plane, DicomOptions())
            volume, _ = series_from_datasets(info.datasets)
        except SeriesProblem as err:
            raise StudyProblem(f"{plane}: {err}") from None
        volumes[plane] = resize_series(volume, size) if volume.shape[-1] != size else volume
        facts.update(series_facts(plane, info.datasets[0], len(volume)))
    return volumes, facts


def series_facts(plane: str, first: Any, slices: int) -> dict[str, Any]:
    """cases.csv's columns for one plane: nothing that names a patient, a study or a date."""
    spacing = pixel_spacing(first)
    thickness = getattr(first, "SliceThickness", None)
    description = printable(str(getattr(first, "SeriesDescription", "") or ""))[:DESCRIPTION_CHARS]
    return {
        f"{plane}_slices": slices,
        f"{plane}_spacing_mm": f"{spacing.row_mm:.3g}x{spacing.column_mm:.3g}" if spacing else "",
        f"{plane}_thickness_mm": f"{float(thickness):.3g}" if thickness is not None and thickness != "" else "",
        f"{plane}_description": description,
    }


def case_columns(planes: Sequence[str]) -> list[str]:
    per_plane = ("slices", "spacing_mm", "thickness_mm", "description")
    return ["case", "split", *(f"{plane}_{name}" for plane in planes for name in per_plane)]


def import_dicom(
    src: str | Path,
    labels_path: str | Path,
    out: str | Path,
    *,
    planes: Sequence[str] = PLANES,
    size: int = 256,
    valid_fraction: float = 0.2,
    seed: int = 0,
    workers: int = 1,
    series_rules: Mapping[str, str] | None = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> ImportResult:
    """Import every labelled study of src into out (see store.py for what is written where)."""
    src, rules = Path(src), dict(series_rules or {})
    if not src.is_dir():
        raise MRNetError(f"{src}: source folder not found")
    labels = read_labels(Path(labels_path))
    source = {
        "kind": "dicom",
        "source": str(src.resolve()),
        "labels_sha256": labels.sha256,
        "planes": list(planes),
        "size": size,
        "valid_fraction": valid_fraction,
        "seed": seed,
        "series": dict(sorted(rules.items())),
    }
    store = Store(out, source)
    studies, problems = scan(src)
    if not studies:
        raise MRNetError(f"{src}: no DICOM study found below it")
    pairs, matching = match_labels(studies, labels)
    jobs, unplanned = plan(pairs, labels, valid_fraction, seed)
    convert = partial(convert_study, planes=tuple(planes), size=size, rules=rules)
    return run_import(
        store, jobs, convert, labels.tasks, case_columns(planes), problems + matching + unplanned, workers, progress
    )
