"""One preprocessing path: predict and evaluate give the same probability for the same exam and models."""

from __future__ import annotations

import math
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


@pytest.mark.slow
def test_bf16_scoring_makes_no_tie_that_fp32_does_not_and_keeps_the_auc(tiny, tmp_path):
    """The same checkpoints scored in bf16 and fp32 on 120 exams: no new ties, AUCs within 0.002.

    bf16 features still swap exams whose fp32 logits are closer than bf16's rounding, so a
    split of 12 exams could move by 1/(positives x negatives); at a realistic size it cannot.
    """
    from sklearn.metrics import roc_auc_score

    from mrnet.device import Scoring
    from mrnet.inference import plane_probabilities
    from mrnet.synthetic import make_dataset

    data = tmp_path / "data"
    make_dataset(data, n_train=6, n_valid=120, size=64, seed=3, slices=(2, 4), overwrite=True)

    def scored(amp: str) -> dict:
        return plane_probabilities(data, tiny.models_dir, TASKS, ("valid",), Scoring.resolve("cpu", amp, None))

    fp32, bf16 = scored("off"), scored("bf16")
    for key, table in fp32.items():
        for plane in PLANES:
            exact, rounded = table[plane].to_numpy(), bf16[key][plane].to_numpy()
            assert len(np.unique(rounded)) == len(np.unique(exact)), (key, plane)
            difference = roc_auc_score(table["label"], rounded) - roc_auc_score(table["label"], exact)
            assert abs(difference) <= 0.002, (key, plane)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": math.nan}, r"weights hold NaN or infinite values"),
        ({"image_size": "256"}, r"image_size '256' is not a whole number of pixels from 64 to 1024"),
        ({"image_size": -5}, r"image_size -5 is not a whole number"),
        ({"image_size": 20000}, r"image_size 20000 is not a whole number"),
        ({"model_args": [1, 2]}, r"model_args is a list"),
        ({"model_args": {"backbone": "vgg", "depth": "32"}}, r"backbone 'vgg' is not one of .*; depth '32' is not"),
    ],
)
def test_a_tampered_or_broken_checkpoint_is_refused_naming_it(tiny, tmp_path, change, message):
    models = tmp_path / "models"
    shutil.copytree(tiny.models_dir, models)
    path = best_checkpoint(models, "acl", "sagittal")
    state = load_checkpoint(path)
    if "weights" in change:
        state["model"] = {k: torch.full_like(v, change["weights"]) for k, v in state["model"].items()}
    else:
        state.update(change)
    save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match=rf"acl-sagittal/best.pt: .*{message}"):
        load_plane_model(models, "acl", "sagittal", torch.device("cpu"))
    out = tmp_path / "p"
    npy = [a for p in PLANES for a in (f"--{p}", str(tiny.data_dir / "valid" / p / f"{first_valid(tiny)}.npy"))]
    with pytest.raises(MRNetError, match=r"acl-sagittal/best.pt"):
        predict(["--models-dir", str(models), *npy, "--out", str(out), "--device", "cpu"])
    assert not (out / "predictions.csv").exists()


def first_valid(run) -> str:
    return sorted(p.stem for p in (run.data_dir / "valid" / "axial").glob("*.npy"))[0]


def test_non_finite_logits_stop_the_command_naming_the_model_and_exam():
    from mrnet.inference import require_finite

    require_finite(np.array([0.5, -3.0]), "acl-sagittal", ["a", "b"])
    with pytest.raises(MRNetError, match=r"acl-sagittal model gave NaN or infinite logits for 1 of 3 .*first: c"):
        require_finite(np.array([0.5, 2.0, math.nan]), "acl-sagittal", ["a", "b", "c"])
    with pytest.raises(MRNetError, match=r"for 1 of 2 exam\(s\) \(first: b\)"):
        require_finite(np.array([[0.1, 0.2, 0.3], [0.1, math.inf, 0.3]]), "all-sagittal", ["a", "b"])
