"""train_all: command lines handed to workers, and models spread over several devices."""

from __future__ import annotations

import json
import os
import re
import sys

import pandas as pd
import pytest
from helpers import run_training

from mrnet import layout
from mrnet.cli.common import training_config_from_args
from mrnet.cli.train_all import train_plane_argv
from mrnet.cli.train_plane import get_args_parser
from mrnet.errors import MRNetError
from mrnet.training.config import TrainConfig
from mrnet.training.sweep import cpu_workers, device_worker, train_on_devices


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


def test_a_gpu_worker_sees_its_gpu_alone_as_cuda_0_with_its_share_of_threads(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    name, env = device_worker("cuda:3", {"PATH": "/bin"}, workers=4)
    assert (name, env["CUDA_VISIBLE_DEVICES"], env["OMP_NUM_THREADS"], env["PATH"]) == ("cuda:0", "3", "4", "/bin")
    assert device_worker("cuda", {}, workers=1)[1]["CUDA_VISIBLE_DEVICES"] == "0"
    # The parent's own list: cuda:1 is the second GPU it may use.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert device_worker("cuda:1", {}, workers=2)[1]["CUDA_VISIBLE_DEVICES"] == "5"
    # The CPU keeps its name and sees what the parent sees; a user's thread count is kept.
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    name, env = device_worker("cpu", {"OMP_NUM_THREADS": "2"}, workers=8)
    assert (name, env["OMP_NUM_THREADS"], "CUDA_VISIBLE_DEVICES" in env) == ("cpu", "2", False)


@pytest.mark.slow  # starts worker processes
def test_a_gpu_listed_twice_runs_two_workers_each_on_its_cuda_0(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    todo = [TrainConfig(task=task, plane="sagittal", models_dir=str(tmp_path)) for task in ("acl", "meniscus")]
    script = "import os, sys; print(sys.argv[1], os.environ['CUDA_VISIBLE_DEVICES'], os.environ['OMP_NUM_THREADS'])"
    results = train_on_devices(todo, ["cuda:1", "cuda:1"], lambda cfg, device: [sys.executable, "-c", script, device])
    assert sorted((r.model, r.device, r.exit_code) for r in results) == [
        ("acl-sagittal", "cuda:1", 0),
        ("meniscus-sagittal", "cuda:1", 0),
    ]
    for cfg in todo:
        assert (cfg.run_dir() / layout.TRAIN_LOG).read_text().split()[:2] == ["cuda:0", "1"]


@pytest.mark.slow
def test_cpu_workers_train_the_sweep_two_at_a_time(tiny_data, tmp_path):
    models = tmp_path / "models"
    result = run_training("train_all.py", tiny_data, models, "--epochs", "1", "--tasks", "acl", "--workers", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"cpu \(\d+ threads?: ", lines[0])  # the first line says the threads and why (load-dependent)
    assert "training 3 models 2 at a time, one process of 1 thread(s) each" in lines
    assert result.stdout.count("done on cpu") == 3
    for plane in ("axial", "coronal", "sagittal"):
        log = (models / f"acl-{plane}" / "train.log").read_text()
        assert log.startswith("cpu (1 thread: --threads 1)")  # each worker runs its share
    config = json.loads((models / "acl-axial" / "config.json").read_text())
    assert config["threads"] == "1"
