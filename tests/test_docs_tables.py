"""benchmarks.tables: the docs' measured tables are made from their JSON records, and a bad record fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.tables import RecordError, render
from mrnet import TASKS

ROOT = Path(__file__).resolve().parents[1]


def experiment(**changes: object) -> dict:
    record = {
        "title": "two settings compared",
        "command": "`python scripts/train_all.py --epochs 8`",
        "machine": "a 2-core VM",
        "load": "load average 1.0",
        "split": "valid, held out",
        "columns": ["settings", "acl"],
        "rows": [["8 epochs", "0.9328"], ["16 epochs | early", 0.9612]],
        "provenance": "measured for this test",
    }
    record.update(changes)
    return record


def write(folder: Path, name: str, record: object) -> None:
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_an_experiment_record_becomes_a_table_with_how_it_was_made(tmp_path: Path) -> None:
    write(tmp_path, "runs", experiment())
    text = render("runs", tmp_path)
    lines = text.splitlines()
    assert lines[:4] == [
        "| settings | acl |",
        "|---|---|",
        "| 8 epochs | 0.9328 |",
        "| 16 epochs \\| early | 0.9612 |",  # a pipe in a cell cannot end the cell
    ]
    assert '??? note "How this table was made"' in text
    assert "`docs/measured/runs.json`" in text and "python scripts/train_all.py --epochs 8" in text
    assert "measured for this test" in text


@pytest.mark.parametrize(
    ("record", "named"),
    [
        (experiment(rows=[["8 epochs"]]), "row 1 has 1 cells for 2 columns"),
        ({k: v for k, v in experiment().items() if k != "provenance"}, "no 'provenance'"),
        (experiment(columns="settings, acl"), "'columns' must be a non-empty list of strings"),
        (experiment(rows=[]), "'rows' must be a non-empty list"),
        (experiment(split=""), "'split' must be a non-empty string"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_a_malformed_record_is_refused_naming_the_problem(tmp_path: Path, record: object, named: str) -> None:
    write(tmp_path, "runs", record)
    with pytest.raises(RecordError, match=named):
        render("runs", tmp_path)


def test_a_missing_record_and_broken_json_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="neither"):
        render("nothing", tmp_path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(RecordError, match="cannot be read as JSON"):
        render("broken", tmp_path)


def sweep_result(backbone: str, kind: str, seconds: int, auc: float) -> dict:
    return {
        "sweep": {"backbone": backbone, "pool": "max", "kind": kind},
        "command": "python -m mrnet train-all --epochs 8",
        "train_seconds": seconds,
        "parameters": 2_470_467,
        "predict_seconds_per_exam": 0.033,
        "load_average": [1.3, 2.1],
        "threads": "1",
        "auc": {task: {"split": "valid", "ensemble": auc, "fit_on": "tune"} for task in TASKS},
    }


def test_a_sweeps_folder_is_made_into_the_sweeps_own_table(tmp_path: Path) -> None:
    folder = tmp_path / "sweeps"
    folder.mkdir()
    write(folder, "alexnet-max-single", sweep_result("alexnet", "single", 504, 0.9682))
    write(folder, "alexnet-max-multi", sweep_result("alexnet", "multi", 148, 0.9462))
    text = render("sweeps", tmp_path)
    assert "| alexnet | max | 3 multi-task | 2.47 M | 0.9462 | 0.9462 | 0.9462 | 0.9462 | 148 |" in text
    assert "| 0.29 |" in text  # the time against the nine single-task models
    assert "python -m benchmarks.sweeps --out docs/measured/sweeps --table" in text


def test_a_sweep_result_without_an_auc_fails(tmp_path: Path) -> None:
    folder = tmp_path / "sweeps"
    folder.mkdir()
    broken = sweep_result("alexnet", "single", 504, 0.9)
    del broken["auc"]["acl"]
    write(folder, "alexnet-max-single", broken)
    with pytest.raises(RecordError, match="no ensemble AUC for acl"):
        render("sweeps", tmp_path)
    (folder / "alexnet-max-single.json").unlink()
    with pytest.raises(RecordError, match="no sweep results"):
        render("sweeps", tmp_path)


def test_every_record_the_docs_name_exists_and_renders() -> None:
    """The pages' markers and docs/measured agree: each marker makes a table (what the strict build relies on)."""
    import re

    names = set()
    for page in (ROOT / "docs").rglob("*.md"):
        names.update(re.findall(r"^<!-- measured: ([\w./-]+) -->$", page.read_text(), re.MULTILINE))
    assert {"demo-auc", "sweeps-64", "benchmark-cpu"} <= names
    for name in sorted(names):
        assert render(name, ROOT / "docs" / "measured").strip()
