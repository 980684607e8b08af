"""train_all: command lines handed to workers, and models spread over several devices."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import run_training

from mrnet.cli.common import training_config_from_args
from mrnet.cli.train_all import train_plane_argv
from mrnet.cli.train_plane import get_args_parser
from mrnet.errors import MRNetError
from mrnet.training.config import TrainConfig
from mrnet.training.sweep import cpu_workers


def test_worker_command_line_rebuilds_the_same_config():
    cfg = TrainConfig(
        task="meniscus",
        plane="coronal",
        data_dir="d",
        models_dir="o",
        epochs=3,
        lr=2e-4,
        pretrained=False,
        augment=False,
        channels_last=False,
        seed=5,
        tune_fraction=0.2,
        split_seed=3,
        select_on="valid",
        plateau_on="auc",
        resume=True,
    )
    explicit = {
        "epochs",
        "lr",
        "pretrained",
        "augment",
        "channels_last",
        "seed",
        "tune_fraction",
        "split_seed",
        "select_on",
        "plateau_on",
    }
    argv = train_plane_argv(cfg, explicit, "cuda:1")
    assert argv[1:3] == ["-m", "mrnet.cli.train_plane"]
    parsed, _ = training_config_from_args(get_args_parser().parse_args(argv[3:]))
    assert parsed == TrainConfig(**{**cfg.__dict__, "device": "cuda:1"})


def test_a_cpu_worker_gets_its_share_of_the_threads():
    cfg = TrainConfig(task="acl", plane="axial", data_dir="d", models_dir="o", threads="auto")
    argv = train_plane_argv(cfg, set(), "cpu", threads=1)
    parsed, _ = training_config_from_args(get_args_parser().parse_args(argv[3:]))
    assert (parsed.device, parsed.threads) == ("cpu", "1")


def test_cpu_workers_one_per_thread_on_the_cpu_only():
    assert cpu_workers("auto", "cpu", threads=2, models=9) == (["cpu", "cpu"], 1)
    assert cpu_workers("auto", "cpu", threads=1, models=9) == ([], None)  # one free core: one model at a time
    assert cpu_workers("auto", "cpu", threads=8, models=3) == (["cpu"] * 3, 2)  # never more workers than models
    assert cpu_workers("2", "cpu", threads=8, models=9) == (["cpu", "cpu"], 4)
    assert cpu_workers("1", "cpu", threads=8, models=9) == ([], None)
    assert cpu_workers("auto", "cuda", threads=8, models=9) == ([], None)
    with pytest.raises(MRNetError, match="--workers none"):
        cpu_workers("none", "cpu", threads=2, models=9)


@pytest.mark.slow
def test_models_spread_over_two_workers(tiny_data, tmp_path):
    models = tmp_path / "models"
    two_workers = ["--devices", "cpu", "cpu"]
    result = run_training("train_all.py", tiny_data, models, "--epochs", "1", "--tasks", "acl", *two_workers)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("done on cpu") == 3
    for plane in ("axial", "coronal", "sagittal"):
        assert "reached --epochs 1" in (models / f"acl-{plane}" / "train.log").read_text()
    assert pd.read_csv(models / "auc_table.csv")["task"].tolist() == ["acl"]


@pytest.mark.slow
def test_cpu_workers_train_the_sweep_two_at_a_time(tiny_data, tmp_path):
    models = tmp_path / "models"
    result = run_training("train_all.py", tiny_data, models, "--epochs", "1", "--tasks", "acl", "--workers", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cpu (1 thread: ")  # the first line says the threads and why
    assert "training 3 models 2 at a time, one process of 1 thread(s) each" in lines
    assert result.stdout.count("done on cpu") == 3
    for plane in ("axial", "coronal", "sagittal"):
        log = (models / f"acl-{plane}" / "train.log").read_text()
        assert log.startswith("cpu (1 thread: --threads 1)")  # each worker runs its share
    config = json.loads((models / "acl-axial" / "config.json").read_text())
    assert config["threads"] == "1"
