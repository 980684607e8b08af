"""Reading the MRNet-v1.0 layout: label files, series files, and a checked in-memory cache.

Layout (docs/real-data.md):
    DATA/{train,valid}/{axial,coronal,sagittal}/NNNN.npy   uint8 (s, H, W)
    DATA/{split}-{task}.csv                                 rows `NNNN,label`, no header

Every check collects problems instead of stopping at the first, so one run lists all
that is wrong with a folder. Nothing here writes files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import PLANES, SPLITS, TASKS
from ..errors import DataError
from .series import SeriesProblem, load_series


def label_path(data_dir: str | Path, split: str, task: str) -> Path:
    return Path(data_dir) / f"{split}-{task}.csv"


def series_path(data_dir: str | Path, split: str, plane: str, case: str) -> Path:
    return Path(data_dir) / split / plane / f"{case}.npy"


def normalise_case_id(raw: str) -> str | None:
    """MRNet ids are zero-padded to 4 digits ('7' and '0007' name the same exam)."""
    raw = raw.strip()
    if not raw.isdigit():
        return None
    return raw.zfill(4)


def parse_labels(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Read `case,label` rows; return the table (case as str, label as int) and its problems."""
    name = path.name
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except FileNotFoundError:
        return _empty_labels(), [f"{name}: missing (expected at {path})"]
    except (OSError, UnicodeDecodeError) as err:
        return _empty_labels(), [f"{name}: cannot be read ({err})"]

    cases: list[str] = []
    labels: list[int] = []
    rows = csv.reader(io.StringIO(text))
    line_no = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as err:
            problems.append(f"{name}, line {rows.line_num}: cannot be read as CSV ({err})")
            break
        line_no = rows.line_num
        if not row or all(not field.strip() for field in row):
            continue
        if len(row) != 2:
            problems.append(
                f"{name}, line {line_no}: expected 2 columns `case,label`, got {len(row)}: {','.join(row)!r}"
            )
            continue
        case = normalise_case_id(row[0])
        label_text = row[1].strip()
        if case is None:
            if line_no == 1:
                problems.append(
                    f"{name}, line 1: looks like a header ({','.join(row)!r}); MRNet label files have no header line"
                )
            else:
                problems.append(f"{name}, line {line_no}: case id {row[0]!r} is not a number")
            continue
        if label_text not in ("0", "1"):
            problems.append(f"{name}, line {line_no}: label {label_text!r} for case {case} is not 0 or 1")
            continue
        cases.append(case)
        labels.append(int(label_text))

    table = pd.DataFrame({"case": pd.Series(cases, dtype=str), "label": pd.Series(labels, dtype=int)})
    duplicated = sorted(set(table.loc[table["case"].duplicated(), "case"]))
    if duplicated:
        problems.append(f"{name}: duplicate case ids {_short_list(duplicated)}")
    if table.empty and not problems:
        problems.append(f"{name}: no cases (the file is empty)")
    return table, problems


def _empty_labels() -> pd.DataFrame:
    return pd.DataFrame({"case": pd.Series([], dtype=str), "label": pd.Series([], dtype=int)})


def _short_list(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


@dataclass
class SplitData:
    """The exams of one split and plane: labels per task and uint8 series per case."""

    split: str
    plane: str
    cases: list[str]  # sorted case ids, the same for every task
    labels: dict[str, np.ndarray]  # task -> (n,) int64 labels aligned with `cases`
    series: dict[str, np.ndarray]  # case -> (s, H, W) uint8

    def labels_for(self, task: str) -> np.ndarray:
        return self.labels[task]


def check_and_load(
    data_dir: str | Path,
    tasks: Iterable[str] = TASKS,
    planes: Iterable[str] = PLANES,
    splits: Iterable[str] = SPLITS,
    load: bool = True,
) -> dict[tuple[str, str], SplitData]:
    """Check a dataset folder and load the requested splits and planes into memory.

    All problems across files and cases are gathered and raised as one DataError. With
    `load=False` only headers are read (a cheap check of a whole sweep before it starts).
    Each series is read once and shared by every task, so the three tasks of a plane
    don't read the data three times.
    """
    data_dir = Path(data_dir)
    tasks, planes, splits = list(tasks), list(planes), list(splits)
    problems: list[str] = []
    if not data_dir.is_dir():
        raise DataError(str(data_dir), [f"data folder {data_dir} does not exist (set --data-dir)"])

    result: dict[tuple[str, str], SplitData] = {}
    for split in splits:
        cases, labels, label_problems = _read_split_labels(data_dir, split, tasks)
        problems += label_problems
        for plane in planes:
            folder = data_dir / split / plane
            if not folder.is_dir():
                problems.append(
                    f"{split}/{plane}/: folder is missing (a dataset without {plane} series: leave {plane} out of "
                    "--planes)"
                )
                continue
            series, series_problems = _read_plane(data_dir, split, plane, cases, mmap=not load)
            problems += series_problems
            result[(split, plane)] = SplitData(split, plane, cases, labels, series)
    problems += _size_problems(result) + _shared_case_problems(result)
    if problems:
        raise DataError(str(data_dir), problems)
    return result


def _size_problems(result: dict[tuple[str, str], SplitData]) -> list[str]:
    """One slice size per plane across the splits: a model trained on one size is scored on the same."""
    problems = []
    for plane in dict.fromkeys(plane for _, plane in result):
        by_size: dict[int, list[str]] = {}
        for (split, p), data in result.items():
            if p == plane:
                for case, series in data.series.items():
                    by_size.setdefault(int(series.shape[-1]), []).append(f"{split}/{case}")
        if len(by_size) > 1:
            detail = "; ".join(
                f"{size}x{size}: {len(cases)} series ({_short_list(cases, 5)})"
                for size, cases in sorted(by_size.items())
            )
            problems.append(
                f"{plane}: series of different slice sizes ({detail}); resize them to one size before training"
            )
    return problems


def _shared_case_problems(result: dict[tuple[str, str], SplitData]) -> list[str]:
    """An exam in both train and valid would be scored on what it was trained on."""
    cases = {split: set(data.cases) for (split, _), data in result.items()}
    if "train" in cases and "valid" in cases and cases["train"] & cases["valid"]:
        shared = sorted(cases["train"] & cases["valid"])
        return [f"case ids in both train and valid: {_short_list(shared)}; each exam belongs to one split"]
    return []


def _read_split_labels(
    data_dir: Path, split: str, tasks: list[str]
) -> tuple[list[str], dict[str, np.ndarray], list[str]]:
    """Read every task's label file of a split; they must list the same cases.

    Even when a file has problems, the rows that parse are kept so their series are still
    checked: one run then reports both a bad label file and a bad series.
    """
    problems: list[str] = []
    tables: dict[str, pd.DataFrame] = {}
    for task in tasks:
        table, task_problems = parse_labels(label_path(data_dir, split, task))
        problems += task_problems
        tables[task] = table.drop_duplicates("case")

    readable = [t for t in tasks if label_path(data_dir, split, t).is_file()]
    if readable and not problems:
        reference_task = readable[0]
        reference = set(tables[reference_task]["case"])
        for task in readable[1:]:
            other = set(tables[task]["case"])
            if other != reference:
                detail = []
                if other - reference:
                    detail.append(f"only in {split}-{task}.csv: {_short_list(sorted(other - reference))}")
                if reference - other:
                    detail.append(f"only in {split}-{reference_task}.csv: {_short_list(sorted(reference - other))}")
                problems.append(f"{split}: label files list different cases ({'; '.join(detail)})")

    cases = sorted(set().union(*(set(t["case"]) for t in tables.values()))) if tables else []
    labels = {
        task: tables[task].set_index("case")["label"].reindex(cases, fill_value=-1).to_numpy(np.int64) for task in tasks
    }
    return cases, labels, problems


def _read_plane(
    data_dir: Path, split: str, plane: str, cases: list[str], mmap: bool
) -> tuple[dict[str, np.ndarray], list[str]]:
    problems: list[str] = []
    missing: list[str] = []
    series: dict[str, np.ndarray] = {}
    for case in cases:
        path = series_path(data_dir, split, plane, case)
        if not path.exists():
            missing.append(case)
            continue
        try:
            series[case] = load_series(path, mmap=mmap)
        except SeriesProblem as err:
            problems.append(f"{split}/{plane}/{case}.npy: {err}")
    if missing:
        problems.append(f"{split}/{plane}/: no .npy for {len(missing)} labelled case(s): {_short_list(missing)}")
    return series, problems


def find_unlabelled_series(data_dir: str | Path, split: str, plane: str, cases: Sequence[str]) -> list[str]:
    """Series files with no row in the label files: not an error, but worth a warning."""
    folder = Path(data_dir) / split / plane
    known = set(cases)
    return sorted(p.stem for p in folder.glob("*.npy") if p.stem not in known)
