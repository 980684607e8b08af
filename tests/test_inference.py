"""One preprocessing path: predict and evaluate give the same probability for the same exam and models."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from mrnet import PLANES, TASKS
from mrnet.checkpoint import load_checkpoint, save_checkpoint
from mrnet.cli.evaluate import main as evaluate
from mrnet.cli.predict import main as predict
from mrnet.errors import CheckpointError, MRNetError
from mrnet.inference import load_plane_model
from mrnet.layout import best_checkpoint


def upsampled_copy(source, target):
    """The tiny dataset at 96 px instead of the models' 64 px: every command must resize it the same way."""
    shutil.copytree(source, target)
    for path in target.rglob("*.npy"):
        volume = torch.from_numpy(np.load(path)).float()[:, None]
        big = torch.nn.functional.interpolate(volume, size=(96, 96), mode="nearest")[:, 0].to(torch.uint8)
        np.save(path, big.numpy())
    return target


@pytest.mark.slow
def test_predict_and_evaluate_agree_on_resized_exams(tiny, tmp_path, capsys):
    data = upsampled_copy(tiny.data_dir, tmp_path / "data96")
    report = tmp_path / "report"
    evaluate(
        [
            *("--data-dir", str(data), "--models-dir", str(tiny.models_dir), "--out", str(report), "--bootstrap", "0"),
            "--heatmap-exams",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert "slices are 96x96 but the model was trained on 64x64" in capsys.readouterr().err
    by_case = pd.read_csv(tmp_path / "report" / "predictions_with_ids.csv", dtype={"case": str}).set_index("case")
    case = by_case.index[0]
    planes = [a for p in PLANES for a in (f"--{p}", str(data / "valid" / p / f"{case}.npy"))]
    table = predict(["--models-dir", str(tiny.models_dir), *planes, "--out", str(tmp_path / "p"), "--device", "cpu"])
    for task in TASKS:
        assert table[f"{task}_ensemble"].iloc[0] == pytest.approx(by_case.loc[case, task], abs=1e-6)


@pytest.mark.slow
def test_an_all_black_exam_is_refused_not_scored(tiny, tmp_path):
    for plane in PLANES:
        np.save(tmp_path / f"{plane}.npy", np.zeros((3, 64, 64), dtype=np.uint8))
    with pytest.raises(MRNetError, match=r"axial.npy \(.*, axial\): every pixel has one grey value \(0\)"):
        predict(["--models-dir", str(tiny.models_dir), "--exam-dir", str(tmp_path), "--out", str(tmp_path / "p")])
    assert not (tmp_path / "p" / "predictions.csv").exists()


def test_a_checkpoint_with_the_marker_but_other_weights_is_named(tiny, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny.models_dir / "acl-axial", models / "acl-axial")
    state = load_checkpoint(best_checkpoint(models, "acl", "axial"))
    save_checkpoint({**state, "model": {"weight": torch.zeros(3)}}, best_checkpoint(models, "acl", "axial"))
    with pytest.raises(CheckpointError, match=r"acl-axial/best.pt: the checkpoint does not hold MRNet weights"):
        load_plane_model(models, "acl", "axial", torch.device("cpu"))


@pytest.mark.slow
def test_output_folders_are_checked_before_any_inference(tiny, tmp_path, capsys):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    case = sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))[0]
    planes = [a for p in PLANES for a in (f"--{p}", str(tiny.data_dir / "valid" / p / f"{case}.npy"))]
    with pytest.raises(MRNetError, match=r"output folder .*a-file/out is not writable.*--out"):
        predict(["--models-dir", str(tiny.models_dir), *planes, "--out", str(blocked / "out"), "--device", "cpu"])
    with pytest.raises(MRNetError, match=r"a-file/cam is not writable.*--cam"):
        predict(["--models-dir", str(tiny.models_dir), *planes, "--cam", str(blocked / "cam"), "--device", "cpu"])
    with pytest.raises(MRNetError, match=r"a-file/report is not writable.*--out"):
        evaluate(
            [
                *("--data-dir", str(tiny.data_dir), "--models-dir", str(tiny.models_dir)),
                "--out",
                str(blocked / "report"),
            ]
        )
    assert "computing per-plane probabilities" not in capsys.readouterr().out
