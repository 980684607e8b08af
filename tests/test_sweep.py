"""train_all: command lines handed to workers, and models spread over several devices."""

from __future__ import annotations

import json
import os
import re
import sys

import pandas as pd
import pytest
from helpers import run_training

from mrnet import TASKS, layout
from mrnet.errors import MRNetError
from mrnet.training.config import TrainConfig
from mrnet.training.sweep import cpu_workers, device_worker, train_on_devices, worker_job


def test_a_worker_job_rebuilds_the_same_config_on_its_device_with_its_threads(tmp_path):
    cfg = TrainConfig(
        task="meniscus",
        plane="coronal",
        data_dir="d",
        models_dir=str(tmp_path),
        epochs=3,
        lr=2e-4,
        pretrained=False,
        augment=False,
        channels_last=False,
        seed=5,
        select_on="valid",
        resume=True,
        device="cuda:1",
        threads="1",
    )
    job = json.loads(json.dumps(worker_job(cfg, {"lr", "epochs"}, ["meniscus"])))  # as the pipe carries it
    assert TrainConfig(**job["config"]) == cfg
    assert job["explicit"] == ["epochs", "lr"] and job["tasks"] == ["meniscus"]
    assert job["argv"] == sys.argv  # the model's environment.json names the command the user ran
    assert job["log"] == str(tmp_path / "meniscus-coronal" / layout.TRAIN_LOG)


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


# A stand-in for mrnet.training.worker: the same protocol, no training. Each job's log gets the
# device it was told, the worker's GPU and threads, and its process id; a job whose task is named in
# FAIL answers exit 2 and the worker ends, as a real one does after a failed model.
STAND_IN = """
import json, os, sys
for line in sys.stdin:
    job = json.loads(line)
    cfg = job["config"]
    with open(job["log"], "a") as log:
        print(cfg["device"], cfg["threads"], os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ["OMP_NUM_THREADS"],
              os.getpid(), file=log)
    code = 2 if cfg["task"] in os.environ.get("FAIL", "") else 0
    print(json.dumps({"model": cfg["task"] + "-" + cfg["plane"], "exit_code": code}), flush=True)
    if code:
        sys.exit(code)
"""


def stand_in_sweep(tmp_path, devices, tasks=("abnormal", "acl", "meniscus"), threads=None):
    todo = [TrainConfig(task=task, plane="sagittal", models_dir=str(tmp_path)) for task in tasks]
    return todo, train_on_devices(todo, devices, set(), threads, worker_command=[sys.executable, "-c", STAND_IN])


def logged(cfg: TrainConfig) -> list[str]:
    return (cfg.run_dir() / layout.TRAIN_LOG).read_text().split()


@pytest.mark.slow  # starts worker processes
def test_a_gpu_listed_twice_runs_two_workers_each_on_its_cuda_0(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    todo, results = stand_in_sweep(tmp_path, ["cuda:1", "cuda:1"], tasks=("acl", "meniscus"))
    assert sorted((r.model, r.device, r.exit_code) for r in results) == [
        ("acl-sagittal", "cuda:1", 0),
        ("meniscus-sagittal", "cuda:1", 0),
    ]
    for cfg in todo:
        assert logged(cfg)[:3] == ["cuda:0", "auto", "1"]  # told cuda:0, which is GPU 1 alone


@pytest.mark.slow  # starts worker processes
def test_one_worker_process_trains_model_after_model_with_its_share_of_threads(tmp_path):
    todo, results = stand_in_sweep(tmp_path, ["cpu"], threads=1)
    assert [r.exit_code for r in results] == [0, 0, 0]
    assert {logged(cfg)[1] for cfg in todo} == {"1"}  # --threads 1 in each model's config
    assert len({logged(cfg)[4] for cfg in todo}) == 1  # one process for all three: Python and torch start once


@pytest.mark.slow  # starts worker processes
def test_a_failed_model_is_named_and_the_next_one_gets_a_fresh_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIL", "acl")
    todo = [TrainConfig(task=task, plane="sagittal", models_dir=str(tmp_path)) for task in TASKS]
    with pytest.raises(MRNetError, match=r"these models failed: acl-sagittal \(see .*acl-sagittal.train\.log\)"):
        train_on_devices(todo, ["cpu"], set(), worker_command=[sys.executable, "-c", STAND_IN])
    abnormal, acl, meniscus = (logged(cfg)[4] for cfg in todo)
    assert abnormal == acl != meniscus  # the worker that failed acl ended; meniscus ran in a new one


@pytest.mark.slow  # starts worker processes
@pytest.mark.parametrize(
    "behaviour",
    [
        "import sys; sys.stdin.readline(); sys.exit(7)",  # dies without answering: FAILED (exit 7)
        "import sys; sys.stdin.readline(); print('hello', flush=True); sys.stdin.read()",  # not the protocol
    ],
    ids=["dies", "answers-garbage"],
)
def test_a_worker_that_does_not_answer_as_the_protocol_says_fails_its_model(tmp_path, behaviour):
    todo = [TrainConfig(task="acl", plane="sagittal", models_dir=str(tmp_path))]
    with pytest.raises(MRNetError, match="these models failed: acl-sagittal"):
        train_on_devices(todo, ["cpu"], set(), worker_command=[sys.executable, "-c", behaviour])


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
