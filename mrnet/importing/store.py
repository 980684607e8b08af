"""The output folder of an import: the MRNet layout, and DATA/import/ with what it was made from.

    DATA/train/{plane}/NNNN.npy, DATA/valid/{plane}/NNNN.npy, DATA/{split}-{task}.csv
    DATA/import/source.json   what was imported and how (the source folder, the labels file's hash, the options)
    DATA/import/plan.csv      every study planned, with its case id and split (a rerun checks it): PRIVATE
    DATA/import/keys.csv      case -> the source's study and hashed patient, for the cases written: PRIVATE
    DATA/import/problems.csv  every study or file left out, and why; it names studies: PRIVATE
    DATA/import/cases.csv     case, split, slices, spacing, series description: shareable
    DATA/import/done.jsonl    the cases written whole, with their cases.csv row (a rerun continues after them)

A case's planes are written together (temporary files, then renames) and only then listed
in done.jsonl; label files are written last, from the cases done, so no reader ever sees a
case that is half there.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import SPLITS
from ..errors import MRNetError
from ..files import atomic_write, atomic_write_many
from .splits import Planned

IMPORT_DIR = "import"
KEYS_COLUMNS = ("case", "split", "study", "patient")
PROBLEM_COLUMNS = ("study", "where", "problem")


def import_dir(out: Path) -> Path:
    return Path(out) / IMPORT_DIR


class Store:
    """One output folder: opened for a source, refusing a folder that holds anything else."""

    def __init__(self, out: str | Path, source: Mapping[str, Any]):
        self.out = Path(out)
        self.source = dict(source)
        record = import_dir(self.out) / "source.json"
        if record.is_file():
            saved = json.loads(record.read_text())
            differ = [
                f"{name} {saved.get(name)!r} then, {self.source.get(name)!r} now"
                for name in sorted(set(saved) | set(self.source))
                if saved.get(name) != self.source.get(name)
            ]
            if differ:
                raise MRNetError(
                    f"{self.out} holds an import of another source or with other options ({'; '.join(differ)}); "
                    "one folder holds one import: choose another --out"
                )
        elif self.out.exists() and any(self.out.iterdir()):
            raise MRNetError(f"{self.out} is not empty and holds no import; choose an empty or new --out folder")
        else:
            atomic_write(record, lambda tmp: tmp.write_text(json.dumps(self.source, indent=2, sort_keys=True)))

    @property
    def done_file(self) -> Path:
        return import_dir(self.out) / "done.jsonl"

    def done(self) -> dict[str, dict[str, Any]]:
        """case -> its cases.csv row, for the cases written whole by this or an earlier run.

        A line cut short by a crash does not count: that case is written again.
        """
        if not self.done_file.is_file():
            return {}
        rows = {}
        for line in self.done_file.read_text().splitlines(keepends=True):
            if line.endswith("\n"):
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                rows[str(row["case"])] = row
        return rows

    def check_plan(self, studies: Sequence[Planned]) -> None:
        """A rerun must plan the same cases as the run it continues: else the source changed under it."""
        keys = import_dir(self.out) / "plan.csv"
        rows = [(s.case, s.split, s.key, s.patient) for s in studies]
        if keys.is_file() and self.done():
            with keys.open(newline="") as handle:
                saved = [tuple(r) for r in list(csv.reader(handle))[1:]]
            if sorted(saved) != sorted(rows):
                raise MRNetError(
                    f"{self.out}: the studies found now differ from those the earlier run planned "
                    f"({len(saved)} then, {len(rows)} now); the source changed: import into a new --out folder"
                )
        write_csv(keys, KEYS_COLUMNS, rows)

    def write_case(self, split: str, case: str, volumes: Mapping[str, np.ndarray]) -> None:
        """Every plane of a case, renamed into place together (mark_done lists it afterwards)."""
        writes = {
            self.out / split / plane / f"{case}.npy": (lambda tmp, v=volume: _save_npy(tmp, v))
            for plane, volume in volumes.items()
        }
        atomic_write_many(writes)

    def mark_done(self, row: Mapping[str, Any]) -> None:
        """List a case as written whole, with its cases.csv row (a line per case, flushed to disk)."""
        self.done_file.parent.mkdir(parents=True, exist_ok=True)
        with self.done_file.open("a") as handle:
            handle.write(json.dumps(dict(row), sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def finish(
        self,
        studies: Sequence[Planned],
        tasks: Sequence[str],
        case_columns: Sequence[str],
        problems: Sequence[tuple[str, str, str]],
    ) -> None:
        """Label files of the cases done, cases.csv and problems.csv (rewritten whole on each run)."""
        done = self.done()
        cases_rows = [done[case] for case in sorted(done)]
        writes = {}
        for split in SPLITS:
            for task in tasks:
                rows = sorted((s.case, s.labels[task]) for s in studies if s.split == split and s.case in done)
                writes[self.out / f"{split}-{task}.csv"] = _csv_writer(None, rows)
        writes[import_dir(self.out) / "cases.csv"] = _csv_writer(
            case_columns, [[row.get(c, "") for c in case_columns] for row in cases_rows]
        )
        writes[import_dir(self.out) / "problems.csv"] = _csv_writer(PROBLEM_COLUMNS, problems)
        keys = sorted((s.case, s.split, s.key, s.patient) for s in studies if s.case in done)
        writes[import_dir(self.out) / "keys.csv"] = _csv_writer(KEYS_COLUMNS, keys)
        atomic_write_many(writes)


def _save_npy(tmp: Path, volume: np.ndarray) -> None:
    with tmp.open("wb") as handle:
        np.save(handle, volume, allow_pickle=False)


def _csv_writer(header: Sequence[str] | None, rows: Sequence[Sequence[Any]]):
    def write(tmp: Path) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
        tmp.write_text(buffer.getvalue())

    return write


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    atomic_write(path, _csv_writer(header, rows))
