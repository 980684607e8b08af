"""Data-parallel training with 2 CPU processes (gloo): ranks agree, gathered tuning-split predictions are exact;
collectives use the rank's device; a check that fails on one rank stops them all."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from helpers import ROOT, run_python, train_config

from mrnet import layout
from mrnet.checkpoint import load_checkpoint
from mrnet.data.dataset import check_and_load
from mrnet.data.splits import tune_split_for
from mrnet.errors import MRNetError
from mrnet.inference import predict_logits, sigmoid
from mrnet.lock import RunLock
from mrnet.models import model_for_inference
from mrnet.training.distributed import Ranks, mean_over_ranks, shard, stop_together


def test_shards_are_equal_sized_and_cover_every_exam():
    order = list(range(7))
    parts = [shard(order, Ranks(rank=r, world_size=3)) for r in range(3)]
    assert {len(p) for p in parts} == {3}
    assert set().union(*map(set, parts)) == set(order)
    assert shard(order, Ranks()) == order


def two_ranks(data, out, weights, **options):
    """tests/ddp_worker.py under torchrun with two gloo ranks on this machine."""
    torchrun = ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    worker = [str(ROOT / "tests" / "ddp_worker.py"), str(data), str(out), str(weights)]
    return run_python(*torchrun, "--master_port", str(free_port()), *worker, env={"OMP_NUM_THREADS": "1"}, **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_rank_ddp_agrees_and_gathers_exact_predictions(tiny_data, tmp_path):
    out, weights = tmp_path / "models", tmp_path / "weights"
    weights.mkdir()
    result = two_ranks(tiny_data, out, weights)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 data-parallel ranks" in result.stdout

    rank0, rank1 = torch.load(weights / "rank0.pt"), torch.load(weights / "rank1.pt")
    assert rank0.keys() == rank1.keys() and rank0
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)

    # The ranks scored the tuning split (the default selecting split) together; rank 0 wrote it once.
    tune = pd.read_csv(out / "tune_cases.csv", dtype={"case": str})["case"].tolist()
    assert tune == list(tune_split_for(tiny_data, 0.1, 0).cases)
    gathered = pd.read_csv(out / "acl-sagittal" / "tune_predictions.csv", dtype={"case": str})
    model = model_for_inference(
        load_checkpoint(out / "acl-sagittal" / "best.pt", "acl", "sagittal")["model"], torch.device("cpu")
    )
    train = check_and_load(tiny_data, ("acl",), ("sagittal",), ("train",))[("train", "sagittal")]
    single = sigmoid(predict_logits(model, [train.series[c] for c in tune], torch.device("cpu")))
    assert gathered["case"].tolist() == tune
    np.testing.assert_allclose(gathered["prob"].to_numpy(), single, atol=1e-6)


class Seen(Exception):
    """Raised by the all_reduce spy: it carries the device of the buffer it was given."""


def test_mean_over_ranks_reduces_a_buffer_made_on_the_ranks_device(monkeypatch):
    """NCCL takes CUDA tensors only: the buffer must be made on the rank's device, not the CPU's default."""

    def spy(buffer, *args, **kwargs):
        raise Seen(buffer.device)

    monkeypatch.setattr(dist, "all_reduce", spy)
    two_ranks = Ranks(rank=0, world_size=2)
    for device in (torch.device("meta"), torch.device("cpu")):  # meta: a device that is not the CPU, anywhere
        with pytest.raises(Seen) as seen:
            mean_over_ranks(3.0, 2, two_ranks, device)
        assert seen.value.args[0] == device


def test_mean_over_ranks_is_the_pooled_mean(monkeypatch):
    other_rank = torch.tensor([5.0, 2.0], dtype=torch.float64)  # the other rank's (total, count)
    monkeypatch.setattr(dist, "all_reduce", lambda buffer, *a, **k: buffer.add_(other_rank))
    assert mean_over_ranks(3.0, 2, Ranks(rank=0, world_size=2), torch.device("cpu")) == pytest.approx(2.0)
    assert mean_over_ranks(3.0, 2, Ranks(), torch.device("cpu")) == pytest.approx(1.5)  # one process: no collective


def fake_gather(found_by_others: list):
    def gather(found, mine):
        found[:] = [mine if item == "mine" else item for item in found_by_others]

    return gather


def test_a_check_that_fails_on_rank_0_stops_every_rank(monkeypatch):
    """Rank 1 made no check; it learns rank 0's failure from the gathered results and stops with its message."""
    monkeypatch.setattr(dist, "all_gather_object", fake_gather(["the folder is in use", "mine"]))
    with (
        pytest.raises(MRNetError, match="rank 0 stopped the run: the folder is in use"),
        stop_together(Ranks(rank=1, world_size=2)),
    ):
        pass
    monkeypatch.setattr(dist, "all_gather_object", fake_gather(["mine", None]))
    with pytest.raises(MRNetError, match=r"^the folder is in use$"), stop_together(Ranks(rank=0, world_size=2)):
        raise MRNetError("the folder is in use")  # rank 0 re-raises its own error
    monkeypatch.setattr(dist, "all_gather_object", fake_gather(["mine", None]))
    with stop_together(Ranks(rank=0, world_size=2)):  # nobody failed: every rank goes on
        pass


def test_one_process_raises_at_once_without_a_collective(monkeypatch):
    monkeypatch.setattr(dist, "all_gather_object", lambda *a: pytest.fail("no collective without torchrun"))
    with pytest.raises(MRNetError, match="in use"), stop_together(Ranks()):
        raise MRNetError("in use")


@pytest.mark.slow
def test_a_run_folder_in_use_stops_both_ranks_with_the_message(tiny_data, tmp_path):
    """Only rank 0 takes the lock; rank 1 must not wait in a collective until the backend's timeout."""
    out, weights = tmp_path / "models", tmp_path / "weights"
    weights.mkdir()
    held = RunLock(train_config(tiny_data, out).run_dir(), layout.RUN_LOCK, "training run").acquire()
    try:
        # A timeout far below gloo's 30 minutes: a rank left waiting fails the test.
        result = two_ranks(tiny_data, out, weights, timeout=120)
    finally:
        held.release()
    assert result.returncode != 0
    assert "is in use by another training run" in result.stderr
    assert "rank 0 stopped the run" in result.stderr
    assert not list(weights.iterdir())
