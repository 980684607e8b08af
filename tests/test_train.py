"""Per-plane training: outputs, seeds, resume (including a real SIGKILL), and refusals."""

from __future__ import annotations

import json
import math
import shutil
import signal
import time

import pandas as pd
import pytest
import torch
from helpers import folder_snapshot, start_script, train_config
from sklearn.metrics import roc_auc_score

from mrnet.checkpoint import load_checkpoint
from mrnet.cli.train_plane import main
from mrnet.data.dataset import check_and_load
from mrnet.data.splits import tune_split_for
from mrnet.errors import CheckpointError, MRNetError
from mrnet.files import temporary_leftovers
from mrnet.training.config import TrainConfig, merge_resumed_config
from mrnet.training.distributed import Ranks
from mrnet.training.setup import build_run
from mrnet.training.state import RunState, plateau_signal, state_from_checkpoint
from mrnet.training.trainer import train


@pytest.mark.slow
def test_one_epoch_writes_every_output(tiny_data, tmp_path):
    out = tmp_path / "models"
    summary = train(train_config(tiny_data, out))
    run = out / "acl-sagittal"
    for name in ("best.pt", "last.pt", "metrics.csv", "tune_predictions.csv", "config.json", "environment.json"):
        assert (run / name).is_file(), name
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "train_loss", "tune_loss", "tune_auc", "lr", "best"]
    assert len(metrics) == 1 and 0 <= metrics["tune_auc"][0] <= 1
    tune = pd.read_csv(out / "tune_cases.csv", dtype={"case": str})
    assert list(tune.columns) == ["case", "abnormal", "acl", "meniscus"] and len(tune) == 2
    predictions = pd.read_csv(run / "tune_predictions.csv", dtype={"case": str})
    # the epoch's AUC is that of the selecting split's probabilities written beside it
    assert metrics["tune_auc"][0] == pytest.approx(roc_auc_score(predictions["label"], predictions["prob"]), abs=1e-6)
    assert list(predictions.columns) == ["case", "label", "prob"]
    assert predictions["case"].tolist() == tune["case"].tolist()  # the tuning exams, all from train
    assert all(int(case) < 12 for case in predictions["case"])
    assert predictions["prob"].between(0, 1).all()
    assert not (run / "valid_predictions.csv").exists()  # the public valid split was not touched
    assert any((out / "runs" / "acl-sagittal").iterdir())  # TensorBoard events
    env = json.loads((run / "environment.json").read_text())
    assert {"git_revision", "packages", "python"} <= set(env) and "torch" in env["packages"]
    assert json.loads((run / "config.json").read_text())["seed"] == 0
    assert load_checkpoint(run / "best.pt", "acl", "sagittal")["image_size"] == 64
    assert load_checkpoint(run / "last.pt", "acl", "sagittal")["finished"] is True
    assert summary.best_epoch == 1 and summary.select_split == "tune"


@pytest.mark.slow
def test_model_learns_the_tiny_task(tiny_data, tmp_path):
    summary = train(train_config(tiny_data, tmp_path / "m", epochs=3, select_on="valid"))
    assert summary.select_split == "valid" and summary.best_auc >= 0.9
    metrics = pd.read_csv(tmp_path / "m" / "acl-sagittal" / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "train_loss", "valid_loss", "valid_auc", "lr", "best"]


def test_tuning_exams_are_never_trained_on_and_pick_the_epoch(tiny_data, tmp_path):
    cfg = train_config(tiny_data, tmp_path / "m")
    data = check_and_load(tiny_data, ("acl",), ("sagittal",))
    tune = tune_split_for(tiny_data, cfg.tune_fraction, cfg.split_seed)
    run = build_run(cfg, data, tune, None, Ranks(), torch.device("cpu"))
    assert tune.enabled and not set(run.train.cases) & set(tune.cases)
    assert sorted(run.train.cases + run.select.cases) == [f"{i:04d}" for i in range(12)]
    assert run.select.cases == list(tune.cases) and run.scheduler.mode == "min"  # plateau on the tune loss
    paper = build_run(
        train_config(tiny_data, tmp_path / "p", tune_fraction=0.0, select_on="valid", plateau_on="auc"),
        data,
        tune_split_for(tiny_data, 0.0, 0),
        None,
        Ranks(),
        torch.device("cpu"),
    )
    assert len(paper.train.cases) == 12 and paper.select.cases[0] == "0012" and paper.scheduler.mode == "max"


def test_plateau_signal_follows_the_option():
    state = RunState(select_split="tune")
    row = {"epoch": 1, "tune_loss": 0.7, "tune_auc": float("nan")}
    assert plateau_signal(state, row, "loss") == 0.7
    assert plateau_signal(state, row, "auc") == -math.inf


def test_equal_tune_auc_goes_to_the_lower_loss():
    state = RunState(select_split="tune")
    for epoch, auc, loss in ((1, 1.0, 0.6), (2, 1.0, 0.4), (3, 1.0, 0.5), (4, 0.9, 0.1)):
        state.record({"epoch": epoch, "tune_loss": loss, "tune_auc": auc})
    assert state.best_epoch == 2


@pytest.mark.slow
def test_a_run_whose_tuning_split_differs_from_the_folder_is_refused(tiny_data, tmp_path):
    out = tmp_path / "m"
    train(train_config(tiny_data, out))
    before = folder_snapshot(out)
    with pytest.raises(MRNetError, match=r"tune_cases.csv holds a tuning split.*--split-seed 4"):
        train(train_config(tiny_data, out, plane="coronal", split_seed=4))
    with pytest.raises(MRNetError, match=r"--tune-fraction 0.0"):
        train(train_config(tiny_data, out, plane="axial", tune_fraction=0.0, select_on="valid"))
    assert folder_snapshot(out) == before


@pytest.mark.slow
def test_tuning_split_too_rare_to_stratify_is_a_clear_error(tiny_data, tmp_path):
    # One ACL tear in train: its combination (1, 1, 1) is alone, stays in train, and the tuning split has none.
    rows = [f"{i:04d},{int(i == 1)}" for i in range(12)]
    (tiny_data / "train-acl.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(MRNetError, match=r"acl: 0 positive.*too rare to stratify.*--tune-fraction 0 --select-on valid"):
        train(train_config(tiny_data, tmp_path / "m"))
    assert not (tmp_path / "m").exists()
    summary = train(train_config(tiny_data, tmp_path / "p", tune_fraction=0.0, select_on="valid"))  # the way out
    assert summary.select_split == "valid"


@pytest.mark.slow
def test_resume_keeps_the_tuning_split(tiny_data, tmp_path):
    train(train_config(tiny_data, tmp_path / "m"))
    with pytest.raises(MRNetError, match=r"tune_fraction=0.2 \(the run used 0.1\)"):
        train(
            train_config(tiny_data, tmp_path / "m", epochs=2, resume=True, tune_fraction=0.2),
            explicit={"tune_fraction"},
        )
    summary = train(train_config(tiny_data, tmp_path / "m", epochs=2, resume=True), explicit={"epochs"})
    assert summary.select_split == "tune" and summary.epochs_run == 2


def test_runs_saved_before_the_tuning_split_resume_as_they_were_trained():
    saved = {"task": "acl", "plane": "sagittal", "lr": 1e-4, "seed": 0}
    merged = merge_resumed_config(TrainConfig(lr=1e-4), saved, explicit=set())
    assert (merged.tune_fraction, merged.select_on, merged.plateau_on) == (0.0, "valid", "auc")
    old = {"epoch": 2, "history": [{"epoch": 1, "val_loss": 0.5, "val_auc": 0.8, "best": True}], "best_epoch": 1}
    state = state_from_checkpoint({**old, "best_score": 0.8, "monitor": "val_auc", "finished": False})
    assert (state.select_split, state.monitor, state.history[0]["valid_auc"]) == ("valid", "auc", 0.8)


@pytest.mark.slow
def test_same_seed_gives_identical_results_and_another_seed_does_not(tiny_data, tmp_path):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        train(train_config(tiny_data, tmp_path / name, epochs=2, seed=seed))
        run = tmp_path / name / "acl-sagittal"
        runs[name] = ((run / "metrics.csv").read_text(), (run / "tune_predictions.csv").read_text())
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0]


@pytest.mark.slow
def test_resume_continues_to_the_same_result(tiny_data, tmp_path):
    train(train_config(tiny_data, tmp_path / "straight", epochs=3))
    train(train_config(tiny_data, tmp_path / "split", epochs=1))
    train(train_config(tiny_data, tmp_path / "split", epochs=3, resume=True), explicit={"epochs"})
    for name in ("metrics.csv", "tune_predictions.csv"):
        assert (tmp_path / "straight" / "acl-sagittal" / name).read_text() == (
            tmp_path / "split" / "acl-sagittal" / name
        ).read_text()
    a = load_checkpoint(tmp_path / "straight" / "acl-sagittal" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "split" / "acl-sagittal" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_existing_run_is_not_overwritten_without_asking(tiny_data, tmp_path):
    out = tmp_path / "models"
    train(train_config(tiny_data, out))
    before = folder_snapshot(out)
    with pytest.raises(MRNetError, match=r"--resume.*--overwrite"):
        train(train_config(tiny_data, out))
    assert folder_snapshot(out) == before
    train(train_config(tiny_data, out, overwrite=True))


def test_resume_without_a_run(tiny_data, tmp_path):
    with pytest.raises(MRNetError, match="nothing to resume"):
        train(train_config(tiny_data, tmp_path / "m", resume=True))


@pytest.mark.slow
def test_resume_with_a_different_recipe_is_refused(tiny_data, tmp_path):
    train(train_config(tiny_data, tmp_path / "m"))
    with pytest.raises(MRNetError, match=r"lr=0.001.*differ|differ.*lr=0.001"):
        train(train_config(tiny_data, tmp_path / "m", epochs=2, resume=True, lr=1e-3), explicit={"lr", "epochs"})


@pytest.mark.slow
def test_resume_from_a_checkpoint_of_another_model(tiny_data, tmp_path):
    out = tmp_path / "m"
    train(train_config(tiny_data, out))
    (out / "meniscus-coronal").mkdir()
    shutil.copy(out / "acl-sagittal" / "last.pt", out / "meniscus-coronal" / "last.pt")
    with pytest.raises(CheckpointError, match="task=acl plane=sagittal, not task=meniscus plane=coronal"):
        train(train_config(tiny_data, out, task="meniscus", plane="coronal", resume=True))


@pytest.mark.slow
def test_single_class_validation_selects_by_loss(tiny_data, tmp_path, capsys):
    rows = [f"{i:04d},0" for i in range(12, 20)]
    (tiny_data / "valid-acl.csv").write_text("\n".join(rows) + "\n")
    summary = train(train_config(tiny_data, tmp_path / "m", epochs=2, select_on="valid"))
    assert "the valid split has only one class" in capsys.readouterr().out
    metrics = pd.read_csv(tmp_path / "m" / "acl-sagittal" / "metrics.csv")
    assert metrics["valid_auc"].isna().all()
    assert summary.best_epoch == int(metrics["valid_loss"].idxmin()) + 1
    train(
        train_config(tiny_data, tmp_path / "t", epochs=1)
    )  # selecting on tune, the valid split's labels do not matter
    assert "only one class" not in capsys.readouterr().out


def test_output_dir_that_cannot_be_written(tiny_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(MRNetError, match="not writable"):
        train(train_config(tiny_data, blocker / "models"))


def test_train_split_with_one_class_is_refused(tiny_data, tmp_path):
    (tiny_data / "train-acl.csv").write_text("\n".join(f"{i:04d},0" for i in range(12)) + "\n")
    with pytest.raises(MRNetError, match="0 positive"):
        train(train_config(tiny_data, tmp_path / "m"))


@pytest.mark.slow
def test_exams_per_step_trains(tiny_data, tmp_path):
    summary = train(train_config(tiny_data, tmp_path / "m", exams_per_step=3, epochs=1))
    assert summary.epochs_run == 1


@pytest.mark.slow
def test_early_stopping(tiny_data, tmp_path, monkeypatch):
    """A model that never changes never improves: the run stops `patience` epochs after its first.

    The optimiser's step is switched off rather than the lr set tiny: in fp32 even an lr of 1e-9
    lowers the tuning loss a little every epoch, and a lower loss at an equal AUC is an improvement.
    """
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, closure=None: None)
    summary = train(train_config(tiny_data, tmp_path / "m", epochs=20, patience=2))
    assert summary.epochs_run == 3 and summary.best_epoch == 1
    assert "early stop" in summary.stop_reason


@pytest.mark.slow
def test_main_parses_the_command_line(tiny_data, tmp_path):
    summary = main(
        [
            "--task",
            "meniscus",
            "--plane",
            "coronal",
            "--data-dir",
            str(tiny_data),
            "--output-dir",
            str(tmp_path / "m"),
            "--epochs",
            "1",
            "--no-pretrained",
            "--device",
            "cpu",
        ]
    )
    assert summary.model == "meniscus-coronal"
    saved = json.loads((tmp_path / "m" / "meniscus-coronal" / "config.json").read_text())
    assert saved["lr"] == 1e-5 and saved["weight_decay"] == 0.01  # the paper's defaults
    assert (saved["tune_fraction"], saved["select_on"], saved["plateau_on"]) == (0.1, "tune", "loss")


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tiny_data, tmp_path):
    common = [
        "--task",
        "acl",
        "--plane",
        "sagittal",
        "--data-dir",
        str(tiny_data),
        "--epochs",
        "6",
        "--lr",
        "1e-4",
        "--weight-decay",
        "1e-4",
        "--no-pretrained",
        "--device",
        "cpu",
        "--seed",
        "3",
    ]
    straight = start_script("train_plane.py", *common, "--output-dir", str(tmp_path / "straight"))

    killed_dir = tmp_path / "killed"
    victim = start_script("train_plane.py", *common, "--output-dir", str(killed_dir))
    first_checkpoint = killed_dir / "acl-sagittal" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and victim.poll() is None and not first_checkpoint.exists():
        time.sleep(0.02)
    assert victim.poll() is None, "the run ended before it could be interrupted"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    interrupted_at = load_checkpoint(killed_dir / "acl-sagittal" / "last.pt")
    assert not interrupted_at["finished"] and interrupted_at["epoch"] < 6

    resumed = start_script("train_plane.py", *common, "--output-dir", str(killed_dir), "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming after epoch" in out
    straight.communicate(timeout=300)
    assert straight.returncode == 0
    for name in ("metrics.csv", "tune_predictions.csv"):
        assert (killed_dir / "acl-sagittal" / name).read_text() == (
            tmp_path / "straight" / "acl-sagittal" / name
        ).read_text()
    assert temporary_leftovers(killed_dir / "acl-sagittal") == []


@pytest.mark.slow
def test_resume_removes_partial_writes_of_the_killed_run(tiny_data, tmp_path):
    out = tmp_path / "m"
    train(train_config(tiny_data, out, epochs=1))
    partial = out / "acl-sagittal" / ".last.pt.abc123.tmp"
    partial.write_bytes(b"half a checkpoint")
    train(train_config(tiny_data, out, epochs=2, resume=True), explicit={"epochs"})
    assert not partial.exists()
    assert load_checkpoint(out / "acl-sagittal" / "last.pt")["epoch"] == 2


@pytest.mark.slow
def test_series_without_labels_are_noted_and_ignored(tiny_data, tmp_path, capsys):
    extra = tiny_data / "train" / "sagittal" / "0999.npy"
    shutil.copy(tiny_data / "train" / "sagittal" / "0000.npy", extra)
    summary = train(train_config(tiny_data, tmp_path / "m"))
    assert "1 train/sagittal series have no label and are ignored (e.g. 0999)" in capsys.readouterr().out
    assert summary.epochs_run == 1


@pytest.mark.slow
def test_resume_from_a_last_pt_of_another_backbone_is_refused(tiny_data, tmp_path):
    one, other = tmp_path / "one", tmp_path / "other"
    train(train_config(tiny_data, one))
    train(train_config(tiny_data, other, pool="mean"))
    shutil.copy(other / "acl-sagittal" / "last.pt", one / "acl-sagittal" / "last.pt")
    best = (one / "acl-sagittal" / "best.pt").read_bytes()
    with pytest.raises(MRNetError, match=r"last.pt and (best.pt|config.json) come from different runs \(pool 'mean'"):
        train(train_config(tiny_data, one, epochs=2, resume=True), explicit={"epochs"})
    assert (one / "acl-sagittal" / "best.pt").read_bytes() == best
