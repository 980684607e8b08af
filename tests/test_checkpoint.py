"""Atomic checkpoint writes and refusing checkpoints that belong to another model."""

from __future__ import annotations

import errno

import pytest
import torch

from mrnet import checkpoint as ckpt_module
from mrnet.checkpoint import load_checkpoint, save_checkpoint
from mrnet.errors import CheckpointError, MRNetError


def test_round_trip(tmp_path):
    state = {"task": "acl", "plane": "sagittal", "model": {"w": torch.arange(3.0)}, "epoch": 4}
    save_checkpoint(state, tmp_path / "last.pt")
    loaded = load_checkpoint(tmp_path / "last.pt", "acl", "sagittal")
    assert loaded["epoch"] == 4 and torch.equal(loaded["model"]["w"], torch.arange(3.0))


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"task": "acl", "plane": "sagittal", "epoch": 1}, path)
    before = path.read_bytes()

    def fill_disk(obj, handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_module.torch, "save", fill_disk)
    with pytest.raises(MRNetError, match=r"No space left on device.*intact"):
        save_checkpoint({"task": "acl", "plane": "sagittal", "epoch": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_checkpoint_of_another_model_is_refused(tmp_path):
    save_checkpoint({"task": "acl", "plane": "sagittal"}, tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match="task=acl plane=sagittal, not task=meniscus plane=coronal"):
        load_checkpoint(tmp_path / "best.pt", "meniscus", "coronal")


def test_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes.pt is not a readable MRNet checkpoint"):
        load_checkpoint(tmp_path / "notes.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"foreign.pt is not an MRNet checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
