"""A diverged run stops at the bad epoch with a message, exit 2, and the last good checkpoints kept."""

from __future__ import annotations

import math

import pytest
from helpers import fast_and, run_script

import mrnet.training.trainer as trainer
from mrnet.checkpoint import load_checkpoint
from mrnet.errors import MRNetError
from mrnet.training.config import TrainConfig


def config(data, models, epochs: int, lr: float = 1e-4) -> TrainConfig:
    return TrainConfig(
        task="acl", plane="sagittal", data_dir=str(data), models_dir=str(models), epochs=epochs, lr=lr,
        weight_decay=1e-4, pretrained=False, device="cpu", patience=0,
    )  # fmt: skip


@pytest.mark.slow
def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_epoch(tiny_data, tmp_path, monkeypatch):
    real = trainer.train_epoch

    def nan_in_epoch_2(run, epoch):
        loss = real(run, epoch)
        return math.nan if epoch == 2 else loss

    monkeypatch.setattr(trainer, "train_epoch", nan_in_epoch_2)
    models = tmp_path / "models"
    with pytest.raises(MRNetError, match=r"diverged in epoch 2 \(training loss is nan\).*epoch 1 are kept.*lower --lr"):
        trainer.train(config(tiny_data, models, epochs=3))
    assert load_checkpoint(models / "acl-sagittal" / "last.pt")["epoch"] == 1
    assert load_checkpoint(models / "acl-sagittal" / "best.pt")["epoch"] == 1
    assert len((models / "acl-sagittal" / "metrics.csv").read_text().splitlines()) == 2
    assert not (models / "acl-sagittal" / "run.lock").exists()


@pytest.mark.slow
def test_a_huge_learning_rate_exits_2_naming_the_epoch(tiny_data, tmp_path):
    result = run_script(
        "train_plane.py", "--task", "acl", "--plane", "sagittal", "--data-dir", str(tiny_data),
        "--models-dir", str(tmp_path / "m"), *fast_and("--epochs", "2", "--lr", "1e30"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "training diverged in epoch 1" in result.stderr and "lower --lr" in result.stderr
    assert "Traceback" not in result.stderr and "Input contains NaN" not in result.stderr
