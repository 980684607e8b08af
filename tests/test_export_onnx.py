"""ONNX plane models: within 1e-4 of torch on exams of different lengths, scored by predict --engine onnxruntime."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import valid_input_csv as input_csv

from mrnet import PLANES, TASKS, layout
from mrnet.checkpoint import load_checkpoint, save_checkpoint
from mrnet.cli.export import main as export_main
from mrnet.cli.predict import main as predict_main
from mrnet.data.transforms import preprocess
from mrnet.errors import MRNetError
from mrnet.export.onnx_export import TOLERANCE, onnx_path, session_for
from mrnet.inference import load_plane_model

PROBABILITIES = [f"{t}_{c}" for t in TASKS for c in (*PLANES, "ensemble")]


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory) -> Path:
    """A copy of the tiny run (best checkpoints and stackers) with every plane model exported to ONNX."""
    run = tmp_path_factory.mktemp("onnx") / "run"
    shutil.copytree(tiny.models_dir, run, ignore=shutil.ignore_patterns("last.pt", "runs"))
    checks = export_main(["onnx", "--models-dir", str(run)])
    assert len(checks) == len(TASKS) * len(PLANES)
    assert all(check.max_difference <= TOLERANCE for check in checks)
    return run


@pytest.mark.slow
def test_onnx_logits_match_torch_on_exams_of_different_lengths(exported):
    rng = np.random.default_rng(1)
    for task in TASKS:
        for plane in PLANES:
            model, size = load_plane_model(exported, task, plane, torch.device("cpu"))
            session = session_for(onnx_path(exported, task, plane))
            for count in (1, 3, 7, 20):
                slices = preprocess(torch.from_numpy(rng.integers(0, 256, (count, size, size), dtype=np.uint8)))
                with torch.inference_mode():
                    expected = model(slices).reshape(-1).numpy()
                found = session.run(None, {"slices": slices.numpy()})[0]
                assert found.shape == expected.shape
                assert np.abs(found - expected).max() <= TOLERANCE, (task, plane, count)


@pytest.mark.slow
def test_predict_with_onnxruntime_equals_torch(tiny, exported, tmp_path):
    common = [
        "--models-dir",
        str(exported),
        "--input-csv",
        str(input_csv(tiny, tmp_path / "in.csv")),
        "--device",
        "cpu",
    ]
    torch_table = predict_main([*common, "--out", str(tmp_path / "torch"), "--amp", "off"])  # fp32, as ONNX runs
    onnx_table = predict_main([*common, "--out", str(tmp_path / "onnx"), "--engine", "onnxruntime"])
    assert (torch_table[PROBABILITIES] - onnx_table[PROBABILITIES]).abs().to_numpy().max() <= 1e-5


@pytest.mark.slow
def test_bundles_made_after_export_carry_the_onnx_files(tiny, exported, tmp_path):
    bundle = tmp_path / "knee.zip"
    made = export_main(["bundle", "--models-dir", str(exported), "--out", str(bundle)])
    assert len(made.onnx) == len(TASKS) * len(PLANES)
    assert "models/acl-coronal/model.onnx" in zipfile.ZipFile(bundle).namelist()
    csv = input_csv(tiny, tmp_path / "in.csv")
    direct = predict_main(
        ["--models-dir", str(exported), "--input-csv", str(csv), "--out", str(tmp_path / "a"), "--amp", "off"]
    )
    bundled = predict_main(
        ["--bundle", str(bundle), "--engine", "onnxruntime", "--input-csv", str(csv), "--out", str(tmp_path / "b")]
    )
    assert (direct[PROBABILITIES] - bundled[PROBABILITIES]).abs().to_numpy().max() <= 1e-5


@pytest.mark.slow
def test_onnx_file_of_other_weights_is_refused(tiny, exported, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    best = layout.best_checkpoint(run, "acl", "axial")
    ckpt = load_checkpoint(best)
    ckpt["model"] = {
        name: value + 0.01 if value.is_floating_point() else value for name, value in ckpt["model"].items()
    }
    save_checkpoint(ckpt, best)
    from mrnet.export.onnx_export import load_onnx_task_models

    with pytest.raises(MRNetError, match="exported from other weights"):
        load_onnx_task_models(run, "acl", torch.device("cpu"))
