"""New exams to score: which files make up each exam, and reading them with the training data's checks.

An exam is given as three series files, a folder (three .npy files, three DICOM folders or
the DICOM files of a whole exam), or the competition's CSV of paths; every series is checked
before any model runs (pydicom is imported only when a DICOM folder is read).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import PLANES
from ..errors import MRNetError
from .dicom import DicomOptions, holds_dicom, read_dicom_series
from .series import SeriesProblem, load_series


@dataclass
class ExamInput:
    """One exam to score: its id and, per plane, a .npy file or a DICOM folder."""

    case: str
    sources: dict[str, Path]


def exams_from_inputs(
    plane_files: Sequence[str | None],
    exam_dir: str | None,
    input_csv: str | None,
    planes: Sequence[str] = PLANES,
) -> list[ExamInput]:
    """The exams named by exactly one kind of input: a series file per plane, an exam folder, or a CSV.

    `planes`: the series an exam has (--planes); a series given for another plane is refused,
    since no model would score it.
    """
    chosen = sum([any(f is not None for f in plane_files), exam_dir is not None, input_csv is not None])
    if chosen != 1:
        flags = "/".join(f"--{p}" for p in planes)
        raise MRNetError(f"give exactly one input: {flags}, --exam-dir or --input-csv")
    if exam_dir is not None:
        return unique_case_ids([exam_from_folder(Path(exam_dir), planes)])
    if input_csv is not None:
        return exams_from_csv(Path(input_csv), planes)
    given = dict(zip(PLANES, plane_files, strict=True))
    extra = [f"--{p}" for p, f in given.items() if f is not None and p not in planes]
    if extra:
        raise MRNetError(
            f"{', '.join(extra)} given, but --planes is {' '.join(planes)}: no model scores that series "
            "(add the plane to --planes, or leave the series out)"
        )
    missing = [f"--{p}" for p in planes if given[p] is None]
    if missing:
        needed = " ".join(planes)
        raise MRNetError(f"an exam needs a series for each of --planes {needed}; missing {', '.join(missing)}")
    sources = {p: Path(f) for p, f in given.items() if f is not None}
    return unique_case_ids([ExamInput(case_id_for(sources), sources)])


def case_id_for(sources: dict[str, Path]) -> str:
    """The file name shared by the three series (MRNet's NNNN.npy), else their shared folder, else the axial name."""
    stems = {p.stem for p in sources.values()}
    if len(stems) == 1:
        return stems.pop()
    parents = {p.resolve().parent.name for p in sources.values()}
    if len(parents) == 1:
        return parents.pop()
    return next(iter(sources.values())).stem


def exam_from_folder(folder: Path, planes: Sequence[str] = PLANES) -> ExamInput:
    """A folder with axial.npy, coronal.npy, sagittal.npy; DICOM subfolders axial/, coronal/, sagittal/; or DICOM files
    (those of `planes` only).

    In the last form (a whole exam as a PACS exports it) each plane's series is chosen from
    the folder by its orientation, or as named with --series.
    """
    if not folder.is_dir():
        raise MRNetError(f"--exam-dir {folder}: folder not found")
    sources, missing = {}, []
    for plane in planes:
        if (folder / f"{plane}.npy").is_file():
            sources[plane] = folder / f"{plane}.npy"
        elif (folder / plane).is_dir():
            sources[plane] = folder / plane
        else:
            missing.append(f"{plane}.npy (or a DICOM folder {plane}/)")
    if len(missing) == len(planes) and holds_dicom(folder):
        return ExamInput(folder.resolve().name, {plane: folder for plane in planes})
    if missing:
        raise MRNetError(f"--exam-dir {folder}: missing {', '.join(missing)}, and it holds no DICOM files")
    return ExamInput(folder.resolve().name, sources)


def plane_named_in(path: str) -> str | None:
    """The plane a path names by a folder (valid/sagittal/1130.npy) or in its file name, if exactly one."""
    parts = [part.lower() for part in Path(path).parts]
    in_folders = {p for p in PLANES if p in parts[:-1]}
    if len(in_folders) == 1:
        return in_folders.pop()
    in_name = {p for p in PLANES if p in parts[-1]} if parts else set()
    return in_name.pop() if len(in_name) == 1 else None


def exams_from_csv(path: Path, planes: Sequence[str] = PLANES) -> list[ExamInput]:
    """The competition's input: a header-less CSV of .npy paths, three rows per case (one per plane of `planes`),
    cases in order.

    Public descriptions disagree on the order of the three rows (axial, coronal, sagittal
    or sagittal, coronal, axial), so each row's plane is taken from its path when the path
    names one (as MRNet-v1.0/valid/sagittal/1130.npy does); otherwise the rows are read as
    axial, coronal, sagittal. Relative paths are taken from the current folder, then from
    the CSV's folder.
    """
    if not path.is_file():
        raise MRNetError(f"--input-csv {path}: file not found")
    text = path.read_text(encoding="utf-8-sig")  # a byte-order mark would otherwise join the first path
    # Read as CSV, so a quoted path may hold commas; the first column is the path.
    rows = [row[0].strip() for row in csv.reader(io.StringIO(text)) if row and row[0].strip()]
    if not rows:
        raise MRNetError(f"--input-csv {path}: no rows")
    n = len(planes)
    if len(rows) % n:
        raise MRNetError(f"--input-csv {path}: {len(rows)} rows is not a multiple of {n} ({n} series per case)")
    exams, problems = [], []
    for start in range(0, len(rows), n):
        group = rows[start : start + n]
        named = [plane_named_in(r) for r in group]
        if all(x is None for x in named):
            order = list(planes)
        elif sorted(x or "" for x in named) == sorted(planes):
            order = [x for x in named if x is not None]
        else:
            problems.append(
                f"rows {start + 1}-{start + n}: the paths do not name one series of each of "
                f"{', '.join(planes)} ({', '.join(group)})"
            )
            continue
        sources = {plane: _resolve_listed(row, path.parent) for plane, row in zip(order, group, strict=True)}
        exams.append(ExamInput(case_id_for(sources), sources))
    if problems:
        raise MRNetError(f"--input-csv {path}:\n  - " + "\n  - ".join(problems))
    return unique_case_ids(exams)


def _resolve_listed(row: str, csv_folder: Path) -> Path:
    listed = Path(row)
    if listed.is_absolute() or listed.exists():
        return listed
    beside = csv_folder / listed
    return beside if beside.exists() else listed


# Names the outputs use for themselves: an exam called `index` would overwrite the viewer's exam list.
RESERVED_CASE_IDS = frozenset({"index"})


def safe_case_id(raw: str) -> str:
    """A case id usable as a file or folder name: no separators, no '.' or '..', nothing hidden, nothing reserved."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", raw)
    if not cleaned.strip(".") or cleaned.startswith(".") or cleaned.lower() in RESERVED_CASE_IDS:
        return f"case{cleaned}" if cleaned.startswith(".") or not cleaned.strip(".") else f"case-{cleaned}"
    return cleaned


def unique_case_ids(exams: list[ExamInput]) -> list[ExamInput]:
    """Give every exam its own id (outputs are keyed by it): a repeated id gets the first free -2, -3 suffix.

    Ids are compared without case, as file names are on macOS and Windows, and a suffix never
    takes an id that another exam has by its own name (`a`, `x/a` and `a-2` give `a`, `a-3`, `a-2`).
    """
    for exam in exams:
        exam.case = safe_case_id(exam.case)
    taken = {exam.case.lower() for exam in exams}
    used: set[str] = set()
    for exam in exams:
        if exam.case.lower() in used:
            suffix = 2
            while f"{exam.case}-{suffix}".lower() in taken | used:
                suffix += 1
            exam.case = f"{exam.case}-{suffix}"
        used.add(exam.case.lower())
    return exams


def read_series(
    source: Path, plane: str | None = None, mmap: bool = False, dicom: DicomOptions | None = None
) -> tuple[np.ndarray, list[str]]:
    """A .npy file through the same checks as training data, or a DICOM folder's series for the plane; and notes."""
    series, notes, _ = read_identified_series(source, plane, mmap, dicom)
    return series, notes


def read_identified_series(
    source: Path, plane: str | None = None, mmap: bool = False, dicom: DicomOptions | None = None
) -> tuple[np.ndarray, list[str], object]:
    """read_series, plus what identifies the series read (its file, or the DICOM series chosen from a folder)."""
    if source.is_dir():
        converted = read_dicom_series(source, plane, dicom)
        return converted.volume, converted.notes, (source.resolve(), converted.info.key)
    return load_series(source, mmap=mmap), [], source.resolve()


def constant_value(series: np.ndarray) -> int | None:
    """The one grey value of a series that has only one (an all-black export), else None."""
    low = int(series.min())
    return low if low == int(series.max()) else None


@dataclass
class CheckedInputs:
    """The converted DICOM series by (folder, plane), so they are not converted twice, and notes for the user."""

    converted: dict[tuple[Path, str], np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # each naming its file, case and plane
    notes_by_case: dict[str, list[str]] = field(default_factory=dict)  # the same, per exam, for its viewer page


def check_inputs(exams: Sequence[ExamInput], dicom: DicomOptions | None = None) -> CheckedInputs:
    """Read every series header (DICOM folders in full); raise one error listing every bad file.

    Refused besides each file's own problems: a series with one grey value (its probabilities
    would say nothing about the knee) and one series given for two planes of an exam (the
    planes' models would score the same images as if they were different views).
    """
    problems, checked = [], CheckedInputs()
    for exam in exams:
        planes_of: dict[object, str] = {}
        for plane, source in exam.sources.items():
            where = f"{source} ({exam.case}, {plane})"
            try:
                series, notes, identity = read_identified_series(source, plane, mmap=True, dicom=dicom)
            except SeriesProblem as err:
                problems.append(f"{where}: {err}")
                continue
            if identity in planes_of:
                problems.append(
                    f"{where}: the same series is also given as {planes_of[identity]}; each plane needs its own"
                )
                continue
            planes_of[identity] = plane
            value = constant_value(series)
            if value is not None:
                problems.append(f"{where}: every pixel has one grey value ({value}): there is no knee to score")
                continue
            checked.notes += [f"{where}: {note}" for note in notes]
            checked.notes_by_case.setdefault(exam.case, []).extend(f"{plane}: {note}" for note in notes)
            if source.is_dir():
                checked.converted[(source, plane)] = series
    if problems:
        count = len(problems)
        raise MRNetError(
            f"{count} input series cannot be used, no predictions written:\n  - "
            + "\n  - ".join(problems)
            + "\nThe manual's page 'Bad input and reliability' (docs/reliability.md) says what each check expects."
        )
    return checked
