"""--overwrite starts over: no TensorBoard events or best checkpoint of the earlier run remain."""

from __future__ import annotations

import pytest

from mrnet.layout import tensorboard_dir
from mrnet.training.config import TrainConfig
from mrnet.training.trainer import train


@pytest.mark.slow
def test_overwrite_clears_the_earlier_runs_events(tiny_data, tmp_path):
    models = tmp_path / "models"
    options = {"epochs": 1, "lr": 1e-4, "weight_decay": 1e-4, "pretrained": False, "device": "cpu"}
    cfg = TrainConfig(task="acl", plane="sagittal", data_dir=str(tiny_data), models_dir=str(models), **options)
    train(cfg)
    events = tensorboard_dir(models, "acl", "sagittal")
    first = sorted(p.name for p in events.iterdir())
    cfg.overwrite = True
    train(cfg)
    second = sorted(p.name for p in events.iterdir())
    assert len(first) == len(second) == 1  # without clearing, both runs' event files would be there
