"""A sweep's worker process: each job's output to its own log, a plane read once for its models, the protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest
from helpers import ROOT, train_config

from mrnet.training import worker
from mrnet.training.worker import PlaneCache, output_to, serve


def test_output_to_sends_prints_and_raw_writes_to_the_log_then_restores(tmp_path, capfd):
    log = tmp_path / "train.log"
    print("before")
    with output_to(log):
        print("from python")
        sys.stderr.write("from stderr\n")
        os.write(1, b"from fd 1\n")  # what C code and subprocesses write
    print("after")
    assert log.read_text() == "from python\nfrom stderr\nfrom fd 1\n"
    out = capfd.readouterr().out
    assert "before" in out and "after" in out and "from" not in out


def test_a_plane_is_read_once_for_its_models_and_dropped_for_the_next(monkeypatch):
    reads = []
    monkeypatch.setattr(
        "mrnet.data.dataset.check_and_load", lambda data_dir, tasks, planes: reads.append(planes) or object()
    )
    cache = PlaneCache()
    tasks = ("abnormal", "acl")
    first = cache.get(train_config("d", "m", task="abnormal", plane="axial"), tasks)
    assert cache.get(train_config("d", "m", task="acl", plane="axial"), tasks) is first
    cache.get(train_config("d", "m", task="acl", plane="coronal"), tasks)
    assert reads == [("axial",), ("coronal",)]


def test_a_failed_job_answers_its_status_logs_the_error_and_ends_the_worker(tmp_path, monkeypatch):
    def refuse(cfg, data=None, explicit=None):
        from mrnet.errors import MRNetError

        raise MRNetError(f"{cfg.name}: refused for the test")

    monkeypatch.setattr("mrnet.training.trainer.train", refuse)
    monkeypatch.setattr(PlaneCache, "get", lambda self, cfg, tasks: None)
    jobs = [job(tmp_path, task) for task in ("acl", "meniscus")]
    answers = tmp_path / "answers"
    with open(answers, "w") as out:
        assert serve(iter(jobs), out) == 2
    assert [json.loads(line) for line in answers.read_text().splitlines()] == [
        {"model": "acl-sagittal", "exit_code": 2}  # the worker stopped: meniscus goes to a fresh one
    ]
    assert "error: acl-sagittal: refused for the test" in (tmp_path / "acl.log").read_text()


def job(tmp_path, task: str) -> str:
    cfg = train_config(tmp_path / "data", tmp_path / "models", task=task, threads="1")
    return json.dumps({"config": asdict(cfg), "explicit": [], "tasks": [task], "log": str(tmp_path / f"{task}.log")})


@pytest.mark.slow  # starts a worker process
def test_the_worker_process_answers_each_job_and_ends_when_stdin_closes(tiny_data, tmp_path):
    models = tmp_path / "models"
    jobs = []
    for task in ("acl", "meniscus"):
        cfg = train_config(tiny_data, models, task=task, threads="1", epochs=1)
        jobs.append(
            {
                "config": asdict(cfg),
                "argv": ["scripts/train_all.py", "--epochs", "1"],
                "explicit": [],
                "tasks": ["acl", "meniscus"],
                "log": str(tmp_path / task),
            }
        )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", worker.__name__],
        input="".join(json.dumps(j) + "\n" for j in jobs),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["exit_code"] for line in done.stdout.splitlines()] == [0, 0]
    for task in ("acl", "meniscus"):
        log = (tmp_path / task).read_text()
        assert log.startswith("cpu (1 thread: --threads 1)") and "reached --epochs 1" in log
        assert (models / f"{task}-sagittal" / "best.pt").is_file()
        environment = json.loads((models / f"{task}-sagittal" / "environment.json").read_text())
        assert environment["command"] == "scripts/train_all.py --epochs 1"  # the sweep's, not the worker's


def test_a_finished_model_hands_its_gpu_memory_back_for_a_worker_sharing_the_gpu(monkeypatch):
    import torch

    released = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: released.append(True))
    worker.release_device_memory()
    assert released == [True]
