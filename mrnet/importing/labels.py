"""The labels file of a DICOM cohort: `study,abnormal,acl,meniscus[,split]`, one row per study.

An empty cell means unknown. The MRNet layout has no 'unknown' and its label files of one
split must list the same cases, so a task whose column is empty on every row is not written
at all (a cohort labelled for ACL only), and a study with an empty cell in a task that is
written is skipped and listed.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from .. import SPLITS, TASKS
from ..errors import MRNetError


@dataclass
class LabelRow:
    """One row: the `study` value as written, its labels (None: unknown) and the split it is given, if any."""

    line: int
    study: str
    labels: dict[str, int | None]
    split: str | None


@dataclass
class LabelsFile:
    rows: list[LabelRow]
    tasks: tuple[str, ...]  # the tasks with at least one known label: the ones written
    sha256: str
    problems: list[tuple[str, str]] = field(default_factory=list)  # (study, problem) of rows left out

    def unknown(self, row: LabelRow) -> list[str]:
        return [task for task in self.tasks if row.labels[task] is None]


def read_labels(path: Path) -> LabelsFile:
    """Read and check the labels file; a malformed file is an error naming its lines, all at once."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise MRNetError(f"--labels {path}: cannot be read ({err.strerror or err})") from None
    text = raw.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    unknown_columns = [h for h in header if h not in ("study", *TASKS, "split")]
    if not header or header[0] != "study" or unknown_columns or len(set(header)) != len(header):
        raise MRNetError(
            f"--labels {path}: the first line must be the header study,abnormal,acl,meniscus (split optional; "
            f"a task column may be left out), got {','.join(header)!r}"
        )
    rows: list = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for row in reader:
        if not row or not any(cell.strip() for cell in row):
            continue
        line = reader.line_num
        cells = dict(zip(header, (c.strip() for c in row), strict=False))
        if len(row) != len(header):
            errors.append(f"line {line}: {len(row)} cells for {len(header)} columns")
            continue
        study = cells["study"]
        if not study:
            errors.append(f"line {line}: empty study")
            continue
        if study in seen:
            errors.append(f"line {line}: study {study!r} already on line {seen[study]}")
            continue
        seen[study] = line
        labels: dict[str, int | None] = {}
        for task in TASKS:
            value = cells.get(task, "")
            if value not in ("", "0", "1"):
                errors.append(f"line {line}: {task} {value!r} is not 0, 1 or empty (unknown)")
            labels[task] = int(value) if value in ("0", "1") else None
        split = cells.get("split", "") or None
        if split is not None and split not in SPLITS:
            errors.append(f"line {line}: split {split!r} is not one of {', '.join(SPLITS)} or empty")
        rows.append(LabelRow(line, study, labels, split))
    if errors:
        shown = "\n  - ".join(errors[:40])
        raise MRNetError(f"--labels {path}: {len(errors)} problem(s), nothing imported:\n  - {shown}")
    if not rows:
        raise MRNetError(f"--labels {path}: no rows")
    tasks = tuple(task for task in TASKS if any(r.labels[task] is not None for r in rows))
    if not tasks:
        raise MRNetError(f"--labels {path}: every label cell is empty; there is nothing to train or score")
    return LabelsFile(rows, tasks, hashlib.sha256(raw).hexdigest())
