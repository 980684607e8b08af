"""Per-plane training: outputs, seeds, resume (including a real SIGKILL), and refusals."""

from __future__ import annotations

import json
import shutil
import signal
import time

import pandas as pd
import pytest
import torch
from helpers import folder_snapshot, start_script, train_config
from sklearn.metrics import roc_auc_score

from mrnet.checkpoint import load_checkpoint
from mrnet.cli.train_plane import main
from mrnet.errors import CheckpointError, MRNetError
from mrnet.files import temporary_leftovers
from mrnet.training.trainer import train


@pytest.mark.slow
def test_one_epoch_writes_every_output(tiny_data, tmp_path):
    out = tmp_path / "models"
    summary = train(train_config(tiny_data, out))
    run = out / "acl-sagittal"
    for name in ("best.pt", "last.pt", "metrics.csv", "valid_predictions.csv", "config.json", "environment.json"):
        assert (run / name).is_file(), name
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "train_loss", "val_loss", "val_auc", "lr", "best"]
    predictions = pd.read_csv(run / "valid_predictions.csv", dtype={"case": str})
    assert list(predictions.columns) == ["case", "label", "prob"]
    assert predictions["case"].tolist() == [f"{i:04d}" for i in range(12, 20)]
    assert predictions["prob"].between(0, 1).all()
    # the epoch's AUC is that of the validation probabilities written beside it
    assert len(metrics) == 1
    assert metrics["val_auc"][0] == pytest.approx(roc_auc_score(predictions["label"], predictions["prob"]), abs=1e-6)
    assert any((out / "runs" / "acl-sagittal").iterdir())  # TensorBoard events
    env = json.loads((run / "environment.json").read_text())
    assert {"git_revision", "packages", "python"} <= set(env) and "torch" in env["packages"]
    assert json.loads((run / "config.json").read_text())["seed"] == 0
    assert load_checkpoint(run / "best.pt", "acl", "sagittal")["image_size"] == 64
    assert load_checkpoint(run / "last.pt", "acl", "sagittal")["finished"] is True
    assert summary["best_epoch"] == 1


@pytest.mark.slow
def test_model_learns_the_tiny_task(tiny_data, tmp_path):
    summary = train(train_config(tiny_data, tmp_path / "m", epochs=3))
    assert summary["best_val_auc"] >= 0.9


@pytest.mark.slow
def test_same_seed_gives_identical_results_and_another_seed_does_not(tiny_data, tmp_path):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        train(train_config(tiny_data, tmp_path / name, epochs=2, seed=seed))
        run = tmp_path / name / "acl-sagittal"
        runs[name] = ((run / "metrics.csv").read_text(), (run / "valid_predictions.csv").read_text())
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0]


@pytest.mark.slow
def test_resume_continues_to_the_same_result(tiny_data, tmp_path):
    train(train_config(tiny_data, tmp_path / "straight", epochs=3))
    train(train_config(tiny_data, tmp_path / "split", epochs=1))
    train(train_config(tiny_data, tmp_path / "split", epochs=3, resume=True), explicit={"epochs"})
    for name in ("metrics.csv", "valid_predictions.csv"):
        assert (tmp_path / "straight" / "acl-sagittal" / name).read_text() == (
            tmp_path / "split" / "acl-sagittal" / name
        ).read_text()
    a = load_checkpoint(tmp_path / "straight" / "acl-sagittal" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "split" / "acl-sagittal" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_existing_run_is_not_overwritten_without_asking(tiny_data, tmp_path):
    out = tmp_path / "models"
    train(train_config(tiny_data, out))
    before = folder_snapshot(out)
    with pytest.raises(MRNetError, match=r"--resume.*--overwrite"):
        train(train_config(tiny_data, out))
    assert folder_snapshot(out) == before
    train(train_config(tiny_data, out, overwrite=True))


def test_resume_without_a_run(tiny_data, tmp_path):
    with pytest.raises(MRNetError, match="nothing to resume"):
        train(train_config(tiny_data, tmp_path / "m", resume=True))


@pytest.mark.slow
def test_resume_with_a_different_recipe_is_refused(tiny_data, tmp_path):
    train(train_config(tiny_data, tmp_path / "m"))
    with pytest.raises(MRNetError, match=r"lr=0.001.*differ|differ.*lr=0.001"):
        train(train_config(tiny_data, tmp_path / "m", epochs=2, resume=True, lr=1e-3), explicit={"lr", "epochs"})


@pytest.mark.slow
def test_resume_from_a_checkpoint_of_another_model(tiny_data, tmp_path):
    out = tmp_path / "m"
    train(train_config(tiny_data, out))
    (out / "meniscus-coronal").mkdir()
    shutil.copy(out / "acl-sagittal" / "last.pt", out / "meniscus-coronal" / "last.pt")
    with pytest.raises(CheckpointError, match="task=acl plane=sagittal, not task=meniscus plane=coronal"):
        train(train_config(tiny_data, out, task="meniscus", plane="coronal", resume=True))


@pytest.mark.slow
def test_single_class_validation_selects_by_loss(tiny_data, tmp_path, capsys):
    rows = [f"{i:04d},0" for i in range(12, 20)]
    (tiny_data / "valid-acl.csv").write_text("\n".join(rows) + "\n")
    summary = train(train_config(tiny_data, tmp_path / "m", epochs=2))
    assert "only one class" in capsys.readouterr().out
    metrics = pd.read_csv(tmp_path / "m" / "acl-sagittal" / "metrics.csv")
    assert metrics["val_auc"].isna().all()
    assert summary["best_epoch"] == int(metrics["val_loss"].idxmin()) + 1


def test_output_dir_that_cannot_be_written(tiny_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(MRNetError, match="not writable"):
        train(train_config(tiny_data, blocker / "models"))


def test_train_split_with_one_class_is_refused(tiny_data, tmp_path):
    (tiny_data / "train-acl.csv").write_text("\n".join(f"{i:04d},0" for i in range(12)) + "\n")
    with pytest.raises(MRNetError, match="0 positive"):
        train(train_config(tiny_data, tmp_path / "m"))


@pytest.mark.slow
def test_exams_per_step_trains(tiny_data, tmp_path):
    summary = train(train_config(tiny_data, tmp_path / "m", exams_per_step=3, epochs=1))
    assert summary["epochs_run"] == 1


@pytest.mark.slow
def test_early_stopping(tiny_data, tmp_path):
    summary = train(train_config(tiny_data, tmp_path / "m", epochs=20, patience=2, lr=1e-9))
    assert summary["epochs_run"] < 20 and "early stop" in summary["stop_reason"]


@pytest.mark.slow
def test_main_parses_the_command_line(tiny_data, tmp_path):
    summary = main(
        [
            "--task",
            "meniscus",
            "--plane",
            "coronal",
            "--data-dir",
            str(tiny_data),
            "--output-dir",
            str(tmp_path / "m"),
            "--epochs",
            "1",
            "--no-pretrained",
            "--device",
            "cpu",
        ]
    )
    assert summary["model"] == "meniscus-coronal"
    saved = json.loads((tmp_path / "m" / "meniscus-coronal" / "config.json").read_text())
    assert saved["lr"] == 1e-5 and saved["weight_decay"] == 0.01  # the paper's defaults


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tiny_data, tmp_path):
    common = [
        "--task",
        "acl",
        "--plane",
        "sagittal",
        "--data-dir",
        str(tiny_data),
        "--epochs",
        "6",
        "--lr",
        "1e-4",
        "--weight-decay",
        "1e-4",
        "--no-pretrained",
        "--device",
        "cpu",
        "--seed",
        "3",
    ]
    straight = start_script("train_plane.py", *common, "--output-dir", str(tmp_path / "straight"))

    killed_dir = tmp_path / "killed"
    victim = start_script("train_plane.py", *common, "--output-dir", str(killed_dir))
    first_checkpoint = killed_dir / "acl-sagittal" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and victim.poll() is None and not first_checkpoint.exists():
        time.sleep(0.02)
    assert victim.poll() is None, "the run ended before it could be interrupted"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    interrupted_at = load_checkpoint(killed_dir / "acl-sagittal" / "last.pt")
    assert not interrupted_at["finished"] and interrupted_at["epoch"] < 6

    resumed = start_script("train_plane.py", *common, "--output-dir", str(killed_dir), "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming after epoch" in out
    straight.communicate(timeout=300)
    assert straight.returncode == 0
    for name in ("metrics.csv", "valid_predictions.csv"):
        assert (killed_dir / "acl-sagittal" / name).read_text() == (
            tmp_path / "straight" / "acl-sagittal" / name
        ).read_text()
    assert temporary_leftovers(killed_dir / "acl-sagittal") == []


@pytest.mark.slow
def test_resume_removes_partial_writes_of_the_killed_run(tiny_data, tmp_path):
    out = tmp_path / "m"
    train(train_config(tiny_data, out, epochs=1))
    partial = out / "acl-sagittal" / ".last.pt.abc123.tmp"
    partial.write_bytes(b"half a checkpoint")
    train(train_config(tiny_data, out, epochs=2, resume=True), explicit={"epochs"})
    assert not partial.exists()
    assert load_checkpoint(out / "acl-sagittal" / "last.pt")["epoch"] == 2


@pytest.mark.slow
def test_series_without_labels_are_noted_and_ignored(tiny_data, tmp_path, capsys):
    extra = tiny_data / "train" / "sagittal" / "0999.npy"
    shutil.copy(tiny_data / "train" / "sagittal" / "0000.npy", extra)
    summary = train(train_config(tiny_data, tmp_path / "m"))
    assert "1 train/sagittal series have no label and are ignored (e.g. 0999)" in capsys.readouterr().out
    assert summary["epochs_run"] == 1
