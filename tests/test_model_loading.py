"""Each plane model is read once per command: the bytes hashed against the stacker are the bytes scored, drawn
from and shown; a folder whose training run holds its lock is refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mrnet import PLANES, TASKS
from mrnet.checkpoint import save_checkpoint
from mrnet.cli.evaluate import main as evaluate
from mrnet.cli.predict import main as predict
from mrnet.errors import MRNetError
from mrnet.inference import PlaneModels
from mrnet.layout import best_checkpoint
from mrnet.lock import RunLock


@pytest.mark.parametrize("folder", ["acl-axial", "all-axial"])
def test_a_folder_being_trained_is_refused_naming_the_process(tmp_path, folder):
    refused = pytest.raises(MRNetError, match=rf"{folder} is being trained by PID {os.getpid()}")
    with RunLock(tmp_path / "models" / folder, what="training run"), refused:
        PlaneModels(tmp_path / "models", torch.device("cpu")).get("acl", "axial")


def test_a_lock_file_left_by_a_dead_run_blocks_nothing(tmp_path):
    (tmp_path / "models" / "acl-axial").mkdir(parents=True)
    (tmp_path / "models" / "acl-axial" / "run.lock").write_text("999999\n")  # the file, but no live lock
    with pytest.raises(MRNetError, match=r"checkpoint .* not found"):  # it goes on to read the checkpoint
        PlaneModels(tmp_path / "models", torch.device("cpu")).get("acl", "axial")


def retrained(path: Path) -> None:
    """best.pt replaced by other weights of the same model, as a resumed training run would write it."""
    state = torch.load(path, weights_only=True)  # not through Path.read_bytes, which the tests count
    save_checkpoint({**state, "model": {k: v * 1.5 for k, v in state["model"].items()}}, path)


def count_reads(monkeypatch, swap: Path | None = None) -> dict[Path, int]:
    """Count every read of a best.pt; with `swap`, replace that file right after its first read."""
    reads: dict[Path, int] = {}
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        data = real(self)
        if self.name == "best.pt":
            reads[self] = reads.get(self, 0) + 1
            if swap is not None and self == swap and reads[self] == 1:
                retrained(self)
        return data

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    return reads


def case_inputs(data_dir: Path, case: str) -> list[str]:
    return [a for p in PLANES for a in (f"--{p}", str(data_dir / "valid" / p / f"{case}.npy"))]


@pytest.mark.slow
def test_predict_uses_the_bytes_it_hashed_when_best_pt_is_replaced_mid_run(tiny, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(tiny.models_dir, models)
    case = sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))[0]
    argv = ["--models-dir", str(models), *case_inputs(tiny.data_dir, case), "--device", "cpu"]
    before = predict([*argv, "--out", str(tmp_path / "before")])

    swapped = best_checkpoint(models, "acl", "axial")
    original = swapped.read_bytes()
    reads = count_reads(monkeypatch, swap=swapped)
    extra = ["--cam", str(tmp_path / "cam"), "--html", str(tmp_path / "html")]
    during = predict([*argv, "--out", str(tmp_path / "during"), *extra])
    # Scores, heatmaps and viewer pages all took the model from one read of each best.pt.
    assert reads == {best_checkpoint(models, t, p): 1 for t in TASKS for p in PLANES}
    pd.testing.assert_frame_equal(during, before)

    monkeypatch.undo()
    assert swapped.read_bytes() != original  # the file did change under the command
    with pytest.raises(MRNetError, match=r"ensemble-acl.json was fitted on other plane models .*acl-axial/best.pt"):
        predict([*argv, "--out", str(tmp_path / "after")])  # the next run sees the new bytes: refused


@pytest.mark.slow
def test_evaluate_reads_each_checkpoint_once_for_scores_heatmaps_and_pages(tiny, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(tiny.models_dir, models)
    reads = count_reads(monkeypatch, swap=best_checkpoint(models, "acl", "sagittal"))
    argv = ["--data-dir", str(tiny.data_dir), "--models-dir", str(models), "--bootstrap", "0", "--device", "cpu"]
    metrics = evaluate([*argv, "--out", str(tmp_path / "report"), "--heatmap-exams", "1", "--viewer-exams", "1"])
    assert reads == {best_checkpoint(models, t, p): 1 for t in TASKS for p in PLANES}
    assert list((tmp_path / "report" / "heatmaps").glob("acl-*-sagittal-*.png"))  # drawn from the model read once
    saved = pd.read_csv(models / "auc_table.csv").set_index("task")
    acl = metrics[(metrics["task"] == "acl") & (metrics["model"] == "sagittal")]["auc"].iloc[0]
    assert np.isclose(acl, saved.loc["acl", "sagittal"], atol=1e-4)  # the hashed model's AUC, not the new one's
