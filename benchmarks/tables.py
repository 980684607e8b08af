"""The docs' tables of measured figures, made from JSON records when the site is built, never pasted by hand.

A page names a record with a marker line, `<!-- measured: NAME -->`, and the docs hook
(docs/hooks/measured.py) replaces it with what `render` makes of docs/measured/NAME:

    NAME/        a folder of `python -m benchmarks.sweeps --out docs/measured/NAME` results: the sweeps'
                 own Markdown table (benchmarks.sweeps.markdown)
    NAME.json    scripts/benchmark.py's results file ("benchmark": "mrnet throughput"): its phase table
                 (benchmarks.results.phase_table); a record with "auc_table": train_meta's AUC table as the
                 command prints it; otherwise a one-off experiment's record (RECORD_KEYS): a Markdown table

Each table is followed by a folded note saying which record and command made it, on which machine and load,
and which split its figures come from. A missing or malformed record raises RecordError, which fails the build.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

# A one-off experiment's record: what each key holds.
RECORD_KEYS = {
    "title": "what the table shows",
    "command": "the command(s) that made the figures",
    "machine": "where they were measured",
    "load": "the machine's load (load average, other jobs)",
    "split": "which split each figure comes from, and what that split chose",
    "columns": "the column headers",
    "rows": "one list of cells per row, as many as columns",
    "provenance": "where the figures were recorded",
}
SWEEP_KEYS = ("sweep", "train_seconds", "parameters", "predict_seconds_per_exam", "load_average", "auc")
AUC_ROW_KEYS = ("task", "axial", "coronal", "sagittal", "ensemble", "ensemble_fit_on", "ensemble_scored")
AUC_ROW_KEYS += ("best_plane", "ensemble_minus_best", "p_delong")


class RecordError(ValueError):
    """A measured record that is missing or cannot make its table."""


def render(name: str, root: Path, shown_root: str = "docs/measured") -> str:
    """The Markdown that replaces `<!-- measured: NAME -->`: the table, then how it was made.

    `root` is the records' folder; `shown_root` how the page and the errors name it.
    """
    folder, file = root / name, root / f"{name}.json"
    if folder.is_dir():
        return sweeps_table(folder, Path(shown_root) / name)
    shown = Path(shown_root) / f"{name}.json"
    if not file.is_file():
        raise RecordError(f"measured record {name!r}: neither {shown.parent / name}/ nor {shown} exists")
    record = read_record(file, shown)
    if record.get("benchmark") == "mrnet throughput":
        return benchmark_table(record, shown)
    if "auc_table" in record:
        return auc_table(record, shown)
    return experiment_table(record, shown)


def read_record(path: Path, shown: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RecordError(f"{shown}: cannot be read as JSON ({error})") from error
    if not isinstance(record, dict):
        raise RecordError(f"{shown}: expected a JSON object, found {type(record).__name__}")
    return record


def how_made(items: dict[str, Any]) -> str:
    """A folded admonition listing where a table comes from (entries without a value are left out)."""
    lines = ['??? note "How this table was made"']
    lines += [f"    - **{key}**: {value}" for key, value in items.items() if value not in (None, "")]
    return "\n".join(lines)


def cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def check_experiment(record: dict[str, Any], where: Path) -> None:
    """Every problem of a one-off record at once, so that one build names them all."""
    problems = [f"no {key!r} ({meaning})" for key, meaning in RECORD_KEYS.items() if key not in record]
    for key in RECORD_KEYS.keys() - {"columns", "rows"}:
        if key in record and not (isinstance(record[key], str) and record[key].strip()):
            problems.append(f"{key!r} must be a non-empty string")
    columns, rows = record.get("columns"), record.get("rows")
    if "columns" in record and not (isinstance(columns, list) and columns and all(isinstance(c, str) for c in columns)):
        problems.append("'columns' must be a non-empty list of strings")
        columns = None
    if "rows" in record:
        if not (isinstance(rows, list) and rows):
            problems.append("'rows' must be a non-empty list of rows")
        else:
            for number, row in enumerate(rows, 1):
                if not isinstance(row, list) or not all(isinstance(v, (str, int, float, type(None))) for v in row):
                    problems.append(f"row {number} must be a list of strings, numbers or nulls")
                elif columns is not None and len(row) != len(columns):
                    problems.append(f"row {number} has {len(row)} cells for {len(columns)} columns")
    if problems:
        raise RecordError(f"{where}: not a valid measured record: " + "; ".join(problems))


def experiment_table(record: dict[str, Any], where: Path) -> str:
    check_experiment(record, where)
    return "\n\n".join(
        [
            markdown_table(record["columns"], record["rows"]),
            how_made(
                {
                    "record": f"`{where.as_posix()}`",
                    "shows": record["title"],
                    "command": record["command"],
                    "machine": record["machine"],
                    "load": record["load"],
                    "split": record["split"],
                    "provenance": record["provenance"],
                }
            ),
        ]
    )


def check_sweep(record: dict[str, Any], where: Path) -> None:
    from mrnet import TASKS

    problems = [f"no {key!r}" for key in SWEEP_KEYS if key not in record]
    sweep, auc = record.get("sweep"), record.get("auc")
    if "sweep" in record and not (isinstance(sweep, dict) and {"backbone", "pool", "kind"} <= sweep.keys()):
        problems.append("'sweep' must hold backbone, pool and kind")
    if "auc" in record:
        if not isinstance(auc, dict):
            problems.append("'auc' must map each task to its figures")
        else:
            for task in TASKS:
                figures = auc.get(task)
                if not (isinstance(figures, dict) and isinstance(figures.get("ensemble"), (int, float))):
                    problems.append(f"'auc' has no ensemble AUC for {task}")
    load = record.get("load_average")
    if "load_average" in record and not (isinstance(load, list) and len(load) == 2):
        problems.append("'load_average' must be [before, after]")
    for key in ("train_seconds", "parameters", "predict_seconds_per_exam"):
        if key in record and not isinstance(record[key], (int, float)):
            problems.append(f"{key!r} must be a number")
    if problems:
        raise RecordError(f"{where}: not a benchmarks.sweeps result: " + "; ".join(problems))


def sweeps_table(folder: Path, shown: Path) -> str:
    """benchmarks.sweeps' own table of every result in the folder."""
    from benchmarks.sweeps import markdown, results_table

    files = sorted(folder.glob("*.json"))
    if not files:
        raise RecordError(f"{shown}: no sweep results (<configuration>.json)")
    records = [read_record(path, shown / path.name) for path in files]
    for path, record in zip(files, records, strict=True):
        check_sweep(record, shown / path.name)
    provenance = sorted({r["provenance"] for r in records if r.get("provenance")})
    commands = [r["command"] for r in records if r.get("command")]
    threads = sorted({str(r.get("threads")) for r in records if r.get("threads")})
    return "\n\n".join(
        [
            markdown(results_table(folder)),
            how_made(
                {
                    "records": f"`{shown.as_posix()}/<configuration>.json`, one per row",
                    "command": f"`python -m benchmarks.sweeps --out {shown.as_posix()} --table` prints this table",
                    "training command": f"one per row, e.g. `{commands[0]}` (each row with its own "
                    "`--backbone`, `--pool`, and `--task all` for 3 multi-task networks)"
                    if commands
                    else None,
                    "threads": ", ".join(threads),
                    "split": "AUC: each task's ensemble on the valid split, held out (the figures record which "
                    "split fitted the stacker)",
                    "provenance": " ".join(provenance),
                }
            ),
        ]
    )


def benchmark_table(record: dict[str, Any], where: Path) -> str:
    """scripts/benchmark.py's phase table, as the benchmark prints it."""
    from benchmarks.results import phase_table

    try:
        table = phase_table(record)
    except (KeyError, TypeError, ValueError, StopIteration) as error:
        raise RecordError(f"{where}: not a scripts/benchmark.py results file ({error!r})") from error
    device, data = record.get("device", {}), record.get("data", {})
    return "\n\n".join(
        [
            f"```\n{table}\n```",
            how_made(
                {
                    "record": f"`{where.as_posix()}`",
                    "command": f"`{record['command']}`" if record.get("command") else None,
                    "machine": f"{device.get('name')}, torch {device.get('torch')}",
                    "data": f"{data.get('exams')} exams at {data.get('size')} px, "
                    f"{data.get('slices_min')}-{data.get('slices_max')} slices ({data.get('slices_total')} in all)",
                    "provenance": record.get("provenance"),
                }
            ),
        ]
    )


def auc_table(record: dict[str, Any], where: Path) -> str:
    """train_meta's AUC table (auc_table.csv's rows), printed by the command's own formatter."""
    import pandas as pd

    from mrnet.cli.common import print_auc_table

    rows = record["auc_table"]
    if not (isinstance(rows, list) and rows):
        raise RecordError(f"{where}: 'auc_table' must be a non-empty list of auc_table.csv rows")
    for number, row in enumerate(rows, 1):
        missing = [key for key in AUC_ROW_KEYS if not isinstance(row, dict) or key not in row]
        if missing:
            raise RecordError(f"{where}: auc_table row {number} lacks {', '.join(missing)}")
    for key in ("command", "machine", "provenance"):
        if not isinstance(record.get(key), str):
            raise RecordError(f"{where}: no {key!r}")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_auc_table(pd.DataFrame(rows))
    return "\n\n".join(
        [
            f"```\n{printed.getvalue().strip()}\n```",
            how_made(
                {
                    "record": f"`{where.as_posix()}` (the rows of auc_table.csv)",
                    "command": record["command"],
                    "machine": record["machine"],
                    "load": record.get("load"),
                    "provenance": record["provenance"],
                }
            ),
        ]
    )
