"""Data-parallel training with 2 CPU processes (gloo): ranks agree, gathered tuning-split predictions are exact."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import ROOT, run_python

from mrnet.checkpoint import load_checkpoint
from mrnet.data.dataset import check_and_load
from mrnet.data.splits import tune_split_for
from mrnet.inference import predict_logits, sigmoid
from mrnet.models import model_for_inference
from mrnet.training.distributed import Ranks, shard


def test_shards_are_equal_sized_and_cover_every_exam():
    order = list(range(7))
    parts = [shard(order, Ranks(rank=r, world_size=3)) for r in range(3)]
    assert {len(p) for p in parts} == {3}
    assert set().union(*map(set, parts)) == set(order)
    assert shard(order, Ranks()) == order


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_rank_ddp_agrees_and_gathers_exact_predictions(tiny_data, tmp_path):
    out, weights = tmp_path / "models", tmp_path / "weights"
    weights.mkdir()
    result = run_python(
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(ROOT / "tests" / "ddp_worker.py"),
        str(tiny_data),
        str(out),
        str(weights),
        env={"OMP_NUM_THREADS": "1"},
    )
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
