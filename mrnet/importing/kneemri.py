"""KneeMRI (Štajduhar et al. 2017) -> the MRNet layout: sagittal series with the ACL label.

metadata.csv is read by column name (public loaders index it by position, which breaks on a
reordered file); each row's .pck volume is found by file name anywhere below the source
(vol01 ... vol10, or flat) and loaded without running code (pickles.py). The 12-bit grey
values become uint8 by the window the DICOM import uses for a series whose headers carry
none: the 0.5-99.5 percentile range of the volume.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dicom_pixels import pad_to_square, percentile_window
from ..data.series import resize_series
from ..errors import MRNetError
from .pickles import UnsafePickle, load_array
from .runner import ImportResult, Job, StudyProblem, run_import
from .splits import Planned, assign_case_ids, assign_splits, hashed_patient
from .store import Store

REQUIRED = ("examId", "aclDiagnosis", "volumeFilename", "kneeLR")
ROI = ("roiX", "roiY", "roiZ", "roiHeight", "roiWidth", "roiDepth")
ACL_POSITIVE = {"injury": (1, 2), "complete": (2,)}  # aclDiagnosis 0 healthy, 1 partial, 2 complete rupture
CASE_COLUMNS = ("case", "split", "sagittal_slices", "diagnosis", "knee", *ROI)


def read_metadata(path: Path) -> list[dict[str, str]]:
    """metadata.csv's rows by column name; missing columns or bad diagnoses are an error naming them."""
    if not path.is_file():
        raise MRNetError(f"{path}: not found (a KneeMRI folder holds metadata.csv)")
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise MRNetError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(header)})")
    rows, errors = [], []
    for row in reader:
        row = {k: (v or "").strip() for k, v in row.items() if k}
        if row["aclDiagnosis"] not in ("0", "1", "2"):
            errors.append(f"line {reader.line_num}: aclDiagnosis {row['aclDiagnosis']!r} is not 0, 1 or 2")
        rows.append(row)
    if errors:
        raise MRNetError(f"{path}: {len(errors)} problem(s):\n  - " + "\n  - ".join(errors[:40]))
    return rows


def find_volumes(src: Path) -> dict[str, list[Path]]:
    """Every .pck below src by file name (a name found twice is listed, not guessed)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(src.rglob("*.pck")):
        found.setdefault(path.name, []).append(path)
    return found


def convert_volume(path: str, size: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One .pck -> {sagittal: uint8 (s, size, size)}, through the per-volume percentile window."""
    try:
        values = load_array(Path(path))
    except UnsafePickle as err:
        raise StudyProblem(f"{path}: refused: {err}") from None
    if values.ndim != 3 or min(values.shape) == 0:
        raise StudyProblem(f"{path}: array of shape {values.shape}; expected (slices, rows, columns)")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise StudyProblem(f"{path}: NaN or infinite values")
    if values.min() == values.max():
        raise StudyProblem(f"{path}: every voxel has one value; there is no knee")
    volume = pad_to_square(np.round(percentile_window(values).apply(values) * 255.0).astype(np.uint8))
    volume = resize_series(volume, size) if volume.shape[-1] != size else volume
    return {"sagittal": volume}, {"sagittal_slices": int(volume.shape[0])}


def import_kneemri(
    src: str | Path,
    out: str | Path,
    *,
    acl_positive: str = "injury",
    size: int = 256,
    valid_fraction: float = 0.2,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> ImportResult:
    """Import a KneeMRI folder: sagittal series, `acl` labels only (KneeMRI grades nothing else)."""
    src = Path(src)
    if not src.is_dir():
        raise MRNetError(f"{src}: source folder not found")
    metadata = src / "metadata.csv"
    rows = read_metadata(metadata)
    source = {
        "kind": "kneemri",
        "source": str(src.resolve()),
        "metadata_sha256": hashlib.sha256(metadata.read_bytes()).hexdigest(),
        "acl_positive": acl_positive,
        "planes": ["sagittal"],
        "size": size,
        "valid_fraction": valid_fraction,
        "seed": seed,
    }
    store = Store(out, source)
    volumes = find_volumes(src)
    jobs, problems, facts = [], [], {}
    seen: set[str] = set()
    for row in rows:
        exam, name = row["examId"], row["volumeFilename"]
        paths = volumes.get(name, [])
        if exam in seen or not paths or len(paths) > 1:
            why = (
                "examId listed twice"
                if exam in seen
                else f"volume {name} not found below the source"
                if not paths
                else f"{len(paths)} files named {name}: " + ", ".join(map(str, paths))
            )
            problems.append((exam, name, why))
            continue
        seen.add(exam)
        positive = int(int(row["aclDiagnosis"]) in ACL_POSITIVE[acl_positive])
        patient = row.get("patientID") or exam  # KneeMRI's file has no patient column: each exam its own
        planned = Planned(exam, hashed_patient(patient), {"acl": positive})
        facts[exam] = {"diagnosis": row["aclDiagnosis"], "knee": row["kneeLR"], **{c: row.get(c, "") for c in ROI}}
        jobs.append(Job(planned, str(paths[0])))
    assign_splits([j.study for j in jobs], valid_fraction, seed)
    assign_case_ids([j.study for j in jobs], seed)
    convert = partial(_convert_with_facts, size=size, facts=facts)
    jobs = [Job(j.study, (j.study.key, j.payload)) for j in jobs]
    return run_import(store, jobs, convert, ("acl",), CASE_COLUMNS, problems, workers, progress)


def _convert_with_facts(
    payload: tuple[str, str], size: int, facts: dict[str, dict[str, str]]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    exam, path = payload
    volumes, shape = convert_volume(path, size)
    return volumes, {**shape, **facts[exam]}
