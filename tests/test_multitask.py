"""One multi-task network per plane (--task all) and every backbone and pooling, through the real commands.

A multi-task run must look like three single-task runs to train_meta, evaluate, predict and
the heatmaps; mixed folders are refused.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import run_script, run_training, train_config, write_tiny_layout

from mrnet import PLANES, TASKS
from mrnet.checkpoint import load_checkpoint
from mrnet.cli.evaluate import main as evaluate_main
from mrnet.cli.train_all import main as train_all_main
from mrnet.cli.train_plane import main as train_plane_main
from mrnet.data.dataset import check_and_load
from mrnet.data.splits import tune_split_for
from mrnet.errors import MRNetError
from mrnet.inference import load_plane_model
from mrnet.models import BACKBONES, ModelArgs, build_model, model_for_inference
from mrnet.stats.auc import auc_or_nan
from mrnet.training.distributed import Ranks
from mrnet.training.loss import positive_class_weight as pos_weight
from mrnet.training.loss import run_loss, task_scales, weighted_bce
from mrnet.training.multitask import mark_views, per_task_aucs, task_view
from mrnet.training.setup import build_run
from mrnet.training.trainer import task_weights, train

QUICK = ["--no-pretrained", "--lr", "1e-4", "--weight-decay", "1e-4", "--device", "cpu", "--epochs", "1"]
QUICK += ["--no-augment", "--exams-per-step", "4", "--patience", "0", "--seed", "0"]


def quiet(main, argv):
    with contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


def test_the_loss_is_the_sum_of_each_tasks_weighted_bce():
    torch.manual_seed(0)
    logits, labels = torch.randn(5, 3), torch.randint(0, 2, (5, 3)).float()
    weights = np.array([0.25, 4.0, 1.8])
    expected = sum(weighted_bce(logits[:, i], labels[:, i], float(w)) for i, w in enumerate(weights))
    torch.testing.assert_close(run_loss(logits, labels, weights), expected)
    torch.testing.assert_close(run_loss(logits[:, 1], labels[:, 1], 4.0), weighted_bce(logits[:, 1], labels[:, 1], 4.0))


def test_balanced_task_weights_give_every_task_the_same_total_weight():
    torch.manual_seed(0)
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 0, 0], [1, 0, 0]], dtype=torch.float32)
    weights = np.array([pos_weight(labels[:, i].numpy()) for i in range(3)])  # negatives / positives
    scales = task_scales(weights)
    positives = labels.mean(dim=0).numpy()
    # a task's weight per exam, positives weighted w, negatives 1, then scaled: one for every task
    np.testing.assert_allclose(scales * (positives * weights + (1 - positives)), np.ones(3))
    logits = torch.randn(5, 3)
    terms = [weighted_bce(logits[:, i], labels[:, i], float(w)) for i, w in enumerate(weights)]
    expected = sum(float(c) * term for c, term in zip(scales, terms, strict=True))
    torch.testing.assert_close(run_loss(logits, labels, weights, scales), expected)


def test_task_weights_follow_the_option(tmp_path):
    weights = np.array([0.25, 4.0, 1.5])
    multi = train_config(tmp_path, tmp_path / "m", task="all")
    np.testing.assert_allclose(task_weights(multi, weights), task_scales(weights))  # balanced, the default
    multi.task_weights = "sum"
    np.testing.assert_allclose(task_weights(multi, weights), np.ones(3))
    assert task_weights(train_config(tmp_path, tmp_path / "s"), 4.0) is None  # one task: its loss as it is


def epoch(n: int, best: bool, acl: float, acl_loss: float, meniscus: float) -> dict:
    return {
        "epoch": n,
        "best": best,
        "tune_auc_acl": acl,
        "tune_loss_acl": acl_loss,
        "tune_auc_meniscus": meniscus,
        "tune_loss_meniscus": 1.0,
    }


def test_each_view_moves_with_its_own_tasks_auc_or_with_the_mean():
    history = [epoch(1, True, 0.6, 1.0, 0.5), epoch(2, True, 0.9, 0.9, 0.4), epoch(3, False, 0.9, 0.8, float("nan"))]
    marked = []
    for n in range(1, 4):
        mark_views(history[:n], ("acl", "meniscus"), "tune", "task")
        marked.append((history[n - 1]["view_acl"], history[n - 1]["view_meniscus"]))
    # acl: better, then the same AUC at a lower loss; meniscus: worse, then undefined
    assert marked == [(True, True), (True, False), (True, False)]
    mark_views(history, ("acl", "meniscus"), "tune", "mean")
    assert (history[-1]["view_acl"], history[-1]["view_meniscus"]) == (False, False)


@pytest.mark.parametrize("pool", ["max", "attention"])
def test_a_task_view_is_the_multitask_models_column(pool):
    torch.manual_seed(0)
    model = build_model(pretrained=False, args=ModelArgs(pool=pool, outputs=3)).eval()
    x = torch.randn(7, 1, 64, 64)
    with torch.inference_mode():
        full = model(x, [3, 4])  # (2, 3)
        for index in range(3):
            view = model_for_inference(task_view(model.state_dict(), index), torch.device("cpu"), {"pool": pool})
            torch.testing.assert_close(view(x, [3, 4]), full[:, index], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_task_all_through_the_commands(tiny_data, tmp_path):
    """train_all --task all -> 3 networks, 9 views, ensembles; then evaluate and predict with heatmaps."""
    models = tmp_path / "models"
    trained = run_training("train_all.py", tiny_data, models, "--task", "all", "--pool", "attention", "--epochs", "2")
    assert trained.returncode == 0, trained.stderr
    assert "AUC on the valid split" in trained.stdout
    tune_cases = pd.read_csv(models / "tune_cases.csv", dtype={"case": str})["case"].tolist()
    for plane in PLANES:
        run = models / f"all-{plane}"
        assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
        metrics = pd.read_csv(run / "metrics.csv")
        # the tuning split picks the epochs: the network's on the mean of the per-task AUCs, each view on its task's
        per_task = [f"tune_{m}_{t}" for m in ("auc", "loss") for t in TASKS] + [f"view_{t}" for t in TASKS]
        assert per_task == list(metrics.columns[-9:])
        np.testing.assert_allclose(metrics["tune_auc"], metrics[[f"tune_auc_{t}" for t in TASKS]].mean(axis=1))
        full = load_checkpoint(run / "best.pt")
        assert full["model_args"]["outputs"] == 3
        for index, task in enumerate(TASKS):
            view = load_checkpoint(models / f"{task}-{plane}" / "best.pt", task, plane)
            assert view["model_args"]["outputs"] == 1 and view["output_index"] == index
            assert view["view_of"] == f"all-{plane}"
            assert view["best_epoch"] == metrics.loc[metrics[f"view_{task}"], "epoch"].max()
            aucs = metrics[f"tune_auc_{task}"]
            assert view["best_score"] == aucs.max() or (aucs.isna().all() and np.isnan(view["best_score"]))
            if view["best_epoch"] == full["best_epoch"]:
                assert torch.equal(view["model"]["classifier.weight"][0], full["model"]["classifier.weight"][index])
            predictions = pd.read_csv(models / f"{task}-{plane}" / "tune_predictions.csv", dtype={"case": str})
            assert predictions["case"].tolist() == tune_cases
            assert view["select_split"] == "tune"
            assert not (models / f"{task}-{plane}" / "last.pt").exists()
    assert len(pd.read_csv(models / "auc_table.csv")) == 3

    again = run_training("train_all.py", tiny_data, models, "--task", "all", "--pool", "attention", "--epochs", "2")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished checkpoint exists, skipped") == 3

    report = run_script(
        "evaluate.py", "--data-dir", str(tiny_data), "--models-dir", str(models), "--bootstrap", "20", "--device", "cpu"
    )
    assert report.returncode == 0, report.stderr
    assert list((models / "report" / "heatmaps").glob("*.png"))

    series = {p: str(tiny_data / "valid" / p / "0013.npy") for p in PLANES}
    out = tmp_path / "predictions"
    predicted = run_script(
        "predict.py",
        "--models-dir",
        str(models),
        "--out",
        str(out),
        "--cam",
        str(tmp_path / "cam"),
        "--device",
        "cpu",
        *(arg for p in PLANES for arg in (f"--{p}", series[p])),
    )
    assert predicted.returncode == 0, predicted.stderr
    exam = pd.read_json(out / "predictions.json", typ="series")["exams"][0]
    weights = exam["slice_attention"]["acl"]["sagittal"]
    assert len(weights) == np.load(series["sagittal"]).shape[0] and sum(weights) == pytest.approx(1.0, abs=1e-5)
    assert len(list((tmp_path / "cam" / "0013").glob("*.png"))) > 0


@pytest.mark.slow
def test_single_and_multitask_runs_of_a_plane_do_not_mix(tiny_data, tmp_path):
    models = tmp_path / "models"
    with contextlib.redirect_stdout(io.StringIO()):
        train(train_config(tiny_data, models, task="acl", plane="sagittal"))
        with pytest.raises(MRNetError, match="cannot share"):
            train(train_config(tiny_data, models, task="all", plane="sagittal"))
        train(train_config(tiny_data, models, task="all", plane="coronal"))
        with pytest.raises(MRNetError, match="cannot share"):
            train(train_config(tiny_data, models, task="meniscus", plane="coronal"))
    with pytest.raises(MRNetError, match="cannot share"):
        quiet(train_all_main, ["--data-dir", str(tiny_data), "--models-dir", str(models), *QUICK])


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_backbone_trains_and_evaluates_through_the_commands(backbone, tmp_path):
    data, models = write_tiny_layout(tmp_path / "data", n_train=6, n_valid=4, slices=(2, 3)), tmp_path / "models"
    argv = ["--data-dir", str(data), "--models-dir", str(models), *QUICK, "--backbone", backbone]
    quiet(train_all_main, [*argv, "--task", "all", "--depth", "4"])
    for task in TASKS:
        model, _ = load_plane_model(models, task, "sagittal", torch.device("cpu"))
        assert model.args.backbone == backbone and model.args.outputs == 1
    evaluate = ["--data-dir", str(data), "--models-dir", str(models), "--bootstrap", "10", "--heatmap-exams", "1"]
    metrics = quiet(evaluate_main, evaluate)
    assert np.isfinite(metrics.loc[metrics["task"] == "mean", "auc"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["mean", "attention"])
def test_each_pool_trains_through_train_plane(pool, tiny_data, tmp_path):
    models = tmp_path / "models"
    argv = ["--data-dir", str(tiny_data), "--models-dir", str(models), *QUICK, "--task", "acl", "--plane", "axial"]
    summary = quiet(train_plane_main, [*argv, "--pool", pool])
    assert summary.epochs_run == 1
    model, _ = load_plane_model(models, "acl", "axial", torch.device("cpu"))
    assert model.args.pool == pool


def test_a_multitask_run_selects_on_the_tuning_split_with_every_tasks_labels(tiny_data, tmp_path):
    cfg = train_config(tiny_data, tmp_path / "m", task="all")
    data = check_and_load(tiny_data, TASKS, ("sagittal",))
    tune = tune_split_for(tiny_data, cfg.tune_fraction, cfg.split_seed)
    run = build_run(cfg, data, tune, None, Ranks(), torch.device("cpu"))
    assert run.select.cases == list(tune.cases) and not set(run.train.cases) & set(tune.cases)
    assert run.select.labels.shape == (len(tune.cases), len(TASKS))
    assert run.train.labels.shape == (len(run.train.cases), len(TASKS))
    expected = np.array([[tune.combinations[c][TASKS.index(t)] for t in TASKS] for c in tune.cases])
    np.testing.assert_array_equal(run.select.labels, expected)
    assert run.state.select_split == "tune" and np.shape(run.pos_weight) == (len(TASKS),)


def test_per_task_aucs_are_named_after_the_selecting_split():
    labels = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0, 0]])
    probs = labels * 0.8 + 0.1
    aucs = per_task_aucs(labels, probs, TASKS, auc_or_nan, "tune")
    assert list(aucs) == ["tune_auc", *(f"tune_auc_{t}" for t in TASKS)] and aucs["tune_auc"] == 1.0


@pytest.mark.slow
def test_a_resumed_multitask_run_keeps_the_views_of_the_uninterrupted_one(tiny_data, tmp_path):
    """Each view's epoch is recomputed from the saved history, so stopping and resuming changes nothing."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(train_config(tiny_data, whole, task="all", epochs=3))
    train(train_config(tiny_data, parts, task="all", epochs=1))
    train(train_config(tiny_data, parts, task="all", epochs=3, resume=True), explicit={"epochs"})
    metrics = [pd.read_csv(m / "all-sagittal" / "metrics.csv") for m in (whole, parts)]
    pd.testing.assert_frame_equal(*metrics)
    for task in TASKS:
        a, b = (load_checkpoint(m / f"{task}-sagittal" / "best.pt", task, "sagittal") for m in (whole, parts))
        assert a["best_epoch"] == b["best_epoch"]
        for name, tensor in a["model"].items():
            torch.testing.assert_close(b["model"][name], tensor)
