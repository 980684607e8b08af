"""benchmarks.sweeps: whole train_all sweeps measured side by side, and the table made from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import ROOT, run_python

from benchmarks.sweeps import Sweep, markdown, parse_sweep, results_table
from mrnet import TASKS
from mrnet.errors import MRNetError

QUICK = "--no-pretrained --epochs 1 --lr 1e-4 --weight-decay 1e-4 --no-augment --seed 0 --device cpu"


def test_a_configuration_names_backbone_pool_and_kind() -> None:
    sweep = parse_sweep("resnet18/attention/multi")
    assert sweep == Sweep("resnet18", "attention", "multi")
    assert sweep.train_args() == ["--backbone", "resnet18", "--pool", "attention", "--task", "all"]
    assert parse_sweep("alexnet/max/single").train_args() == ["--backbone", "alexnet", "--pool", "max"]


@pytest.mark.parametrize(
    ("text", "named"),
    [("alexnet/max", "BACKBONE/POOL"), ("vgg16/max/single", "backbone 'vgg16'"), ("alexnet/sum/single", "pool 'sum'")],
)
def test_a_wrong_configuration_is_named(text: str, named: str) -> None:
    with pytest.raises(MRNetError, match=named):
        parse_sweep(text)


def fake_result(folder: Path, sweep: Sweep, seconds: float, auc: float) -> None:
    result = {
        "sweep": {"backbone": sweep.backbone, "pool": sweep.pool, "kind": sweep.kind},
        "train_seconds": seconds,
        "parameters": 2_470_000,
        "predict_seconds_per_exam": 0.05,
        "load_average": [1.0, 1.2],
        "auc": {task: {"ensemble": auc, "split": "valid"} for task in TASKS},
    }
    (folder / f"{sweep.name}.json").write_text(json.dumps(result))


def test_the_table_gives_each_time_relative_to_the_nine_alexnet_models(tmp_path: Path) -> None:
    fake_result(tmp_path, Sweep("alexnet", "max", "single"), 400.0, 0.9)
    fake_result(tmp_path, Sweep("alexnet", "max", "multi"), 100.0, 0.8)
    table = results_table(tmp_path)
    multi = table[table.models == "3 multi-task"].iloc[0]
    assert multi["time vs demo"] == 0.25
    assert multi["mean"] == pytest.approx(0.8)
    text = markdown(table)
    assert "| alexnet | max | 3 multi-task | 2.47 M | 0.8000 |" in text


@pytest.mark.slow
def test_a_sweep_runs_the_real_command_and_is_not_trained_twice(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweeps"
    args = ["-m", "benchmarks.sweeps", "--data-dir", str(tiny_data), "--out", str(out), "--settings", QUICK]
    first = run_python(*args, "--predict-exams", "2", "alexnet/max/multi", cwd=ROOT)
    assert first.returncode == 0, first.stderr
    result = json.loads((out / "alexnet-max-multi.json").read_text())
    assert result["networks"] == 3
    assert math.isfinite(result["predict_seconds_per_exam"])  # two tiny exams: the difference is mostly noise
    assert set(result["auc"]) == set(TASKS)
    assert all(row["split"] == "valid" and row["fit_on"] == "tune" for row in result["auc"].values())
    assert (out / "alexnet-max-multi" / "all-sagittal" / "best.pt").is_file()

    again = run_python(*args, "alexnet/max/multi", "--table", cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert "already measured" in again.stdout
    assert "| alexnet | max | 3 multi-task |" in again.stdout
