"""Retraining from a trained model (--init-from), and training on an imported KneeMRI cohort (acl labels only)."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from helpers import train_config

from mrnet import layout
from mrnet.checkpoint import load_checkpoint
from mrnet.cli.train_plane import main as train_plane
from mrnet.errors import CheckpointError
from mrnet.importing.kneemri import import_kneemri
from mrnet.training.trainer import train
from tests.import_cohorts import write_kneemri


@pytest.mark.slow
def test_init_from_starts_from_the_checkpoint_and_records_it(tiny_data, tmp_path):
    train(train_config(tiny_data, tmp_path / "first"))
    start = layout.best_checkpoint(tmp_path / "first", "acl", "sagittal")
    # An lr of 1e-12 moves no weight measurably: the new run's weights are the checkpoint's.
    train(train_config(tiny_data, tmp_path / "second", init_from=str(start), lr=1e-12))
    first, second = (
        load_checkpoint(start),
        load_checkpoint(layout.best_checkpoint(tmp_path / "second", "acl", "sagittal")),
    )
    assert second["config"]["init_from"] == str(start)
    for name, weight in first["model"].items():
        assert torch.allclose(weight, second["model"][name], atol=1e-6), name
    with pytest.raises(CheckpointError, match="pool 'max' there, 'attention' here"):
        train(train_config(tiny_data, tmp_path / "third", init_from=str(start), pool="attention"))


@pytest.mark.slow
def test_kneemri_cohort_trains_acl_from_a_models_folder(tiny_data, tmp_path):
    train(train_config(tiny_data, tmp_path / "first"))
    src, _ = write_kneemri(tmp_path, 10)
    data = tmp_path / "kneemri-data"
    import_kneemri(src, data, size=64, valid_fraction=0.4)
    with contextlib.redirect_stdout(io.StringIO()):
        train_plane(
            [
                "--data-dir",
                str(data),
                "--models-dir",
                str(tmp_path / "retrained"),
                "--task",
                "acl",
                "--plane",
                "sagittal",
                "--init-from",
                str(tmp_path / "first"),
                "--no-pretrained",
                "--epochs",
                "1",
                "--tune-fraction",
                "0",
                "--select-on",
                "valid",
                "--device",
                "cpu",
            ]
        )
    saved = load_checkpoint(layout.best_checkpoint(tmp_path / "retrained", "acl", "sagittal"))
    assert saved["config"]["init_from"] == str(tmp_path / "first")


@pytest.mark.slow  # imports 12 DICOM studies, trains nine one-epoch models and evaluates them
def test_an_imported_dicom_cohort_trains_and_evaluates(tmp_path):
    from mrnet.cli.evaluate import main as evaluate
    from mrnet.cli.import_data import main as import_data
    from mrnet.cli.train_all import main as train_all
    from tests.import_cohorts import write_dicom_cohort

    src, labels, _ = write_dicom_cohort(tmp_path, 12)
    data, run = tmp_path / "DATA", tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        import_data(
            [
                "dicom",
                str(src),
                "--labels",
                str(labels),
                "--out",
                str(data),
                "--size",
                "64",
                "--series",
                "sagittal=SAGITTAL KNEE",
            ]
        )
        train_all(
            [
                "--data-dir",
                str(data),
                "--models-dir",
                str(run),
                "--no-pretrained",
                "--epochs",
                "1",
                "--tune-fraction",
                "0",
                "--select-on",
                "valid",
                "--device",
                "cpu",
                "--no-augment",
            ]
        )
        metrics = evaluate(
            [
                "--data-dir",
                str(data),
                "--models-dir",
                str(run),
                "--bootstrap",
                "0",
                "--heatmap-exams",
                "0",
                "--viewer-exams",
                "0",
                "--device",
                "cpu",
            ]
        )
    assert metrics is not None and (run / "report" / "report.md").is_file()
