"""The real commands, run as a user runs them: synthetic data -> nine models -> ensembles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import folder_snapshot, run_training, train_config, write_tiny_layout
from helpers import run_script as run

from mrnet.checkpoint import load_checkpoint
from mrnet.training import trainer as train_module
from mrnet.training.trainer import train

pytestmark = pytest.mark.slow


def test_synthetic_data_to_auc_table(tmp_path):
    data, models = tmp_path / "data", tmp_path / "models"
    made = run(
        "make_synthetic.py",
        "--out",
        str(data),
        "--train",
        "16",
        "--valid",
        "12",
        "--size",
        "64",
        "--slices",
        "3",
        "5",
        "--seed",
        "1",
    )
    assert made.returncode == 0, made.stderr
    trained = run_training("train_all.py", data, models, "--epochs", "1")
    assert trained.returncode == 0, trained.stderr
    table = pd.read_csv(models / "auc_table.csv")
    assert table["task"].tolist() == ["abnormal", "acl", "meniscus"]
    assert list(table.columns)[:7] == ["task", "split", "selected_on", "axial", "coronal", "sagittal", "ensemble"]
    assert set(table["ensemble_fit_on"]) == {"tune"}  # the new defaults: a tuning split, stacked on it
    assert "AUC on the valid split (epochs chosen on: tune; ensemble fitted on: tune" in trained.stdout
    assert (models / "tune_cases.csv").is_file() and (models / "thresholds.csv").is_file()
    for task in ("abnormal", "acl", "meniscus"):
        assert (models / f"ensemble-{task}.joblib").is_file()
        for plane in ("axial", "coronal", "sagittal"):
            assert (models / f"{task}-{plane}" / "best.pt").is_file()

    again = run_training("train_all.py", data, models, "--epochs", "1")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished checkpoint exists, skipped") == 9

    meta = run("train_meta.py", "--data-dir", str(data), "--output-dir", str(models), "--device", "cpu")
    assert meta.returncode == 0, meta.stderr
    assert pd.read_csv(models / "auc_table.csv").equals(table)


@pytest.mark.slow
def test_paper_protocol_is_one_set_of_flags_away(tiny_data, tmp_path):
    models = tmp_path / "models"
    paper = ["--tune-fraction", "0", "--select-on", "valid", "--fit-on", "train"]
    result = run_training("train_all.py", tiny_data, models, "--epochs", "1", *paper)
    assert result.returncode == 0, result.stderr
    assert not (models / "tune_cases.csv").exists()
    metrics = pd.read_csv(models / "acl-sagittal" / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "train_loss", "valid_loss", "valid_auc", "lr", "best"]
    assert (models / "acl-sagittal" / "valid_predictions.csv").is_file()
    assert set(pd.read_csv(models / "auc_table.csv")["ensemble_fit_on"]) == {"train"}
    assert set(pd.read_csv(models / "thresholds.csv")["chosen_on"]) == {"valid"}  # never on train probabilities

    report = run(
        "evaluate.py",
        "--data-dir",
        str(tiny_data),
        "--models-dir",
        str(models),
        "--bootstrap",
        "0",
        "--heatmap-exams",
        "0",
        "--tasks",
        "acl",
        "--device",
        "cpu",
    )
    assert report.returncode == 0, report.stderr
    metrics = pd.read_csv(models / "report" / "metrics.csv").query("task == 'acl'")
    assert set(metrics["threshold_chosen_on"]) == {"valid, out-of-fold"}  # valid chose them: called out of fold
    assert set(metrics.query("model != 'ensemble'")["probabilities"]) == {"chose the epoch"}
    assert "this valid split chose them" in report.stdout


def test_fit_on_tune_without_a_tuning_split_is_refused_before_training(tiny_data, tmp_path):
    options = ["--tune-fraction", "0", "--select-on", "valid", "--fit-on", "tune"]
    result = run_training("train_all.py", tiny_data, tmp_path / "m", *options)
    assert result.returncode == 2 and "--fit-on tune needs a tuning split" in result.stderr
    assert not (tmp_path / "m").exists()


def test_train_all_resumes_a_half_finished_sweep(tiny_data, tmp_path, monkeypatch):
    models = tmp_path / "models"

    def interrupt_after_checkpoint(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "write_metrics_csv", interrupt_after_checkpoint)
        with pytest.raises(KeyboardInterrupt):
            train(train_config(tiny_data, models, plane="axial", epochs=2))
    assert load_checkpoint(models / "acl-axial" / "last.pt")["epoch"] == 1

    only = ["--tasks", "acl", "--planes", "axial", "coronal", "--skip-meta"]
    result = run_training("train_all.py", tiny_data, models, "--epochs", "2", *only)
    assert result.returncode == 0, result.stderr
    # In this process, or in a worker process of its own (--workers auto on two free CPUs), whose log is its train.log.
    worker_log = (
        (models / "acl-axial" / "train.log").read_text() if (models / "acl-axial" / "train.log").exists() else ""
    )
    assert "acl-axial: resuming after epoch 1" in result.stdout + worker_log
    assert len(pd.read_csv(models / "acl-axial" / "metrics.csv")) == 2
    assert len(pd.read_csv(models / "acl-coronal" / "metrics.csv")) == 2


def break_dataset(data: Path) -> None:
    """The two problems of the docs' example: a cut-short download and a header line."""
    path = data / "train" / "sagittal" / "0004.npy"
    path.write_bytes(path.read_bytes()[:300])
    text = (data / "valid-acl.csv").read_text()
    (data / "valid-acl.csv").write_text("case,label\n" + text)


@pytest.mark.parametrize(
    "script,extra",
    [
        ("train_plane.py", ["--task", "acl", "--plane", "sagittal", "--epochs", "1"]),
        ("train_all.py", ["--epochs", "1"]),
    ],
)
def test_bad_data_gives_one_message_and_writes_nothing(tiny_data, tmp_path, script, extra):
    models = tmp_path / "models"
    models.mkdir()
    (models / "keep.txt").write_text("earlier work")
    before = folder_snapshot(models)
    break_dataset(tiny_data)
    result = run_training(script, tiny_data, models, *extra)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "train/sagittal/0004.npy: truncated or corrupt" in result.stderr
    assert "valid-acl.csv, line 1" in result.stderr and "header" in result.stderr
    assert folder_snapshot(models) == before


def test_train_meta_on_bad_data_and_missing_models(tmp_path):
    data = write_tiny_layout(tmp_path / "data")
    result = run("train_meta.py", "--data-dir", str(data), "--output-dir", str(tmp_path / "empty"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no checkpoint" in result.stderr and "acl-sagittal" in result.stderr


def test_bad_arguments_are_named(tiny_data, tmp_path):
    common = ["--task", "acl", "--plane", "sagittal", "--data-dir", str(tiny_data), "--output-dir", str(tmp_path / "m")]
    result = run("train_plane.py", *common, "--epochs", "0", "--no-pretrained")
    assert result.returncode == 2 and "--epochs 0" in result.stderr and "Traceback" not in result.stderr
    # CUDA hidden from the process, so the refusal is checked on any machine
    no_gpu = {"CUDA_VISIBLE_DEVICES": ""}
    result = run("train_plane.py", *common, "--epochs", "1", "--device", "cuda", "--no-pretrained", env=no_gpu)
    assert result.returncode == 2 and "--device cuda: no CUDA device" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m" / "acl-sagittal").exists()
